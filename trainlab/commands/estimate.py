"""`trainlab estimate`: memory per process of a config, per strategy, against this machine's memory; and the
check `trainlab train` makes before it starts anything."""

from __future__ import annotations

import dataclasses
import math
import os
import sys

from ..config import Config
from ..errors import ConfigError
from ..estimate import MemoryEstimate, MemoryPlan, Workload, estimate_memory, plan_memory
from ..model_shape import ModelShape, is_estimable


@dataclasses.dataclass(frozen=True)
class AvailableMemory:
    """Memory each process on this machine may use; ``source`` says what was measured."""

    device: str  # cuda | cpu
    per_rank: int
    host_per_rank: int
    source: str

    def fits(self, estimate: MemoryEstimate) -> bool:
        if self.device == "cpu":  # device and host are one pool
            return estimate.device_total + estimate.host_total <= self.per_rank
        return estimate.device_total <= self.per_rank and estimate.host_total <= self.host_per_rank

    def share(self, estimate: MemoryEstimate) -> float:
        """The fraction of the training device's memory the estimate takes."""
        used = estimate.device_total + (estimate.host_total if self.device == "cpu" else 0)
        return used / max(self.per_rank, 1)


def estimate_table(cfg: Config, nproc: int = 1, nnodes: int = 1, strategy: str | None = None) -> str:
    """What `trainlab estimate` prints: one row per strategy, and a change if the judged one does not fit."""
    plan = plan_memory(cfg, nproc * nnodes, strategy)
    available = available_memory(cfg, nproc)
    model, work = plan.model, plan.workload
    summary = (
        f"{model.architecture}: {format_count(model.params)} parameters, {format_count(model.trainable)} "
        f"trainable; batch {work.batch_size} x {work.seq_len} tokens per process, {8 * work.dtype_bytes}-bit "
        f"activations{' (gradient checkpointing)' if work.checkpointing else ''}; {work.optimizer_states:g} "
        f"optimizer states per trainable parameter; {_processes(plan.world_size)}"
    )
    lines = [summary, f"available per process: {format_bytes(available.per_rank)} ({available.source})", ""]
    header = ("strategy", "params", "grads", "optimizer", "buffers", "activations", "device", "host", "")
    rows = [header] + [
        (name + (" *" if name == plan.configured and not strategy else ""), *_cells(estimate, available))
        for name, estimate in plan.estimates.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])), row[-1]]
        lines.append("  ".join(cells).rstrip())
    if not strategy:
        lines.append("* TRAINER.STRATEGY; fsdp+offload keeps params, grads and optimizer state in host RAM")
    judged = plan.estimates.get(plan.configured)
    if judged is not None and not available.fits(judged):
        lines.append(f"{plan.configured} does not fit: {suggest(plan, available)}")
    return "\n".join(lines)


def _cells(estimate: MemoryEstimate, available: AvailableMemory) -> tuple[str, ...]:
    parts = (estimate.params, estimate.grads, estimate.optimizer, estimate.buffers, estimate.activations)
    host = format_bytes(estimate.host_total) if estimate.offloaded else "-"
    device = format_bytes(estimate.device_total)
    return (*map(format_bytes, parts), device, host, verdict(estimate, available))


def verdict(estimate: MemoryEstimate, available: AvailableMemory) -> str:
    """``fits (38% of 15.6 GiB)`` or ``does NOT fit (...)``."""
    share = f"{100 * available.share(estimate):.0f}% of {format_bytes(available.per_rank)}"
    if available.fits(estimate):
        return f"fits ({share})"
    if available.device != "cpu" and estimate.device_total <= available.per_rank:
        host = f"{format_bytes(estimate.host_total)} of {format_bytes(available.host_per_rank)}"
        return f"does NOT fit (host RAM: {host})"
    return f"does NOT fit ({share})"


