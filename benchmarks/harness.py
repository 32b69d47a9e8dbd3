"""Run one benchmark process (tree) and measure it from outside: start time, wall time, peak RSS of the tree;
or run it under a memory budget (``watch``), killed when it goes over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.05
GiB = 2**30
BUDGET_POLL_SECONDS = 0.2  # a run under a memory budget (``watch``) is polled this often
LOW_HOST_MEMORY = GiB // 2  # below this much free host memory a run is stopped: the machine, not the run, is short


@dataclass
class ProcessStats:
    start_time: float  # time.time() just before the process was started
    wall_s: float
    peak_rss_mb: float  # the largest sum of RSS over the process and all its descendants at one poll
    returncode: int


def child_env() -> dict[str, str]:
    """The environment of every mode: the repository importable, nothing fetched from a hub."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # a member that exited between listing and reading
            pass
    return total


def measure_process(command: list[str], log_path: Path, timeout_s: float) -> ProcessStats:
    """Run ``command`` (output to ``log_path``), polling the RSS of its whole process tree until it exits."""
    peak = 0
    with log_path.open("wb") as log:
        start = time.time()
        popen = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO_ROOT
        )
        process = psutil.Process(popen.pid)
        done = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not done.is_set():
                try:
                    peak = max(peak, tree_rss(process))
                except psutil.Error:
                    return
                done.wait(POLL_SECONDS)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            returncode = popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            popen.kill()
            returncode = popen.wait()
        wall = time.time() - start
        done.set()
        poller.join()
    return ProcessStats(start, wall, peak / 2**20, returncode)


def time_command(command: list[str], repeats: int, **env: str) -> list[float]:
    """Wall seconds of ``command`` run ``repeats`` times (output discarded, ``env`` added); raises if it fails."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            command, check=True, stdout=subprocess.DEVNULL, env={**child_env(), **env}, cwd=REPO_ROOT
        )
        times.append(time.perf_counter() - start)
    return times


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def available_host_bytes() -> int:
    """Host memory free for new allocations now."""
    return psutil.virtual_memory().available


def watch(command: list[str], log: Path, budget: int, timeout: float) -> tuple[int, int, str]:
    """Run ``command`` in its own session, polling its tree's summed RSS; returns (exit code, peak bytes, outcome).

    Over ``budget``, past ``timeout``, or when the machine itself runs short of memory, the whole tree is killed.
    """
    peak, outcome = 0, ""
    start = time.monotonic()
    with log.open("wb") as handle:
        popen = subprocess.Popen(command, cwd=REPO_ROOT, env=child_env(), stdout=handle, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        process = psutil.Process(popen.pid)
        while popen.poll() is None:
            try:
                peak = max(peak, tree_rss(process))
            except psutil.Error:
                pass
            if peak > budget:
                outcome = "over budget"
            elif time.monotonic() - start > timeout:
                outcome = "timeout"
            elif available_host_bytes() < LOW_HOST_MEMORY:
                outcome = "host memory low"
            if outcome:
                os.killpg(popen.pid, signal.SIGKILL)  # the session this run started: the launcher and its ranks
                break
            time.sleep(BUDGET_POLL_SECONDS)
        returncode = popen.wait()
    return returncode, peak, outcome


def wait_for_memory(budget: int, patience_s: float = 600) -> None:
    """Start a run only when the machine has the budget free (others' jobs may hold memory for a while)."""
    deadline = time.monotonic() + patience_s
    while available_host_bytes() < budget + LOW_HOST_MEMORY and time.monotonic() < deadline:
        time.sleep(5)
