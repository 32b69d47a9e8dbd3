"""RUN_DIR/status.json: what a run is doing (a heartbeat while it lives) and, at the end, its summary.

``trainlab runs`` reads it: ``running`` while the heartbeat is fresh and the process alive; ``finished``,
``failed`` or ``interrupted`` as the run ended; a run whose process vanished (kill -9, a lost node) without
writing its end is ``interrupted`` too. Rank 0 writes; the file is replaced atomically.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .summary import process_age_s

STATUS_FILE = "status.json"
HEARTBEAT_S = 30.0  # the heartbeat thread rewrites status.json this often while the run lives


class RunStatus:
    """The status file of one run, kept fresh by a daemon thread until :meth:`finish`."""

    def __init__(self, run_dir: Path, world_size: int, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.path = Path(run_dir) / STATUS_FILE
        previous = read_status(Path(run_dir)) or {}
        now = time.time()
        started = now - (process_age_s() or 0.0)  # the job's start: imports and set-up count in its duration
        self.state: dict[str, Any] = {
            "status": "running", "started": previous.get("started", started), "resumed": started if previous else None,
            "updated": now, "finished": None, "pid": os.getpid(), "host": socket.gethostname(),
            "world_size": world_size, "global_step": previous.get("global_step", 0), "epoch": previous.get("epoch", 0),
            "heartbeat_s": heartbeat_s, "summary": None, "error": None,
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), name="trainlab-heartbeat", daemon=True)
        self._thread.start()

    def update(self, **fields: Any) -> None:
        """Record progress (global_step, epoch, ...); written with the next heartbeat."""
        with self._lock:
            self.state.update(fields)

    def finish(self, status: str, summary: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """The run ended: ``finished``, ``failed`` or ``interrupted``; stops the heartbeat."""
        self._stop.set()
        with self._lock:
            self.state.update(status=status, finished=time.time(), summary=dict(summary or {}) or None, error=error)
            self.state.update({key: summary[key] for key in ("global_step", "epoch") if summary and key in summary})
        self._write()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            self._write()

    def _write(self) -> None:
        with self._lock:
            self.state["updated"] = time.time()
            text = json.dumps(self.state, indent=1, default=str)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:  # a full disk must not end the run over its status file
            tmp.unlink(missing_ok=True)


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The run's status.json, or None when it has none or it is unreadable."""
    try:
        state = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def current_status(state: Mapping[str, Any], now: float | None = None) -> str:
    """running / finished / failed / interrupted, judging a "running" file by its heartbeat and process."""
    status = str(state.get("status", "unknown"))
    if status != "running":
        return status
    now = time.time() if now is None else now
    stale = now - float(state.get("updated", 0)) > 3 * float(state.get("heartbeat_s", HEARTBEAT_S))
    return "interrupted" if stale or not _process_alive(state) else "running"


def _process_alive(state: Mapping[str, Any]) -> bool:
    """False only when the run's process is known to be gone (same host, no such pid)."""
    if state.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(state.get("pid", 0)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


__all__ = ["HEARTBEAT_S", "STATUS_FILE", "RunStatus", "current_status", "read_status"]
