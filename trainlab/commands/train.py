"""One training process: `python -m trainlab.train CONFIG [overrides]` (what torchrun starts on each rank)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from ..errors import TrainLabError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainlab.train", description=__doc__)
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="KEY VALUE pairs or KEY=VALUE items")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    try:
        from ..config import load_config
        from ..components import import_modules, run_training

        import_modules(args.imports)
        run_training(load_config(args.config, args.overrides))
    except TrainLabError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"trainlab: error{f' (rank {rank})' if world_size > 1 else ''}: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        if rank == 0:
            print(f"trainlab: {exc or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 — a peer's failure surfaces here as a broken connection: say so once, briefly
        if world_size > 1 and _is_peer_failure(exc) and not args.debug:
            print(f"trainlab: rank {rank} stopped: another process failed", file=sys.stderr)
        else:
            traceback.print_exc()
        return 1
    return 0


def _is_peer_failure(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(s in text for s in ("connection closed", "connection reset", "broken pipe", "disterror", "gloo", "nccl"))


if __name__ == "__main__":
    sys.exit(main())
