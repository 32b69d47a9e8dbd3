"""Components that misbehave the way user code does: a rank that stops calling collectives, CUDA on a CPU run;
and hooks that bring the faults of a real cluster: a killed process, a full disk, signals in the middle of a save.

Imported with ``--import`` next to the blobs config's own components.
"""

from __future__ import annotations

import os
import resource
import signal
import time

import safetensors.torch
import torch

from trainlab import HOOKS, TRAINERS, BaseTrainer, Hook

STALL_RANK, STALL_STEP = 1, 2


def stall_until_stopped(limit_s: float = 60.0) -> None:
    """Call no collective until the launcher stops this process (SIGTERM) or ``limit_s`` passes.

    A stuck rank, but one that goes on once told to stop: the test need not wait for the launcher's SIGKILL.
    """
    stopped = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    deadline = time.monotonic() + limit_s
    while not stopped and time.monotonic() < deadline:
        time.sleep(0.05)


class StalledCollectiveTrainer(BaseTrainer):
    """After step 2 every rank calls one more collective, but rank 1 stalls first: the others wait in it."""

    def train_step(self, batch):
        loss = super().train_step(batch)
        if self.global_step == STALL_STEP:
            if self.rank == STALL_RANK:
                stall_until_stopped()
            self.collective(loss.detach().clone())
        return loss

    def collective(self, loss: torch.Tensor) -> None:
        raise NotImplementedError


@TRAINERS.register_module()
class StalledReduceTrainer(StalledCollectiveTrainer):
    def collective(self, loss: torch.Tensor) -> None:
        self.reduce_value(loss)  # user code calls TrainLab's helper


@TRAINERS.register_module()
class StalledTorchAllReduceTrainer(StalledCollectiveTrainer):
    def collective(self, loss: torch.Tensor) -> None:
        torch.distributed.all_reduce(loss)  # user code calls torch.distributed itself


@TRAINERS.register_module()
class CudaSyncTrainer(BaseTrainer):
    """Synchronizes CUDA in every step, as the prototype's trainers did, whatever the device."""

    def train_step(self, batch):
        torch.cuda.synchronize(self.device)  # user code's CUDA call
        return super().train_step(batch)


@HOOKS.register_module()
class KillOnceHook(Hook):
    """SIGKILLs rank ``rank`` after optimizer step ``step`` (after that step's checkpoint), in the launcher's first
    attempt only: the restarted processes (TORCHELASTIC_RESTART_COUNT > 0) run on."""

    priority = 90

    def __init__(self, step: int, rank: int = 1) -> None:
        self.step, self.rank = step, rank

    def after_train_step(self, trainer, metrics):
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0"
        if first_attempt and trainer.global_step == self.step and trainer.rank == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class FileSizeLimitHook(Hook):
    """From optimizer step ``step`` on, no file of this process may grow past ``max_bytes`` (RLIMIT_FSIZE): a
    write beyond fails with EFBIG, as on a full disk (Python ignores SIGXFSZ, so the write fails instead of the
    process dying)."""

    priority = 10  # before the checkpoint hook saves this step

    def __init__(self, step: int, max_bytes: int) -> None:
        self.step, self.max_bytes = step, max_bytes

    def after_train_step(self, trainer, metrics):
        if trainer.global_step == self.step:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@HOOKS.register_module()
class SignalDuringSaveHook(Hook):
    """At optimizer step ``step``, the checkpoint writer sends ``signals`` (names, e.g. [SIGTERM, SIGTERM]) to its
    own process after writing the start of the model file, then writes the file whole if it is still running."""

    priority = 10  # before the checkpoint hook saves this step

    def __init__(self, step: int, signals: list[str]) -> None:
        self.step, self.signals = step, [signal.Signals[name] for name in signals]

    def after_train_step(self, trainer, metrics):
        if trainer.global_step != self.step:
            return
        real_save_model = safetensors.torch.save_model

        def interrupted_save_model(model, filename, *args, **kwargs):
            safetensors.torch.save_model = real_save_model
            with open(filename, "wb") as handle:
                handle.write(b"\0" * 100)
                handle.flush()
            for signum in self.signals:
                os.kill(os.getpid(), signum)  # its Python handler runs before the next line
            real_save_model(model, filename, *args, **kwargs)

        safetensors.torch.save_model = interrupted_save_model
