"""A corpus of realistic user mistakes (the rows: mistake_cases.py): each is the files a user has, the command
they type, and the culprit the error must name.

Every case must end the project's way (`helpers.assert_user_error`): exit code 2, at most two lines on stderr,
no traceback, the culprit named, every file the user had byte-identical. Most fail at config checking, so the
whole corpus runs in forked processes, a few at a time, in well under two minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import assert_user_error, snapshot

from mistake_cases import BLOBS, CASES, ENGINE, Case

WORKERS = 3


def prepare(case: Case, root: Path) -> Path:
    work = root / case.id
    work.mkdir()
    (work / "b.yaml").write_text(BLOBS)
    shutil.copy(ENGINE / "toy_components.py", work / "toy_components.py")
    for name, text in case.files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    return work


def start_trainlab(args: Sequence[str], cwd: Path, log: Path) -> int:
    """`trainlab ARGS` in a forked child of this process, which has imported torch and TrainLab already: a case
    then costs its checks, not the two seconds of imports a fresh `python -m trainlab` pays."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.chdir(cwd)
        for fd, suffix in ((1, ".out"), (2, ".err")):
            os.dup2(os.open(log.with_suffix(suffix), os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        # Python's own streams on the redirected descriptors, not pytest's capture; the child exits, closing them.
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)  # noqa: SIM115
        from trainlab.commands.cli import main

        code = main(list(args))
    except SystemExit as exc:  # argparse's exits
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001  a crash shows as a traceback and exit 1, as `python -m trainlab` does
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple]:
    """Every case run once, a few at a time: (CompletedProcess, files before, files after)."""
    import transformers  # noqa: F401  imported once here, not in every child

    import trainlab.validation  # noqa: F401

    root = tmp_path_factory.mktemp("corpus")
    logs = root / "logs"
    logs.mkdir()
    pending, running, results = list(CASES), {}, {}
    while pending or running:
        while pending and len(running) < WORKERS:
            case = pending.pop(0)
            work = prepare(case, root)
            before = snapshot(work)
            running[start_trainlab(case.args, work, logs / case.id)] = (case, work, before)
        pid, status = os.wait()
        case, work, before = running.pop(pid)
        out, err = ((logs / case.id).with_suffix(s).read_text(errors="replace") for s in (".out", ".err"))
        proc = subprocess.CompletedProcess(case.args, os.waitstatus_to_exitcode(status), out, err)
        results[case.id] = (proc, before, snapshot(work))
    return results


def test_the_corpus_is_large_and_every_id_unique():
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []) for c in CASES
])
def test_a_user_mistake_is_one_line_naming_the_culprit(case, outcomes):
    proc, before, after = outcomes[case.id]
    assert_user_error(proc, case.culprit, before, after)
