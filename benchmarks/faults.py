"""Fault injection: SIGKILL at random moments, a full disk, a read-only folder.

For each of the seven commands that write artifacts (`render`, `fit`, `embed`, `catalog build`,
`tag`, `scenes generate`, `merge`), on small inputs the script builds first:

1. **References.** The command runs twice uninterrupted into fresh folders. Files that differ
   between those two runs carry wall-clock figures (timings); every other file is *deterministic*
   and must come out identical after interruptions: byte for byte, except checkpoints (compared
   by weights, code tables, asset ids and step: they also record training seconds) and SQLite
   databases (compared by their rows: the page layout depends on the history of writes).
2. **Kills.** Chains of up to `--kills-per-chain` kills: the command starts, is killed with
   SIGKILL (its whole process group, so worker processes die too) at a moment drawn uniformly
   between the end of its start-up (the time its `--help` takes to load the same modules) and the
   end of an uninterrupted run, and is started again as a user would rerun it (`fit` with
   `--resume` once its folder exists, as its error message says), until the chain's kills are
   spent or a rerun finishes first; then it is left to finish. Chains run until `--kills` kills
   were delivered. Counted per command: kills, reruns that completed (exit 0), artifacts
   identical to a clean run on their deterministic files, and artifacts lost or corrupt (the
   artifact does not open with the product's own readers or fails its check, a deterministic
   file differs, a file is missing, or a stray file is left).
3. **Disk full.** The command writes onto a small file system (a tmpfs when the process may mount
   one; otherwise a file-size limit, `RLIMIT_FSIZE`) beside an earlier artifact, once with no room
   at all and once with 64 KiB: it must stop with a one-line error and no traceback (or, if its
   output fits, finish), leave the earlier artifact and any artifact it changes in place as they
   were, and, rerun with room, finish identical to a clean run.
4. **Read-only.** The same with the output's folder read-only (a read-only bind mount as root,
   where permission bits do not stop writes; `chmod` otherwise).

    .venv/bin/python benchmarks/faults.py                      # 50 kills per command; ~1 h on 2 cores
    .venv/bin/python benchmarks/faults.py --kills 4 --commands render,fit --no-disk   # a quick look

Writes benchmarks/results/faults.json (and prints one JSON line last).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results" / "faults.json"
CLI = [sys.executable, "-m", "assets2vec.cli.main"]


# ----------------------------------------------------------------------------- the inputs

@dataclass
class Inputs:
    """Small artifacts the commands read, made once by the product's own commands."""
    root: Path

    def __getattr__(self, name: str) -> Path:
        return self.root / name


INPUTS: dict[str, tuple[tuple[str, ...], list[str]]] = {
    # name: (inputs it is made from, the command that makes it)
    "lib": ((), ["assets", "generate", "lib", "--n", "8", "--seed", "0", "--quiet"]),
    "lib2": ((), ["assets", "generate", "lib2", "--n", "12", "--seed", "1", "--quiet"]),
    "ds": (("lib",), ["render", "lib", "ds", "--views", "6", "--size", "32", "--quiet"]),
    "ds2": (("lib2",), ["render", "lib2", "ds2", "--views", "6", "--size", "32", "--quiet"]),
    "shard0": (("lib",), ["render", "lib", "shard0", "--views", "24", "--size", "64", "--shard", "0/2", "--quiet"]),
    "shard1": (("lib",), ["render", "lib", "shard1", "--views", "24", "--size", "64", "--shard", "1/2", "--quiet"]),
    "run": (("ds",), ["fit", "ds", "--out", "run", "--preset", "tiny", "--steps", "60", "--quiet"]),
    "cat": (("run",), ["catalog", "build", "run", "cat", "--quiet"]),
    "labels.csv": (("lib",), []),
}


def build_inputs(root: Path, needed: set[str], log: Callable[[str], None]) -> Inputs:
    """Make the inputs in `needed` (and what they are made from) that `root` does not hold yet."""
    def make(name: str) -> None:
        deps, argv = INPUTS[name]
        for d in deps:
            make(d)
        if (root / name).exists():
            return
        if name == "labels.csv":
            _write_labels(root / "lib", root / name)
            return
        log("inputs: assets2vec " + " ".join(argv))
        subprocess.run([*CLI, *argv], cwd=root, check=True, capture_output=True)

    for name in sorted(needed):
        make(name)
    return Inputs(root)


