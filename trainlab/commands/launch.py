"""Start N training (or evaluation) processes through PyTorch's elastic launcher (torchrun), on one machine or several.

With ``--max-restarts N`` the launcher restarts the whole group when a process dies, up to N times; the run
directory is decided here, once, and each restarted process resumes it from its newest complete checkpoint
(``python -m trainlab.commands.launch RUN_DIR CONFIG [overrides]`` is that process's entry point).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..engine.rendezvous import free_port
from ..errors import ConfigError


@dataclass
class LaunchOptions:
    """How many processes to start and how they find each other (torchrun's options)."""

    nproc: int = 1
    gpus: str | None = None
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    max_restarts: int = 0

    def resolve(self) -> LaunchOptions:
        if self.gpus:
            devices = [d.strip() for d in self.gpus.split(",") if d.strip()]
            if not all(d.isdigit() for d in devices):
                raise ConfigError(f"--gpus takes device numbers like 0,1,2,3, got '{self.gpus}'")
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
            self.nproc = len(devices)
            import torch

            if not torch.cuda.is_available():  # not an error: the run works on CPU, but the user should know
                print(f"trainlab: note: --gpus {self.gpus} but this machine has no CUDA device; training on CPU "
                      f"with {self.nproc} process(es)", file=sys.stderr)
        if self.nproc < 1 or self.nnodes < 1:
            raise ConfigError(f"--nproc and --nnodes must be at least 1 (got {self.nproc}, {self.nnodes})")
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(f"--node-rank must be in 0..{self.nnodes - 1}, got {self.node_rank}")
        if self.nnodes > 1 and self.master_port is None and self.rdzv_endpoint is None:
            raise ConfigError("several nodes need a meeting point: pass --master-addr and --master-port (or --rdzv-endpoint)")
        if self.max_restarts < 0:
            raise ConfigError(f"--max-restarts must be 0 or more, got {self.max_restarts}")
        if self.master_port is not None and not 1 <= self.master_port <= 65535:
            raise ConfigError(f"--master-port must be a TCP port in 1..65535, got {self.master_port}")
        _, colon, port = (self.rdzv_endpoint or "").rpartition(":")
        if colon and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigError(
                f"--rdzv-endpoint takes HOST:PORT with a port in 1..65535, got '{self.rdzv_endpoint}'"
            )
        # Every node's agent must name the same run: the id keys the rendezvous state in the shared store.
        self.rdzv_id = self.rdzv_id or os.environ.get("SLURM_JOB_ID") or "trainlab"
        return self

    @property
    def distributed(self) -> bool:
        """Whether the job runs under the elastic launcher: several processes, or one it must restart."""
        return self.nproc * self.nnodes > 1 or self.max_restarts > 0


def job_run_dir(module_args: list[str], nnodes: int) -> Path:
    """The run directory of a job whose processes may be restarted, decided before any starts: TRAINER.RUN_DIR,
    the run that TRAINER.RESUME continues, else a new timestamped one (workers would each pick a new one)."""
    from ..config import load_config
    from ..engine.checkpoint_files import find_resume_checkpoint
    from ..engine.setup import make_run_dir
    from .train import parse_args

    args = parse_args(module_args)
    trainer = load_config(args.config, args.overrides).TRAINER
    if trainer.RUN_DIR:
        return Path(trainer.RUN_DIR)
    if nnodes > 1:
        raise ConfigError("--max-restarts on several nodes needs TRAINER.RUN_DIR (one folder that every node sees): "
                          "restarted processes continue the run there")
    if trainer.RESUME:
        found = find_resume_checkpoint(trainer.RESUME, "", trainer.OUTPUT_DIR, trainer.PROJECT_NAME)
        if found is not None:
            return found.parent.parent
    return make_run_dir(trainer.OUTPUT_DIR, trainer.PROJECT_NAME, "")


def restarted_worker(run_dir: str, module_args: list[str]) -> int:
    """One training process of a job with --max-restarts: after a restart (TORCHELASTIC_RESTART_COUNT > 0) it
    resumes ``run_dir`` from its newest complete checkpoint; the first attempt, or one before any checkpoint,
    trains from the start."""
    from ..engine.checkpoint_files import latest_checkpoint
    from .train import main

    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if restart > 0:
        found = latest_checkpoint(Path(run_dir) / "checkpoints")
        if found is not None:
            module_args = [*module_args, "TRAINER.RESUME", "auto"]
        if os.environ.get("RANK", "0") == "0":
            what = f"resuming from {found.name}" if found is not None else "no checkpoint yet: starting over"
            print(f"trainlab: restart {restart} of {os.environ.get('TORCHELASTIC_MAX_RESTARTS', '?')} after a process "
                  f"failed: {run_dir}, {what}", file=sys.stderr)
    return main(module_args)


def launch(options: LaunchOptions, module_args: list[str], module: str = "trainlab.train", task: str = "training") -> int:
    """Run ``python -m <module> *module_args`` in ``nproc`` processes per node; returns the exit code.

    ``module`` is one process of the job (training, or ``trainlab.commands.evaluate``); ``task`` names the job
    in the line printed when a process fails.

    ``--master-addr/--master-port`` is torchrun's static rendezvous (node 0 hosts the store, node ranks are
    given); ``--rdzv-endpoint`` is its c10d rendezvous (any node may host, ranks are assigned on arrival).
    With ``max_restarts`` the processes run ``restarted_worker`` on a run directory decided here.
    """
    from torch.distributed import DistError
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    entry = ["-m", module]
    if options.max_restarts:
        run_dir = str(job_run_dir(module_args, options.nnodes))
        entry = ["-m", __name__, run_dir]
        module_args = [*module_args, "TRAINER.RUN_DIR", run_dir]
    if options.rdzv_endpoint or options.max_restarts:
        endpoint = options.rdzv_endpoint or f"{options.master_addr}:{options.master_port or free_port()}"
        backend, rdzv_configs = "c10d", {}
        if options.max_restarts:
            # Restarted processes must meet in a fresh store: in one kept across attempts they would find the
            # dead ones' addresses (pytorch/pytorch#135712). Only c10d without the shared store opens one per attempt.
            os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    else:
        endpoint = f"{options.master_addr}:{options.master_port or free_port()}"
        backend, rdzv_configs = "static", {"rank": options.node_rank}
    config = LaunchConfig(
        min_nodes=options.nnodes,
        max_nodes=options.nnodes,
        nproc_per_node=options.nproc,
        run_id=options.rdzv_id,
        rdzv_backend=backend,
        rdzv_endpoint=endpoint,
        rdzv_configs=rdzv_configs,
        max_restarts=options.max_restarts,
        monitor_interval=0.2,
    )
    # The elastic agent logs every worker it stops; the failing worker's own error is what users need.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // options.nproc)))
    if options.nnodes > 1:  # nothing else happens until every node has arrived: say what we wait for
        who = f"node {options.node_rank} of {options.nnodes}" if backend == "static" else "every node"
        print(f"trainlab: {who}: meeting at {endpoint} (run id {config.run_id})", file=sys.stderr)
    try:
        elastic_launch(config, sys.executable)("-u", *entry, *module_args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode if failure.exitcode and failure.exitcode > 0 else 1
        print(f"trainlab: {task} failed: process {rank} exited with code {failure.exitcode} (its error is above)",
              file=sys.stderr)
        return code
    except (RendezvousError, DistError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"trainlab: error: the processes could not meet at {endpoint} ({reason}) — check that the port "
              f"is free and reachable, and start every node with the same --nnodes and --master-addr/"
              f"--master-port (or --rdzv-endpoint), node ranks 0..{options.nnodes - 1}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(restarted_worker(sys.argv[1], sys.argv[2:]))
