"""Components that misbehave the way user code does: a rank that stops calling collectives, CUDA on a CPU run.

Imported with ``--import`` next to the blobs config's own components.
"""

from __future__ import annotations

import signal
import time

import torch

from trainlab import TRAINERS, BaseTrainer

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
