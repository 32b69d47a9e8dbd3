"""Process-group set-up, rank helpers, and collectives that also work without one (Slurm's variables and free
ports: ``rendezvous``).

Every collective waits at most the process group's timeout (TRAINER.TIMEOUT_S). A collective that runs out of
time raises CollectiveTimeout, whose message names the rank's collective and its caller: a rank that stopped
calling collectives ends the run instead of hanging it.
"""

from __future__ import annotations

import functools
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .rendezvous import free_port, slurm_environment
from .user_frames import is_trainlab_file, short_path, user_frame

F = TypeVar("F", bound=Callable[..., Any])

# What gloo and nccl say when a collective (or the joining of the group) ran out of time.
_TIMEOUT_TEXT = re.compile(
    r"Timed out waiting \d+ms for (send|recv) operation|Operation timed out!|timed out in blocking wait"
    r"|collective operation timeout|before timing out|Timed out after \d+ seconds waiting for clients"
    r"|client socket has timed out"
)

# nccl's watchdog ends the process once a collective outlives the group's timeout; TrainLab's helpers stop
# waiting this much earlier, so that they raise first, with a message that says where.
_NCCL_WATCHDOG_MARGIN = timedelta(seconds=10)


@dataclass
class _GroupState:
    """What init_distributed set up for this process."""

    timeout: timedelta = timedelta(seconds=1800)  # how long a collective waits for the other processes
    control_group: Any = None  # nccl runs: a gloo group for barriers and Python objects, which are CPU work
    timed_out: bool = False  # after a timeout the group cannot be torn down cleanly: the peers are gone


_state = _GroupState()


class CollectiveTimeout(RuntimeError):
    """A collective waited TRAINER.TIMEOUT_S for the other processes; the message says which and where."""


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


def init_distributed(device_type: str, timeout_s: float = 1800.0, single_process_group: bool = False) -> tuple[int, int]:
    """Join the process group described by the environment (torchrun or Slurm); returns (rank, world_size).

    A plain single process (no WORLD_SIZE, or WORLD_SIZE 1) gets no process group, unless
    ``single_process_group`` (a strategy such as FSDP that works through one even alone). Every collective of
    the group, TrainLab's and the user's, fails after ``timeout_s`` instead of waiting for ever.
    """
    os.environ.update(slurm_environment())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if is_distributed():
        return get_rank(), get_world_size()
    if world_size <= 1 and not single_process_group:
        return 0, 1
    if world_size <= 1:  # a group of one, on a free local port
        os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"})
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    _state.timeout = group_timeout = timedelta(seconds=timeout_s)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(get_local_rank() % torch.cuda.device_count())
        # On timeout nccl's watchdog aborts the communicators and ends the process (torchrun sets the same;
        # srun does not), so a stuck collective that TrainLab does not wait on (DDP's) cannot hang either.
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        group_timeout += _NCCL_WATCHDOG_MARGIN
    try:
        dist.init_process_group(backend=backend, timeout=group_timeout)
    except Exception as exc:
        if not _TIMEOUT_TEXT.search(str(exc)):
            raise
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise CollectiveTimeout(
            f"waited {timeout_s:g} s for all {world_size} processes to join at {where} — start every "
            f"process (on each node, or under Slurm one srun task per process) with the same MASTER_ADDR, "
            f"MASTER_PORT and WORLD_SIZE, or raise TRAINER.TIMEOUT_S"
        ) from exc
    if backend == "nccl":
        _state.control_group = dist.new_group(backend="gloo", timeout=_state.timeout)
    return dist.get_rank(), dist.get_world_size()


def cleanup() -> None:
    """Leave the process group, unless a collective timed out: then the peers are gone and the process ends."""
    if is_distributed() and not _state.timed_out:
        dist.destroy_process_group()
    _state.control_group, _state.timed_out = None, False  # the timeout stays, to describe a late error


def _collective(op: str) -> Callable[[F], F]:
    """Turn a timeout in the decorated helper into a CollectiveTimeout naming ``op``, helper and caller."""

    def decorate(helper: F) -> F:
        @functools.wraps(helper)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return helper(*args, **kwargs)
            except Exception as exc:
                if isinstance(exc, CollectiveTimeout) or not _is_timeout(exc):
                    raise
                _state.timed_out = True
                stack = traceback.extract_stack()[:-1]
                raise CollectiveTimeout(_timeout_text(op, helper.__name__, stack)) from exc

        return wrapper  # type: ignore[return-value]

    return decorate


