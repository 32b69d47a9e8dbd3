"""`trainlab list` from the saved listing: same output as importing everything, without importing torch."""

import subprocess
import sys

from trainlab.registry_index import build_listing, cache_dir, listing_key

LIST_AND_REPORT_TORCH = "import sys; from trainlab.commands.cli import main; main(['list']); print('torch imported:', 'torch' in sys.modules)"


def run_list(cache):
    env = {"TRAINLAB_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", LIST_AND_REPORT_TORCH],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_second_listing_reads_the_saved_one_without_importing_torch(tmp_path):
    first = run_list(tmp_path)
    second = run_list(tmp_path)
    assert first.endswith("torch imported: True\n") and second.endswith("torch imported: False\n")
    assert first.replace("True", "") == second.replace("False", "")
    assert "  AdamW                                torch.optim.adamw" in second
    assert [path.name for path in tmp_path.iterdir()] == [f"registry-listing-{listing_key()[:32]}.json"]


def test_a_damaged_saved_listing_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_CACHE_DIR", str(tmp_path))
    (cache_dir() / f"registry-listing-{listing_key()[:32]}.json").write_text("{not json")
    output = run_list(tmp_path)
    assert output.endswith("torch imported: True\n")
    # TrainLab's own trainers: this process may also hold trainers other tests registered, which `trainlab list`
    # in a fresh interpreter cannot know
    expected = [(name, module) for name, module in build_listing(["trainers"])["trainers"]
                if module.startswith("trainlab.")]
    assert expected and all(f"  {name:<36} {module}" in output for name, module in expected)