def suggest(plan: MemoryPlan, available: AvailableMemory) -> str:
    """One change that makes the judged strategy fit, the least intrusive first."""
    model, work, world_size, strategy = plan.model, plan.workload, plan.world_size, plan.configured

    def fits(name: str = strategy, shape: ModelShape = model, workload: Workload = work) -> bool:
        return available.fits(estimate_memory(shape, workload, name, world_size))

    sharding = world_size > 1  # fsdp needs a process group
    if sharding and strategy in ("single", "ddp") and fits("fsdp"):
        return "use TRAINER.STRATEGY fsdp (parameters, gradients and optimizer state sharded)"
    if sharding and strategy != "fsdp+offload" and fits("fsdp+offload"):
        return "use TRAINER.STRATEGY fsdp with TRAINER.FSDP_CPU_OFFLOAD true"
    if not work.checkpointing and fits(workload=dataclasses.replace(work, checkpointing=True)):
        return "set MODEL.GRADIENT_CHECKPOINTING true (activations recomputed in backward)"
    smaller = sorted({max(work.batch_size >> k, 1) for k in range(1, work.batch_size.bit_length() + 1)})
    fitting = [b for b in smaller if b < work.batch_size and fits(workload=dataclasses.replace(work, batch_size=b))]
    batch = max(fitting, default=0)
    if batch:
        accum = math.ceil(work.batch_size / batch)
        return f"set TRAINER.BATCH_SIZE_TRAIN {batch} (GRAD_ACCUM_STEPS {accum} keeps the global batch)"
    frozen = dataclasses.replace(model, trainable=0, trainable_bytes=0, block_trainable=0, root_trainable=0)
    if model.trainable == model.params and fits(shape=frozen):
        return "train adapters only: MODEL.LORA (or MODEL.PEFT) with TARGET_MODULES of the attention layers"
    return ("no single change fits: combine fsdp+offload, gradient checkpointing, a smaller batch and LoRA, "
            "or use more devices")


def check_memory(cfg: Config, nproc: int, nnodes: int, force: bool) -> None:
    """Before `trainlab train`: a line with the configured strategy's estimate; ConfigError if it cannot fit.

    Only Hugging Face models (TransformersModelWrapper) and the built-in strategies are estimated. A failure
    of the estimate itself is a warning: it never stops a run.
    """
    try:
        if not is_estimable(cfg):
            return
        plan = plan_memory(cfg, nproc * nnodes)
        estimate = plan.estimates.get(plan.configured)  # None for a user's strategy: nothing to judge
        # several processes: this one only launches them and must not hold a CUDA context
        available = available_memory(cfg, nproc, context=nproc * nnodes == 1) if estimate else None
    except Exception as error:  # noqa: BLE001 — the estimate is advice: whatever breaks in it, training runs
        print(f"trainlab: warning: no memory estimate ({_first_line(error)})", file=sys.stderr)
        return
    if estimate is None or available is None:
        return
    line = (f"memory per process ({plan.configured}, {_processes(plan.world_size)}): "
            f"~{format_bytes(estimate.device_total)} (params {format_bytes(estimate.params)}, grads "
            f"{format_bytes(estimate.grads)}, optimizer {format_bytes(estimate.optimizer)}, activations "
            f"{format_bytes(estimate.activations)}) of {format_bytes(available.per_rank)} {available.source}: "
            f"{verdict(estimate, available)}")
    if available.fits(estimate):
        print(f"trainlab: {line}", file=sys.stderr)
    elif force:
        print(f"trainlab: {line}; training anyway (--force)", file=sys.stderr)
    else:
        raise ConfigError(f"{line}; {suggest(plan, available)}; or pass --force to train anyway "
                          f"(`trainlab estimate` compares the strategies)")


def available_memory(cfg: Config, nproc_per_node: int, context: bool = True) -> AvailableMemory:
    """Free memory of the GPUs (shared when processes outnumber them), else host RAM, per local process.

    ``context=False`` reads the GPUs without creating a CUDA context in this process (through NVML, else
    their total memory): a launcher that only waits for its workers must not hold ~0.5 GiB on each GPU.
    """
    import torch

    from ..components import trainer_settings

    host = host_memory() // nproc_per_node
    if trainer_settings(cfg).device == "cpu" or not torch.cuda.is_available():
        shared = f" / {nproc_per_node}" if nproc_per_node > 1 else ""
        return AvailableMemory("cpu", host, host, f"host RAM{shared}")
    count = torch.cuda.device_count()
    free = min(gpu_free_memory(index, context) for index in range(min(count, nproc_per_node)))
    sharing = math.ceil(nproc_per_node / count)
    name = torch.cuda.get_device_name(0) + (f" / {sharing}" if sharing > 1 else "")
    return AvailableMemory("cuda", free // sharing, host, f"free on {name}")


def gpu_free_memory(index: int, context: bool = True) -> int:
    """Free bytes of GPU ``index``: ``mem_get_info``, or without a CUDA context NVML's reading (else the total)."""
    import torch

    if context:
        return torch.cuda.mem_get_info(index)[0]
    total = torch.cuda.get_device_properties(index).total_memory  # device properties need no context
    try:
        return total - torch.cuda.device_memory_used(index)
    except Exception:  # noqa: BLE001 — no pynvml, or NVML cannot read this device
        return total


def host_memory() -> int:
    """Bytes of RAM available now (psutil; else all physical RAM), within the cgroup's limit if one is set."""
    try:
        import psutil

        total = psutil.virtual_memory().available
    except ImportError:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as file:
            limit = file.read().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def format_count(n: int) -> str:
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def _processes(n: int) -> str:
    return f"{n} process{'es' if n > 1 else ''}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
