"""`trainlab estimate`: memory per process of a config, per strategy, against this machine; and the check
`trainlab train` runs before it starts anything."""

from __future__ import annotations

import math
import os
import sys

from ..config import Config
from ..errors import ConfigError
from ..estimate import AvailableMemory, MemoryEstimate, MemoryPlan, is_estimable, plan_memory


def estimate_table(cfg: Config, nproc: int = 1, nnodes: int = 1, strategy: str | None = None) -> str:
    """The table `trainlab estimate` prints: one row per strategy, and what to change if the configured one does not fit."""
    plan = plan_memory(cfg, available_memory(cfg, nproc), nproc * nnodes, strategy)
    model, work = plan.model, plan.workload
    lines = [
        f"{model.architecture}: {format_count(model.params)} parameters, {format_count(model.trainable)} trainable; "
        f"batch {work.batch_size} x {work.seq_len} tokens per process, activations {work.dtype_bytes} bytes each"
        f"{', gradient checkpointing' if work.checkpointing else ''}; {work.optimizer_states:g} optimizer states "
        f"per trainable parameter; {plan.world_size} process{'es' if plan.world_size > 1 else ''}",
        f"available per process: {format_bytes(plan.available.per_rank)} ({plan.available.source})",
        "",
    ]
    header = ("strategy", "params", "grads", "optimizer", "buffers", "activations", "device", "host", "")
    rows = [header] + [
        (name + (" *" if name == plan.configured and not strategy else ""), *_row(estimate, plan.available))
        for name, estimate in plan.estimates.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1])), row[-1]]
        lines.append("  ".join(cells).rstrip())
    if not strategy:
        lines.append(f"* configured (TRAINER.STRATEGY); fsdp+offload keeps params, grads and optimizer state in host memory")
    if plan.suggestion:
        lines.append(f"{plan.configured} does not fit: {plan.suggestion}")
    return "\n".join(lines)


def _row(estimate: MemoryEstimate, available: AvailableMemory) -> tuple[str, ...]:
    parts = (estimate.params, estimate.grads, estimate.optimizer, estimate.buffers, estimate.activations)
    return (*(format_bytes(n) for n in parts), format_bytes(estimate.device_total),
            format_bytes(estimate.host_total) if estimate.offloaded else "-", verdict(estimate, available))


def verdict(estimate: MemoryEstimate, available: AvailableMemory) -> str:
    """``fits (38% of 15.6 GiB)`` or ``does NOT fit (...)``."""
    share = f"{100 * available.share(estimate):.0f}% of {format_bytes(available.per_rank)}"
    if available.fits(estimate):
        return f"fits ({share})"
    if available.device != "cpu" and estimate.device_total <= available.per_rank:
        return f"does NOT fit (host: {format_bytes(estimate.host_total)} of {format_bytes(available.host_per_rank)})"
    return f"does NOT fit ({share})"


def check_memory(cfg: Config, nproc: int, nnodes: int, force: bool) -> None:
    """Before `trainlab train`: one line with the configured strategy's estimate; ConfigError when it cannot fit.

    Only Hugging Face models (TransformersModelWrapper) and the built-in strategies are estimated. A failure
    of the estimate itself is a warning: it never stops a run.
    """
    try:
        if not is_estimable(cfg):
            return
        plan = plan_memory(cfg, available_memory(cfg, nproc), nproc * nnodes)
    except Exception as error:  # the estimate is advice: whatever breaks in it, training goes on
        print(f"trainlab: warning: no memory estimate ({_first_line(error)})", file=sys.stderr)
        return
    estimate = plan.estimates.get(plan.configured)
    if estimate is None:  # a user's strategy: nothing to judge
        return
    line = (f"memory per process ({plan.configured}, {plan.world_size} process{'es' if plan.world_size > 1 else ''}): "
            f"~{format_bytes(estimate.device_total)} "
            f"(params {format_bytes(estimate.params)}, grads {format_bytes(estimate.grads)}, optimizer "
            f"{format_bytes(estimate.optimizer)}, activations {format_bytes(estimate.activations)}) of "
            f"{format_bytes(plan.available.per_rank)} {plan.available.source}: {verdict(estimate, plan.available)}")
    if plan.suggestion is None:
        print(f"trainlab: {line}", file=sys.stderr)
    elif force:
        print(f"trainlab: {line}; training anyway (--force)", file=sys.stderr)
    else:
        raise ConfigError(f"{line}; {plan.suggestion}; or pass --force to train anyway "
                          f"(see `trainlab estimate CONFIG --nproc {nproc}`)")


def available_memory(cfg: Config, nproc_per_node: int) -> AvailableMemory:
    """Free memory of the GPUs the run uses (shared when processes outnumber them), else host RAM, per process."""
    import torch

    from ..components import trainer_settings

    host = host_memory() // nproc_per_node
    device = trainer_settings(cfg).device
    if device == "cpu" or not torch.cuda.is_available():
        return AvailableMemory("cpu", host, host, "host RAM" + (f" / {nproc_per_node}" if nproc_per_node > 1 else ""))
    count = torch.cuda.device_count()
    free = min(torch.cuda.mem_get_info(index)[0] for index in range(min(count, nproc_per_node)))
    sharing = math.ceil(nproc_per_node / count)
    return AvailableMemory("cuda", free // sharing, host,
                           f"free on {torch.cuda.get_device_name(0)}" + (f" / {sharing}" if sharing > 1 else ""))


def host_memory() -> int:
    """Bytes of RAM available now (psutil; else all physical RAM), within the cgroup's limit if there is one."""
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
