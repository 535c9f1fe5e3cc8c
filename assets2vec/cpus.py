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
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
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