def _wait(work: Any) -> None:
    # nccl returns before the collective is done; waiting with a timeout raises here, in this thread, on time.
    work.wait(_state.timeout)


@_collective("barrier")
def barrier() -> None:
    if is_distributed():
        _wait(dist.barrier(group=_state.control_group, async_op=True))


@_collective("all_reduce")
def reduce_value(value: torch.Tensor, average: bool = True) -> torch.Tensor:
    """Sum (or average) ``value`` over all processes; unchanged in a single process."""
    if not is_distributed():
        return value
    value = value.clone()
    _wait(dist.all_reduce(value, op=dist.ReduceOp.SUM, async_op=True))
    return value / get_world_size() if average else value


@_collective("all_reduce")
def all_reduce_min(value: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return value
    value = value.clone()
    _wait(dist.all_reduce(value, op=dist.ReduceOp.MIN, async_op=True))
    return value


@_collective("all_gather")
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
    _wait(dist.all_gather(shapes, shape, async_op=True))
    rows = [int(s[0]) for s in shapes]
    trailing = torch.stack(shapes)[:, 1:].max(dim=0).values.tolist()
    padded = torch.zeros((max(rows), *trailing), dtype=tensor.dtype, device=tensor.device)
    if tensor.numel():
        padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in rows]
    _wait(dist.all_gather(gathered, padded, async_op=True))
    return torch.cat([g[:n] for g, n in zip(gathered, rows)]).to(device)


@_collective("broadcast")
def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src, group=_state.control_group)
    return holder[0]


@_collective("all_gather")
def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list in a single process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj, group=_state.control_group)
    return gathered


def _is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is gloo's or nccl's report of a collective that ran out of time."""
    return bool(_TIMEOUT_TEXT.search(str(exc)))


def timeout_message(exc: BaseException) -> str | None:
    """One line on the collective that timed out (a TrainLab helper's or a direct torch call); else None."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:  # a timeout may arrive wrapped in the user's own exception
        chain.append(link)
        link = link.__cause__ or link.__context__
    ours = [e for e in chain if isinstance(e, CollectiveTimeout)]
    if ours:
        return str(ours[0])
    torch_error = next((e for e in chain if _is_timeout(e)), None)
    if torch_error is None:
        return None
    frames = traceback.extract_tb(exc.__traceback__)
    if torch_error is not exc:  # from where it was caught down to torch
        frames += traceback.extract_tb(torch_error.__traceback__)
    c10d = [f.name for f in frames if f.filename.endswith(os.path.join("distributed", "distributed_c10d.py"))]
    if c10d:
        op = c10d[0]  # the public torch.distributed function, outermost of its internals
    elif any(os.sep + "autograd" + os.sep in f.filename for f in frames):
        op = "the gradients' all_reduce of backward()"
    else:
        op = "a collective"
    return _timeout_text(op, None, frames)


def _timeout_text(op: str, helper: str | None, frames: list[traceback.FrameSummary]) -> str:
    named = helper if helper != op else None  # barrier() needs no second name
    source = ", ".join(part for part in (named, f"called from {_call_site(frames, helper)}") if part)
    return (
        f"waited {_state.timeout.total_seconds():g} s in {op} ({source}) for the other processes — a process "
        f"stopped calling collectives or is much slower; look for a collective under a rank-dependent `if`, "
        f"or raise TRAINER.TIMEOUT_S"
    )


def _call_site(frames: list[traceback.FrameSummary], helper: str | None) -> str:
    """The user's file:line that led here, else the innermost TrainLab function (outside this module)."""
    user = user_frame(frames)
    if user is not None:
        return f"{short_path(user.filename)}:{user.lineno}"
    ours = [f for f in frames if f.filename != __file__ and f.name != helper and is_trainlab_file(f.filename)]
    if not ours:
        return "?"
    return f"{short_path(ours[-1].filename)}:{ours[-1].lineno} in {ours[-1].name}"