def _write_labels(library: Path, out: Path) -> None:
    """id,value labels of the procedural families (every asset has one): a real tagging input."""
    from render_core.assets.library import open_library

    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "value"])
        for r in open_library(library).records:
            w.writerow([r.id, r.category])


# ----------------------------------------------------------------------------- the commands

@dataclass
class Command:
    """One command under test. `argv(inp, work)` is the command line run in `work`; `prepare`
    copies inputs it changes in place into `work`; `target` is the artifact it writes (relative to
    `work`); `rerun(work)` is what a user types after a crash; `check(path)` opens the artifact
    with the product's readers and raises if it does not hold."""
    name: str
    argv: Callable[[Inputs], list[str]]
    target: str
    check: Callable[[Path], None]
    prepare: Callable[[Inputs, Path], None] = lambda inp, work: None
    rerun: Callable[[list[str], Path], list[str]] = lambda argv, work: argv
    needs: tuple[str, ...] = ()
    not_compared: tuple[str, ...] = ()
    """Paths that describe one invocation rather than the artifact: TensorBoard's event files
    (named by time and process: a resumed run adds one) and a report of what the last
    invocation did (a resumed merge adds fewer files than a fresh one). `check` reads them."""


def _copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


def _fit_rerun(argv: list[str], work: Path) -> list[str]:
    # What the CLI tells a user whose run folder exists: "pass --resume to continue it".
    run = work / "out"
    if run.is_dir() and any(run.iterdir()):
        return [*argv, "--resume"]
    return argv


def check_dataset(path: Path) -> None:
    from render_core.dataset import RenderedDataset

    ds = RenderedDataset(path)
    if not ds.asset_ids:
        raise AssertionError("no assets")
    for aid in ds.asset_ids:
        views = ds.load(aid)
        if len(views.rgb) != ds.n_views:
            raise AssertionError(f"{aid}: {len(views.rgb)} views, expected {ds.n_views}")


def check_merged(path: Path) -> None:
    check_dataset(path)
    report = json.loads((path / "report.json").read_text())
    if report["total_in_dataset"] != len(list((path / "assets").glob("*.npz"))):
        raise AssertionError("report.json disagrees with the merged assets")


def check_run(path: Path) -> None:
    from assets2vec.run import Run

    run = Run.open(path)
    shape, texture = run.codes()
    run.model("cpu")
    run.history  # noqa: B018 - reads history.jsonl
    if len(shape) != len(run.asset_ids) or len(texture) != len(run.asset_ids):
        raise AssertionError("codes and asset ids disagree")


def check_catalog(path: Path) -> None:
    from assets2vec.api import Catalog

    with Catalog.open(path) as cat:
        if not len(cat):
            raise AssertionError("empty catalog")
        for space in cat.spaces:
            cat.index(space)  # an index whose bytes or vectors do not match its digests is refused
            for aid in cat.ids:
                hits = cat.similar(aid, k=3, space=space)
                if not hits:
                    raise AssertionError(f"{space}: no neighbours for {aid}")


def check_tagged(path: Path) -> None:
    from assets2vec.api import Catalog

    check_catalog(path)
    with Catalog.open(path) as cat:
        preds = cat.predict("family")
        if len(preds) != len(cat):
            raise AssertionError(f"{len(preds)} assets predicted of {len(cat)}")


def check_scenes(path: Path) -> None:
    from PIL import Image

    from render_core.artifacts import load_npz, read_header
    from render_core.scenes.folder import done_indices, image_path, maps_path, read_record

    read_header(path, "scenes")
    done = done_indices(path)
    if not done:
        raise AssertionError("no scenes")
    for i in done:
        read_record(path, i)
        with Image.open(image_path(path, i)) as im:
            im.load()
        maps = load_npz(maps_path(path, i))
        if maps["instance"].shape != maps["depth"].shape:
            raise AssertionError(f"scene {i}: label maps disagree")
    coco = json.loads((path / "coco.json").read_text())
    if len(coco["images"]) != len(done):
        raise AssertionError(f"coco.json lists {len(coco['images'])} images, {len(done)} scenes done")


