"""Process-group set-up from torchrun or Slurm, rank helpers, and collectives that also work without one."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else int(os.environ.get("RANK", "0"))


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


def slurm_environment() -> dict[str, str]:
    """torchrun-style variables derived from a Slurm job step (``srun trainlab train ...``), or {}."""
    if "SLURM_PROCID" not in os.environ or "RANK" in os.environ:
        return {}
    nodes = expand_slurm_nodelist(os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_NODELIST", ""))
    job_id = int(os.environ.get("SLURM_JOB_ID", "0") or 0)
    return {
        "RANK": os.environ["SLURM_PROCID"],
        "WORLD_SIZE": os.environ.get("SLURM_NTASKS", "1"),
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


def init_distributed(device_type: str, timeout_s: float = 1800.0) -> tuple[int, int]:
    """Join the process group described by the environment (torchrun or Slurm); returns (rank, world_size).

    A plain single process (no WORLD_SIZE, or WORLD_SIZE 1) gets no process group at all.
    """
    os.environ.update(slurm_environment())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or is_distributed():
        return get_rank(), get_world_size()
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(get_local_rank())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def reduce_value(value: torch.Tensor, average: bool = True) -> torch.Tensor:
    """Sum (or average) ``value`` over all processes; unchanged in a single process."""
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / get_world_size() if average else value


def all_reduce_min(value: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0, in rank order.

    Ranks may hold different numbers of rows, or none at all (a rank with no evaluation samples may
    hold an empty tensor whose other dimensions are unknown: it takes the others' shape).
    """
    if not is_distributed():
        return tensor
    device = tensor.device
    if dist.get_backend() == "nccl" and device.type != "cuda":
        tensor = tensor.cuda()
    shape = torch.tensor(list(tensor.shape), device=tensor.device)
    shapes = [torch.zeros_like(shape) for _ in range(get_world_size())]
    dist.all_gather(shapes, shape)
    rows = [int(s[0]) for s in shapes]
    trailing = torch.stack(shapes)[:, 1:].max(dim=0).values.tolist()
    padded = torch.zeros((max(rows), *trailing), dtype=tensor.dtype, device=tensor.device)
    if tensor.numel():
        padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in rows]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:n] for g, n in zip(gathered, rows)]).to(device)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list in a single process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
