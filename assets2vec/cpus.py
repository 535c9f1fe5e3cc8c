"""How many CPU cores this process may actually use: its affinity mask and its cgroup's quota.

`os.cpu_count()` reports the machine's cores, not the process's: inside a container limited
to 2 CPUs of a 64-core host, or under `taskset`, it overstates what can run at once, and
threads sized from it wait for cores they never get.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _cgroup_quota(root: Path = CGROUP) -> float | None:
    """CPUs allowed by the cgroup's CFS quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), or None if unlimited."""
    v2 = root / "cpu.max"
    if v2.is_file():
        try:
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        except (OSError, ValueError):
            return None
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cores(root: Path = CGROUP) -> int:
    """Cores this process can run on at once: min(affinity mask, cgroup quota rounded up), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota(root)
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


# GNU OpenMP (PyTorch's CPU thread pool on Linux) lets a thread that has finished its share of a
# parallel region spin for a while before it sleeps. Beside another busy process that spinning
# takes the core the straggler thread needs, and one step waits for it: a short spin keeps the
# speed alone and loses far less beside a neighbour (measured in benchmarks/threads.py).
SPIN_COUNT = "1000"


def set_openmp_defaults() -> None:
    """Defaults for OpenMP read when its library loads: call before torch is imported.

    Only sets variables the user has not set, and does nothing once torch is loaded."""
    import sys

    if "torch" not in sys.modules:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


def configure_threads(threads: int | None = None) -> int:
    """Size torch's intra-op pool to `threads`, else $ASSETS2VEC_THREADS, else the usable cores.

    Returns the thread count. Child processes launched later inherit it via OMP_NUM_THREADS."""
    if threads is None:
        env = os.environ.get("ASSETS2VEC_THREADS", "").strip()
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise ValueError(f"ASSETS2VEC_THREADS={env!r} is not a whole number of threads") from None
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    n = threads or usable_cores()
    import torch

    torch.set_num_threads(n)
    os.environ["ASSETS2VEC_THREADS"] = str(n)
    return n


def worker_threads(workers: int) -> str:
    """OMP_NUM_THREADS for each of `workers` processes sharing this process's cores."""
    total = int(os.environ.get("ASSETS2VEC_THREADS") or usable_cores())
    return str(max(1, total // max(1, workers)))