SMALL = {"views": "6", "size": "32", "steps": "60", "scenes": "6", "embed_steps": "5"}
FULL = {"views": "24", "size": "64", "steps": "240", "scenes": "24", "embed_steps": "20"}
SIZE = dict(FULL)
"""Work per command: FULL for the benchmark; SMALL (`--small`) for the test that rehearses it."""


COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("render", lambda i: ["render", str(i.lib), "out", "--views", SIZE["views"], "--size", SIZE["size"], "--quiet"],
            "out", check_dataset, needs=("lib",)),
    Command("fit", lambda i: ["fit", str(i.ds), "--out", "out", "--preset", "tiny", "--steps", SIZE["steps"],
                              "--checkpoint-minutes", "0.03", "--quiet"], "out", check_run, rerun=_fit_rerun,
            needs=("ds",), not_compared=("tensorboard",)),
    Command("embed", lambda i: ["embed", "run", str(i.ds2), "--steps", SIZE["embed_steps"], "--quiet"], "run", check_run,
            prepare=lambda i, w: _copy(i.run, w / "run"), needs=("run", "ds2"), not_compared=("tensorboard",)),
    Command("catalog build", lambda i: ["catalog", "build", str(i.run), "out", "--quiet"], "out", check_catalog, needs=("run",)),
    Command("tag", lambda i: ["tag", "cat", "--attribute", "family", "--labels", str(i.root / "labels.csv")], "cat",
            check_tagged, prepare=lambda i, w: _copy(i.cat, w / "cat"), needs=("cat", "labels.csv")),
    Command("scenes generate", lambda i: ["scenes", "generate", str(i.cat), "out", "--n", SIZE["scenes"], "--seed", "0"], "out",
            check_scenes, needs=("cat",)),
    Command("merge", lambda i: ["merge", "out", str(i.shard0), str(i.shard1)], "out", check_merged,
            needs=("shard0", "shard1"), not_compared=("report.json",)),
]}


# ----------------------------------------------------------------------------- running and comparing

