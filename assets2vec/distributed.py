"""Data-parallel training on torch.distributed (gloo on CPU, NCCL on GPU), started by torchrun.

Every worker holds the whole model and the whole code tables and draws the same global batch
(the batcher and the sampler noise come from one seeded generator); worker r trains on its
contiguous slice of it, and draws (or, streaming, reads) only the assets in that slice. Losses are sums over the worker's rays divided by global counts, so the
workers' gradients add up to the single-process gradient. The network's gradient is all-reduced
as one flat buffer; of the code tables only the rows of the batch's assets are all-reduced (every
worker knows them: the batch is global), never the whole table. The code-table penalties (decorrelation,
independence) depend on the whole table but on no batch, so each worker adds its identical gradient after the
reduction. Every worker then takes the same optimizer step, and codes stay replicated.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

import torch
import torch.distributed as dist

_created = False


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not running under torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    global _created
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        _created = True
    return world()


def shutdown() -> None:
    """Leave the process group this module joined (not one the caller set up)."""
    global _created
    if _created and dist.is_initialized():
        dist.destroy_process_group()
        _created = False


def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every worker: replicas start identical even where
    initialisation is not bit-reproducible across machines."""
    if world()[1] <= 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def any_flag(flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR over workers: every worker stops at the same step when any one must."""
    if world()[1] <= 1:
        return flags
    t = torch.tensor([int(f) for f in flags], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(x) for x in t]


@contextmanager
def deferred_interrupts(enabled: bool):
    """While training data-parallel, Ctrl-C (SIGINT/SIGTERM from torchrun) only raises a flag,
    checked at a step boundary by every worker together, so no worker leaves mid-collective and
    rank 0 can still write its checkpoint."""
    state = {"stop": False}
    if not enabled:
        yield state
        return

    def handler(signum, frame):
        state["stop"] = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def rows_of(rank: int, size: int, total: int) -> tuple[int, int]:
    """This worker's contiguous slice [start, stop) of a global batch of `total` rays."""
    return rank * total // size, (rank + 1) * total // size


def sum_(t: torch.Tensor) -> torch.Tensor:
    if world()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def reduce_gradients(params: list[torch.nn.Parameter], code_tables: list[torch.nn.Embedding], touched: torch.Tensor) -> None:
    """Sum gradients over workers: network parameters densely (one flat buffer), code tables only
    on the `touched` rows."""
    if world()[1] <= 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).clone()
        offset += n
    for table in code_tables:
        w = table.weight
        if w.grad is None:
            w.grad = torch.zeros_like(w)
        rows = w.grad[touched].contiguous()
        dist.all_reduce(rows, op=dist.ReduceOp.SUM)
        w.grad[touched] = rows


def broadcast_ints(values: list[int]) -> list[int]:
    """Rank 0's values on every worker (decisions only rank 0 times, e.g. the time budget)."""
    if world()[1] <= 1:
        return values
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.int64, device=dev)
    dist.broadcast(t, src=0)
    return [int(x) for x in t]


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()
