"""One training process, `python -m trainlab.train CONFIG [overrides]`: what torchrun or srun starts."""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Callable

from ..errors import TrainLabError

EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# What torch says when code asks for CUDA that this machine or build does not have.
_CUDA_MISSING = re.compile(
    r"not compiled with CUDA|no CUDA GPUs are available|found no NVIDIA driver"
    r"|CUDA driver initialization failed|CUDA is not available",
    re.IGNORECASE,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainlab.train", description=__doc__)
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="KEY VALUE pairs or KEY=VALUE items")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def job() -> None:
        from ..components import run_training
        from ..validation import prepare_config

        run_training(prepare_config(args.config, args.overrides, args.imports))

    return run_guarded(job, args.debug)


def run_guarded(job: Callable[[], object], debug: bool = False) -> int:
    """Run ``job`` (this process's part of a training run) and turn its failure into one clear line and an exit
    code: 2 for the user's mistakes, 1 for failures, 130 for an interruption; the traceback only with ``debug``."""
    from ..engine import distributed
    from ..engine.rendezvous import slurm_environment

    os.environ.update(slurm_environment())  # an srun task: its rank is known from here on
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    prefix = f"trainlab: error{f' (rank {rank})' if world_size > 1 else ''}: "
    try:
        job()
    except TrainLabError as exc:
        if debug:
            traceback.print_exc()
        print(f"{prefix}{exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        if rank == 0:
            print(f"trainlab: {exc or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 — the last stop: one clear line where we can explain the failure
        if debug:
            traceback.print_exc()
        timed_out = distributed.timeout_message(exc)
        if timed_out is not None:
            print(f"{prefix}{timed_out}", file=sys.stderr)
            # The process group cannot be destroyed (its peers are gone), and a gloo thread still holding a
            # tensor at interpreter shutdown aborts the process (SIGABRT): leave without the shutdown.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_FAILED)
        cuda = _cuda_on_cpu_message(exc)
        if cuda is not None:
            print(f"{prefix}{cuda}", file=sys.stderr)
            return EXIT_USER_ERROR
        if world_size > 1 and _is_peer_failure(exc):  # a peer's failure surfaces as a broken connection
            print(f"trainlab: rank {rank} stopped: another process failed", file=sys.stderr)
        elif not debug:
            traceback.print_exc()
        return EXIT_FAILED
    return 0


def _is_peer_failure(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(s in text for s in ("connection closed", "connection reset", "broken pipe", "disterror", "gloo", "nccl"))


def _cuda_on_cpu_message(exc: BaseException) -> str | None:
    """The user's line that asked for CUDA on a machine without it, and the fix; None for other errors."""
    import torch

    from ..engine.user_frames import short_path, user_frame

    if torch.cuda.is_available() or not _CUDA_MISSING.search(str(exc)):
        return None
    frame = user_frame(traceback.extract_tb(exc.__traceback__))
    if frame is None:  # not the user's call: a TrainLab bug, which deserves its traceback
        return None
    code = f" (`{frame.line}`)" if frame.line else ""
    return (
        f"{short_path(frame.filename)}:{frame.lineno}{code} uses CUDA, but this process runs on CPU "
        f"({type(exc).__name__}: {exc}) — guard it with `if torch.cuda.is_available()`, or run with --gpus"
    )


if __name__ == "__main__":
    sys.exit(main())
