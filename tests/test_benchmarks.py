"""Smoke test of the benchmark command: it runs, prints its table and writes its JSON. Numbers are never checked."""

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_runs_two_modes_and_writes_results(tmp_path):
    output = tmp_path / "results.json"
    command = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "run.py"),
        "--quick",
        "--modes",
        "raw_lora,trainlab_lora",
        "--work-dir",
        str(tmp_path),
        "--output",
        str(output),
    ]
    completed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "| trainlab_lora" in completed.stdout and "| raw_lora" in completed.stdout
    results = json.loads(output.read_text())
    assert {run["mode"] for run in results["runs"]} == {"raw_lora", "trainlab_lora"}
    assert all(
        run["samples_per_s"] > 0 and run["peak_rss_mb"] > 0 and run["steps"] == 4 for run in results["runs"]
    )
    assert {goal["goal"] for goal in results["goals"]} >= {
        "trainlab LoRA vs raw LoRA",
        "trainlab list time (s)",
    }