def digests(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path -> digest of every file under `folder` (a missing folder is empty), but the
    paths under `skip`. Checkpoints and SQLite databases are digested by content (the weights,
    code tables, asset ids and step; the database's rows), which is what a rerun must reproduce:
    a checkpoint also records the training seconds, and SQLite's page layout depends on the
    history of writes, not only on what the database holds."""
    out = {}
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            rel = str(p.relative_to(folder))
            if p.name.endswith(SQLITE_TRANSIENT):
                continue  # the database's digest covers them (a read-only open may create them)
            if p.is_file() and not any(rel == s or rel.startswith(s + "/") for s in skip):
                out[rel] = _digest(p)
    return out


SQLITE_TRANSIENT = ("-wal", "-shm", "-journal")


def _stat(folder: Path) -> set:
    return {(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def _digest(p: Path) -> str:
    h = hashlib.sha256()
    if p.suffix == ".ckpt":
        try:
            from assets2vec.checkpoint import load_checkpoint

            state = load_checkpoint(p)
            for k, v in sorted(state["model"].items()):
                h.update(k.encode())
                h.update(v.numpy().tobytes())
            h.update(json.dumps([state["asset_ids"], state["step"], state.get("embedded")]).encode())
            return "ckpt:" + h.hexdigest()
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is a difference, reported as such
            return f"unreadable checkpoint: {exc}"
    if p.suffix == ".sqlite":
        import sqlite3

        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            for line in con.iterdump():
                h.update(line.encode())
        except sqlite3.DatabaseError as exc:
            return f"unreadable database: {exc}"
        finally:
            con.close()
        return "rows:" + h.hexdigest()
    h.update(p.read_bytes())
    return h.hexdigest()


def start(argv: list[str], work: Path, env: dict | None = None, preexec=None) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *argv], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})}, preexec_fn=preexec)


def run_to_end(argv: list[str], work: Path, **kw) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = start(argv, work, **kw)
    _, err = proc.communicate()
    return proc.returncode, err, time.perf_counter() - t0


def reference(cmd: Command, inp: Inputs, scratch: Path) -> dict:
    """Two clean runs: their digests, which files are volatile, and the kill window."""
    runs = []
    for k in range(2):
        work = scratch / f"ref{k}"
        work.mkdir(parents=True)
        cmd.prepare(inp, work)
        before = _stat(work / cmd.target)
        t0 = time.perf_counter()
        proc = start(cmd.argv(inp), work)
        first_write = None
        while proc.poll() is None:
            if first_write is None and _stat(work / cmd.target) != before:
                first_write = time.perf_counter() - t0
            time.sleep(0.05)
        total = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(f"{cmd.name}: the uninterrupted run failed:\n{proc.stderr.read()[-3000:]}")
        cmd.check(work / cmd.target)
        runs.append({"digests": digests(work / cmd.target, cmd.not_compared), "seconds": total, "first_write": first_write or 0.0})
    startup = start_up_seconds(cmd, inp, scratch)
    a, b = runs[0]["digests"], runs[1]["digests"]
    if set(a) != set(b):
        raise SystemExit(f"{cmd.name}: two clean runs wrote different files: {sorted(set(a) ^ set(b))}")
    volatile = sorted(k for k in a if a[k] != b[k])
    return {"digests": a, "volatile": volatile, "seconds": max(r["seconds"] for r in runs),
            "first_write": min(r["first_write"] for r in runs), "startup": startup}


def start_up_seconds(cmd: Command, inp: Inputs, scratch: Path) -> float:
    """Seconds until the command starts its work: its `--help` loads the same modules."""
    argv = cmd.argv(inp)
    words = 2 if argv[0] in ("catalog", "scenes", "assets") else 1
    times = []
    for _ in range(2):
        rc, _, t = run_to_end([*argv[:words], "--help"], scratch)
        times.append(t)
    return min(times)


@dataclass
class Tally:
    kills: int = 0
    finished_before_kill: int = 0
    chains: int = 0
    reruns_completed: int = 0
    identical: int = 0
    lost_or_corrupt: int = 0
    problems: list = field(default_factory=list)


def chain(cmd: Command, inp: Inputs, ref: dict, work: Path, rng: random.Random, kills: int) -> Tally:
    """Start the command and kill it at a random moment, rerun it, and so on, until it has been
    killed `kills` times or finishes on its own; then let it finish and compare with a clean run."""
    t = Tally(chains=1)
    work.mkdir(parents=True)
    cmd.prepare(inp, work)
    argv = cmd.argv(inp)
    lo, hi = ref["startup"], ref["seconds"]
    finished = False
    while t.kills < kills and not finished:
        proc = start(cmd.rerun(argv, work), work)
        try:
            proc.wait(timeout=rng.uniform(lo, hi))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            t.kills += 1
        else:
            t.finished_before_kill += 1
            finished = True
            if proc.returncode:
                t.problems.append(f"a rerun exited {proc.returncode}: {proc.stderr.read()[-500:]}")
                t.lost_or_corrupt += 1
                return t
        finally:
            proc.stdout.close()
            proc.stderr.close()
    if not finished:
        rc, err, _ = run_to_end(cmd.rerun(argv, work), work)
        if rc:
            t.problems.append(f"the final rerun exited {rc}: {err[-800:]}")
            t.lost_or_corrupt += 1
            return t
    t.reruns_completed += 1
    problem = compare(cmd, ref, work / cmd.target)
    if problem:
        t.problems.append(problem)
        t.lost_or_corrupt += 1
    else:
        t.identical += 1
    return t


def compare(cmd: Command, ref: dict, target: Path) -> str | None:
    try:
        cmd.check(target)
    except Exception as exc:  # noqa: BLE001 - any failure to open is what we count
        return f"integrity check failed: {type(exc).__name__}: {exc}"
    got, want = digests(target, cmd.not_compared), ref["digests"]
    if set(got) != set(want):
        return f"files differ from a clean run: missing {sorted(set(want) - set(got))}, stray {sorted(set(got) - set(want))}"
    differ = [k for k in want if k not in ref["volatile"] and got[k] != want[k]]
    if differ:
        return f"deterministic files differ from a clean run: {differ}"
    return None


def kill_test(cmd: Command, inp: Inputs, scratch: Path, kills: int, per_chain: int, seed: int, jobs: int,
              log: Callable[[str], None]) -> tuple[dict, dict]:
    """Returns the command's row and its clean-run reference."""
    ref = reference(cmd, inp, scratch / "ref")
    total = Tally()
    t0 = time.perf_counter()

    def one(i: int) -> Tally:
        rng = random.Random(f"{seed}:{cmd.name}:{i}")
        return chain(cmd, inp, ref, scratch / f"chain{i}", rng, per_chain)

    # Chains until `kills` kills were delivered (a rerun that resumes often finishes before its
    # kill moment, so the number of chains is not known in advance).
    with ThreadPoolExecutor(jobs) as pool:
        running, started = set(), 0
        while True:
            while len(running) < jobs and total.kills + per_chain * len(running) < kills:
                running.add(pool.submit(one, started))
                started += 1
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                t = f.result()
                for k in ("kills", "finished_before_kill", "chains", "reruns_completed", "identical", "lost_or_corrupt"):
                    setattr(total, k, getattr(total, k) + getattr(t, k))
                total.problems += t.problems
                for problem in t.problems:
                    log(f"{cmd.name}: PROBLEM: {problem}")
            rate = total.kills / (time.perf_counter() - t0)
            log(f"{cmd.name}: {total.chains} chains, {total.kills}/{kills} kills, {total.lost_or_corrupt} lost or corrupt; "
                f"ETA {max(0, kills - total.kills) / max(rate, 1e-9):.0f} s")
    return {"kills": total.kills, "finished_before_kill": total.finished_before_kill, "chains": total.chains,
            "reruns_completed": total.reruns_completed, "identical": total.identical,
            "lost_or_corrupt": total.lost_or_corrupt, "problems": total.problems[:20],
            "clean_run_seconds": round(ref["seconds"], 1), "kill_window_s": [round(ref["startup"], 1), round(ref["seconds"], 1)],
            "first_write_s": round(ref["first_write"], 1),
            "files": len(ref["digests"]), "volatile_files": ref["volatile"], "not_compared": list(cmd.not_compared)}, ref


# ----------------------------------------------------------------------------- full disk, read-only folder

def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def small_fs(path: Path, size: int):
    """A tmpfs of `size` bytes at `path` (root only)."""
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only(path: Path):
    if _can_mount():
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


def _clear_error(rc: int, err: str) -> str | None:
    """None when the command failed with the CLI's one-line error; else what was wrong."""
    if rc == 0:
        return "exited 0 although it could not write"
    if "Traceback" in err:
        return "traceback: " + err.strip().splitlines()[-1][:300]
    if not err.strip():
        return f"exited {rc} with no message"
    return None


def write_fault(cmd: Command, inp: Inputs, scratch: Path, kind: str, ref: dict, room: int = 0) -> dict:
    """Run `cmd` where it cannot write (`kind` = disk_full with `room` bytes free, or read_only)
    beside an earlier artifact on the same file system; then again with room, which must match a
    clean run. A command that fits in `room` may finish (it must then match a clean run too)."""
    root = scratch / f"{kind}_{room}"
    mounted = kind == "disk_full" and _can_mount()
    with (small_fs(root, 64 << 20) if mounted else contextlib.nullcontext(root.mkdir(parents=True))):
        work = root / "w"
        work.mkdir()
        _copy(inp.lib, work / "earlier")  # an earlier artifact on the same file system (every input starts from it)
        cmd.prepare(inp, work)
        before = {"earlier": digests(work / "earlier"), "target": digests(work / cmd.target)}
        preexec, how = None, ""
        if kind == "disk_full" and mounted:
            with open(root / "ballast", "wb") as f:
                f.write(b"\0" * max(0, shutil.disk_usage(root).free - room))
            how = f"tmpfs, {room >> 10} KiB free"
        elif kind == "disk_full":
            limit = max(room, 1 << 10)  # Python itself needs a few bytes of temp files to start
            preexec = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # noqa: E731
            how = f"RLIMIT_FSIZE {limit >> 10} KiB (no tmpfs without root)"
        ctx = read_only(work) if kind == "read_only" else contextlib.nullcontext()
        if kind == "read_only":
            how = "read-only bind mount" if _can_mount() else "chmod 555"
        with ctx:
            rc, err, _ = run_to_end(cmd.argv(inp), work, preexec=preexec)
        res = {"how": how, "exit": rc, "message": err.strip().splitlines()[-1][:300] if err.strip() else ""}
        problem = None
        if rc == 0:
            res["had_room"] = True
            if kind == "read_only":
                problem = "exited 0 although its folder is read-only"
        else:
            problem = _clear_error(rc, err)
            if cmd.target != "out" and digests(work / cmd.target) != before["target"]:
                problem = (problem or "") + f"; {cmd.target} was changed although the command failed"
        if digests(work / "earlier") != before["earlier"]:
            problem = (problem or "") + "; the earlier artifact changed"
        if mounted:
            (root / "ballast").unlink()
        rc, err, _ = run_to_end(cmd.rerun(cmd.argv(inp), work), work)
        if rc:
            problem = (problem or "") + f"; the rerun with room failed: {err.strip()[-300:]}"
        elif (p := compare(cmd, ref, work / cmd.target)):
            problem = (problem or "") + f"; after the rerun: {p}"
        res["ok"] = problem is None
        if problem:
            res["problem"] = problem.lstrip("; ")
    return res


WRITE_FAULTS = [("disk_full", 0), ("disk_full", 64 << 10), ("read_only", 0)]
"""A disk with no room at all, one with room for a little of the output, a read-only folder."""


# ----------------------------------------------------------------------------- main

def _commit() -> str | None:
    """The code's commit, recorded with each command's row."""
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    return proc.stdout.strip() or None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=50, help="SIGKILLs per command (default 50)")
    ap.add_argument("--kills-per-chain", type=int, default=5)
    ap.add_argument("--commands", default=",".join(COMMANDS), help="comma-separated (default: all seven)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="chains run side by side")
    ap.add_argument("--small", action="store_true", help="less work per command (the test suite's rehearsal)")
    ap.add_argument("--no-disk", action="store_true", help="skip the full-disk and read-only checks")
    ap.add_argument("--work", type=Path, help="keep inputs and runs here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--update", action="store_true", help="replace only these commands' rows in --out")
    args = ap.parse_args()
    names = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = [n for n in names if n not in COMMANDS]
    if unknown:
        ap.error(f"unknown commands {unknown}; choose from {list(COMMANDS)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # Stopped with SIGTERM (or Ctrl-C), unwind so the read-only and tmpfs mounts are undone.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    t0 = time.perf_counter()
    with (contextlib.nullcontext(str(args.work)) if args.work else tempfile.TemporaryDirectory()) as tmp:
        root = Path(tmp)
        (root / "inputs").mkdir(parents=True, exist_ok=True)
        if args.small:
            SIZE.update(SMALL)
        inp = build_inputs(root / "inputs", {n for name in names for n in COMMANDS[name].needs}, log)
        res = {"seed": args.seed, "kills_per_command": args.kills, "kills_per_chain": args.kills_per_chain,
               "cores": os.cpu_count(), "commands": {}}
        if args.update and args.out.is_file():  # rerun some commands, keep the others' rows
            res["commands"] = json.loads(args.out.read_text())["commands"]
        for name in names:
            cmd = COMMANDS[name]
            scratch = root / "runs" / name.replace(" ", "_")
            shutil.rmtree(scratch, ignore_errors=True)
            row, ref = kill_test(cmd, inp, scratch, args.kills, args.kills_per_chain, args.seed, args.jobs, log)
            if not args.no_disk:
                row["write_faults"] = []
                for kind, room in WRITE_FAULTS:
                    row["write_faults"].append(write_fault(cmd, inp, scratch, kind, ref, room))
                    log(f"{name}: {kind}: {row['write_faults'][-1]}")
            row["git_commit"] = _commit()
            res["commands"][name] = row
            shutil.rmtree(scratch, ignore_errors=True)
        rows = res["commands"].values()
        res["total"] = {
            "kills": sum(r["kills"] for r in rows),
            "reruns_completed": sum(r["reruns_completed"] for r in rows),
            "chains": sum(r["chains"] for r in rows),
            "lost_or_corrupt": sum(r["lost_or_corrupt"] for r in rows),
            "write_faults_ok": sum(f["ok"] for r in rows for f in r.get("write_faults", [])),
            "write_faults": sum(len(r.get("write_faults", [])) for r in rows),
        }
        res["seconds_this_invocation"] = round(time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["total"]))


if __name__ == "__main__":
    main()
