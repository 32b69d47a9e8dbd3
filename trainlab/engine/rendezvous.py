"""How the processes of a run find each other: a Slurm job step's variables as torchrun's, and a free port."""

from __future__ import annotations

import os
import re
import socket


def slurm_environment() -> dict[str, str]:
    """torchrun-style variables derived from a Slurm job step (``srun trainlab train ...``), or {}."""
    if "SLURM_PROCID" not in os.environ or "RANK" in os.environ:
        return {}
    nodes = expand_slurm_nodelist(
        os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_NODELIST", "")
    )
    job_id = int(os.environ.get("SLURM_JOB_ID", "0") or 0)
    return {
        "RANK": os.environ["SLURM_PROCID"],
        # The tasks of this srun step; SLURM_NTASKS is the whole allocation's.
        "WORLD_SIZE": os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS", "1"),
        "LOCAL_RANK": os.environ.get("SLURM_LOCALID", "0"),
        "MASTER_ADDR": os.environ.get("MASTER_ADDR") or (nodes[0] if nodes else "127.0.0.1"),
        # A port that every task of the job computes identically, away from the common 29500.
        "MASTER_PORT": os.environ.get("MASTER_PORT") or str(20000 + job_id % 20000),
    }


def expand_slurm_nodelist(nodelist: str) -> list[str]:
    """``"gpu[01-03,07],cpu5"`` → ``["gpu01", "gpu02", "gpu03", "gpu07", "cpu5"]``."""
    hosts = []
    for prefix, ranges, plain in re.findall(r"([^,\[]+)\[([^\]]+)\]|([^,\[\]]+)", nodelist):
        if plain:
            hosts.append(plain)
            continue
        for part in ranges.split(","):
            start, _, end = part.partition("-")
            if not end:
                hosts.append(prefix + start)
                continue
            hosts += [prefix + str(i).zfill(len(start)) for i in range(int(start), int(end) + 1)]
    return hosts


def free_port() -> int:
    """A TCP port nothing listens on right now (chosen at launch, never a fixed 29500)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


__all__ = ["expand_slurm_nodelist", "free_port", "slurm_environment"]
