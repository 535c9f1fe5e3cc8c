"""Launching worker processes: shards of a command on this machine, or a command under torchrun.

`render --workers`, `embed --workers` and `fit --workers` run here. Workers share this process's
cores (`OMP_NUM_THREADS` split between them: oversubscribed threads slow everyone down), write
their stderr to files rather than pipes (a full pipe would stall a worker nobody reads), and stop
when this process is interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Sequence

from assets2vec.cpus import worker_threads


def cli(*args: str) -> list[str]:
    """The command line that runs `assets2vec ARGS` with this interpreter."""
    return [sys.executable, "-m", "assets2vec.cli.main", *args]


def worker_env(n: int, override: bool = True) -> dict[str, str]:
    """This environment with the cores split between `n` workers (kept if set and not `override`)."""
    env = dict(os.environ)
    if override or "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = worker_threads(n)
    return env


def run_shards(commands: Sequence[list[str]], ok: tuple[int, ...] = (0,), poll: Callable[[], None] | None = None,
               poll_s: float = 1.0) -> list[str]:
    """Run one process per command at once with the cores split between them; wait for all.

    `poll` is called every `poll_s` seconds while any runs (for a progress bar). Returns a message
    per process whose exit status is not in `ok`, with the last line of its stderr. Ctrl-C
    terminates them all and re-raises."""
    env = worker_env(len(commands))
    logs = [tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") for _ in commands]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log) for cmd, log in zip(commands, logs)]
    try:
        while any(p.poll() is None for p in procs):
            if poll is not None:
                poll()
            time.sleep(poll_s)
        if poll is not None:
            poll()
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        raise
    errors = []
    for i, (p, log) in enumerate(zip(procs, logs)):
        if p.returncode not in ok:
            log.seek(0)
            last = (log.read().strip().splitlines() or ["no message"])[-1]
            errors.append(f"shard {i}/{len(procs)} failed: {last}")
        log.close()
    return errors


def torchrun(n: int, argv: list[str]) -> int:
    """Re-run `assets2vec ARGV` under `torchrun --standalone --nproc_per_node n`, minus any --workers."""
    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--workers":
            skip = True
            continue
        if a.startswith("--workers="):
            continue
        args.append(a)
    args.append("--workers=1")  # the last value wins, whatever abbreviation the user typed
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "assets2vec.cli.main", *args]
    proc = subprocess.Popen(cmd, env=worker_env(n, override=False))
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        # torchrun passes the interrupt on to the workers, which stop together; rank 0 saves.
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait()
        return 130
    return rc if rc >= 0 else 128 - rc
