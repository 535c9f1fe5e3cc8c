"""Concurrent readers under load: the Python API and the app's data layer answering while
`catalog build` adds assets and `tag` writes predictions.

Setup (not timed): a short `fit` of the tiny network with the product's default code size (32 +
32) gives a real run; its code tables are then replaced by N clustered codes (100,000 by default;
`search_scale.py`'s generator), and `catalog build --no-decoded` builds the catalog (code spaces;
decoding 100,000 assets' geometry is hours of CPU, see BENCHMARKS.md). Every asset gets a manual
tag `colour` (four values) through `Catalog.set_tags`. A second run holds the same codes plus M new
assets (2,000), as `embed` would add them, and a labels file names the cluster of 300 assets.

Load: C client threads (4) each loop over similar-asset queries, half of them filtered
(`where="colour=red"`, a quarter of the catalog), k = 10, as fast as they can; in a second
scenario one more thread runs search by photo on a small trained catalog (rendered views of its
assets) at the same time (a photo search keeps both cores busy for seconds).
Meanwhile a writer runs `assets2vec catalog build RUN2 CATALOG --no-decoded` (adds the M assets)
and then `assets2vec tag CATALOG --attribute cluster --labels labels.csv` (predictions for every
asset), as separate processes, as a team would. Each answer is checked: no exception; every hit
is in the reader's catalog, passes the filter, and its reported distance is the distance between
the stored vectors (a hit computed from other vectors than the reader's is a *stale-vector*
answer); hits are in order. After the writer, a newly opened catalog must hold N + M assets, each
new asset must find itself, and every asset must have a prediction.

Two data layers: `api` (each client opens its own `Catalog`, as scripts and services do) and `app`
(the clients share the catalog the Streamlit app's `catalog_app.data.catalog()` opens, as the
app's sessions do, reopening it when a build finishes).

    .venv/bin/python benchmarks/load.py                    # 100k assets, both layers; ~15 min on 2 cores
    .venv/bin/python benchmarks/load.py --n 20000 --new 500

Writes benchmarks/results/load.json; prints one JSON line last.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per query: the clients are the parallelism
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_scale import clustered_latents  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
CLI = [sys.executable, "-m", "assets2vec.cli.main"]
COLOURS = ["red", "green", "blue", "grey"]
FILTER = "colour=red"
K = 10
PHOTO = {"both": (False, True), "off": (False,), "on": (True,)}


def cli(*argv: str, cwd: Path) -> None:
    proc = subprocess.run([*CLI, *argv], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"assets2vec {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")


def big_run(small_run: Path, out: Path, codes: np.ndarray, ids: list[str]) -> None:
    """`small_run` with its code tables replaced by `codes` (n, 64) for `ids`: a real network and
    checkpoint format, with as many assets as a team's library."""
    import torch

    from assets2vec.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from render_core.artifacts import read_header, write_header

    state = load_checkpoint(small_run)
    half = codes.shape[1] // 2
    state["model"]["codes.shape.weight"] = torch.from_numpy(codes[:, :half].copy())
    state["model"]["codes.texture.weight"] = torch.from_numpy(codes[:, half:].copy())
    state["asset_ids"] = list(ids)
    state["optimizer"] = {}  # the code tables' optimizer state is for the small run; a catalog build never reads it
    out.mkdir(parents=True)
    header = read_header(small_run, "run")
    header["asset_ids"] = list(ids)
    write_header(out, header)
    save_checkpoint(latest_checkpoint(out), state)


def setup(root: Path, n: int, new: int, seed: int, log) -> dict:
    from assets2vec.api import Catalog

    rng = np.random.default_rng(seed)
    cli("assets", "generate", "lib", "--n", "8", "--seed", "0", "--quiet", cwd=root)
    cli("render", "lib", "ds", "--views", "12", "--size", "32", "--quiet", cwd=root)
    cli("fit", "ds", "--out", "small_run", "--preset", "tiny", "--steps", "60", "--shape-dim", "32", "--texture-dim", "32",
        "--quiet", cwd=root)
    cli("catalog", "build", "small_run", "small_cat", "--quiet", cwd=root)
    codes, cluster = clustered_latents(n + new, 64, 40, rng, return_labels=True)
    codes = (codes / np.sqrt(64)).astype(np.float32)
    ids = [f"a{i:07d}" for i in range(n + new)]
    big_run(root / "small_run", root / "run1", codes[:n], ids[:n])
    big_run(root / "small_run", root / "run2", codes, ids)
    t = time.perf_counter()
    cli("catalog", "build", "run1", "cat", "--no-decoded", "--quiet", cwd=root)
    build_s = time.perf_counter() - t
    with Catalog.open(root / "cat", log=lambda m: None) as cat:
        colour = {i: COLOURS[int(c) % 4] for i, c in zip(cat.ids, rng.integers(0, 4, len(cat.ids)))}
        cat.set_tags("colour", colour)
    labelled = rng.choice(n + new, 300, replace=False)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "value"])
        for i in labelled:
            w.writerow([ids[i], f"c{cluster[i] % 5}"])
    log(f"setup: catalog of {n:,} assets built in {build_s:.0f} s (--no-decoded)")
    return {"build_seconds_initial": round(build_s, 1), "colour": colour}


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)  # (kind, phase) -> ms
        self.errors: list[str] = []
        self.stale = 0
        self.answers = 0

    def add(self, kind: str, phase: str, ms: float) -> None:
        with self.lock:
            self.latency[(kind, phase)].append(ms)
            self.answers += 1

    def error(self, msg: str) -> None:
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(msg)
            else:
                self.errors.append("...") if self.errors[-1] != "..." else None


def check_hits(cat, query_pos: int, hits: list[dict], space: str, where: str | None, colour_of) -> str | None:
    """What is wrong with an answer (None if nothing)."""
    vecs = cat.vectors(space)
    q = vecs[query_pos]
    last = -1.0
    for h in hits:
        pos = cat_pos(cat, h["id"])
        if pos is None:
            return f"hit {h['id']} is not in the reader's catalog"
        d = float(np.linalg.norm(vecs[pos] - q))
        if abs(d - h["distance"]) > 1e-3 * max(1.0, d):
            return f"stale-vector: {h['id']} reported at {h['distance']}, stored vectors are {d:.5f} apart"
        if h["distance"] < last - 1e-6:
            return "hits out of order"
        last = h["distance"]
        if where and colour_of(h["id"]) != "red":
            return f"hit {h['id']} does not pass {where}"
    if len(hits) != K:
        return f"{len(hits)} hits, asked for {K}"
    return None


_POS: dict[int, dict[str, int]] = {}


def cat_pos(cat, asset_id: str) -> int | None:
    """Position of `asset_id` in `cat`'s snapshot (cached per reader)."""
    table = _POS.get(id(cat))
    if table is None:
        table = _POS[id(cat)] = {a: i for i, a in enumerate(cat.ids)}
    return table.get(asset_id)


def client(get_catalog, stop: threading.Event, phase, rec: Recorder, seed: int, colour: dict) -> None:
    rng = np.random.default_rng(seed)
    while not stop.is_set():
        cat = get_catalog()
        i = int(rng.integers(len(cat.ids)))
        where = FILTER if rng.random() < 0.5 else None
        kind = "filtered" if where else "similar"
        t = time.perf_counter()
        try:
            hits = cat.similar(cat.ids[i], k=K, space="joint", where=where)
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            rec.error(f"{kind}: {type(exc).__name__}: {exc}")
            continue
        ms = (time.perf_counter() - t) * 1e3
        rec.add(kind, phase(), ms)
        # similar() leaves the query out: check the hits against its own vector
        problem = check_hits(cat, i, hits, "joint", where, lambda a: colour.get(a))
        if problem:
            if problem.startswith("stale"):
                with rec.lock:
                    rec.stale += 1
            rec.error(problem)


def photo_client(small_cat: Path, dataset: Path, stop: threading.Event, phase, rec: Recorder,
                 ready: threading.Event) -> None:
    from assets2vec.api import Catalog
    from render_core.dataset import RenderedDataset

    ds = RenderedDataset(dataset)
    cat = Catalog.open(small_cat, log=lambda m: None)
    try:  # the bank is built (or read) once per catalog, before the measured searches: not one of them
        cat.photo_bank()
    finally:
        ready.set()
    n = 0
    while not stop.is_set():
        aid = ds.asset_ids[n % len(ds.asset_ids)]
        image = ds.load(aid).rgb[(n * 5) % ds.n_views]
        n += 1
        t = time.perf_counter()
        try:
            res = cat.search_image(image, k=3)
            if not res.get("asset") or not res.get("neighbours"):
                rec.error(f"photo: no answer ({res.get('verdict')})")
        except Exception as exc:  # noqa: BLE001
            rec.error(f"photo: {type(exc).__name__}: {exc}")
            continue
        rec.add("photo", phase(), (time.perf_counter() - t) * 1e3)


def writer(root: Path, done: dict, log) -> None:
    for name, argv in (("build", ["catalog", "build", "run2", "cat", "--no-decoded", "--quiet"]),
                       ("tag", ["tag", "cat", "--attribute", "cluster", "--labels", "labels.csv"])):
        t = time.perf_counter()
        proc = subprocess.run([*CLI, *argv], cwd=root, capture_output=True, text=True)
        done[name] = {"seconds": round(time.perf_counter() - t, 1), "exit": proc.returncode,
                      "stderr": proc.stderr.strip().splitlines()[-1:] if proc.returncode else []}
        log(f"writer: {name} finished in {done[name]['seconds']} s (exit {proc.returncode})")


def pct(ms: list[float]) -> dict:
    a = np.asarray(ms)
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3)}


def load_test(root: Path, layer: str, clients: int, quiet_s: float, colour: dict, photo: bool, log) -> dict:
    from assets2vec.api import Catalog

    work = root / f"load_{layer}_{'photo' if photo else 'nophoto'}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    shutil.copytree(root / "cat", work / "cat")
    for name in ("run1", "run2", "labels.csv"):
        (work / name).symlink_to(root / name)
    if layer == "api":
        local = threading.local()

        def get_catalog():
            if not hasattr(local, "cat"):
                local.cat = Catalog.open(work / "cat", log=lambda m: None)
            return local.cat
    elif layer == "shared":
        shared = Catalog.open(work / "cat", log=lambda m: None)

        def get_catalog():
            return shared
    else:
        os.environ["ASSETS2VEC_CATALOG"] = str(work / "cat")
        import logging

        from catalog_app import data

        # the clients are threads outside a Streamlit session, as the app's are inside one
        for name in ("streamlit", "streamlit.runtime.scriptrunner_utils.script_run_context"):
            logging.getLogger(name).setLevel(logging.ERROR)

        def get_catalog():
            return data.catalog()
    rec, stop, done = Recorder(), threading.Event(), {}
    phase_now = {"v": "warm_up"}  # while the photo client's bank is built: no writer yet
    threads = [threading.Thread(target=client, args=(get_catalog, stop, lambda: phase_now["v"], rec, s, colour)) for s in range(clients)]
    ready = threading.Event()
    if photo:
        threads.append(threading.Thread(target=photo_client, args=(root / "small_cat", root / "ds", stop, lambda: phase_now["v"], rec,
                                                                   ready)))
    else:
        ready.set()
    for t in threads:
        t.start()
    ready.wait()  # the writer starts once the photo client searches (its bank built), not while it builds
    phase_now["v"] = "while_writing"
    t0 = time.perf_counter()
    writer(work, done, log)
    write_s = time.perf_counter() - t0
    phase_now["v"] = "quiet"
    time.sleep(quiet_s)
    stop.set()
    for t in threads:
        t.join()
    total_s = time.perf_counter() - t0
    after = verify_after(work / "cat", done)
    row = {"layer": layer, "clients": clients, "photo_client": photo, "writer": done, "write_seconds": round(write_s, 1), "seconds": round(total_s, 1),
           "answers": rec.answers, "queries_per_s": round(rec.answers / total_s, 1), "errors": len([e for e in rec.errors if e != "..."]),
           "error_examples": rec.errors[:10], "stale_vector_answers": rec.stale, "after_writer": after,
           "latency": {f"{k}/{p}": pct(v) for (k, p), v in sorted(rec.latency.items())}}
    log(f"{layer}, photo client {photo}: {json.dumps({k: row[k] for k in ('answers', 'queries_per_s', 'errors', 'stale_vector_answers')})}")
    return row


def verify_after(path: Path, done: dict) -> dict:
    from assets2vec.api import Catalog

    with Catalog.open(path, log=lambda m: None) as cat:
        n = len(cat)
        new = [a for a in cat.ids if a >= f"a{n - 1 - 50:07d}"][-50:]
        finds_itself = all(cat.search_vectors(cat.vectors("joint")[cat_pos(cat, a)], 1)[0]["id"] == a for a in new)
        preds = len(cat.predict("cluster")) if done.get("tag", {}).get("exit") == 0 else 0
    return {"assets": n, "new_assets_find_themselves": bool(finds_itself), "predictions": preds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--new", type=int, default=2_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--quiet-seconds", type=float, default=30.0, help="load kept on after the writer finishes")
    ap.add_argument("--layers", default="api,app", help="api (a Catalog per client), app (catalog_app.data's), "
                    "shared (one Catalog for all clients, without Streamlit)")
    ap.add_argument("--photo", choices=list(PHOTO), default="both", help="scenarios with a photo-search client, without, or both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    res: dict = {"n": args.n, "new": args.new, "clients": args.clients, "filter": FILTER, "k": K, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = setup(root, args.n, args.new, args.seed, log)
        res["build_seconds_initial"] = made["build_seconds_initial"]
        res["scenarios"] = {f"{layer}{'+photo' if photo else ''}": load_test(root, layer, args.clients, args.quiet_seconds,
                                                                               made["colour"], photo, log)
                            for layer in args.layers.split(",") for photo in PHOTO[args.photo]}
    rows = res["scenarios"].values()
    res["total"] = {"answers": sum(r["answers"] for r in rows), "errors": sum(r["errors"] for r in rows),
                    "stale_vector_answers": sum(r["stale_vector_answers"] for r in rows),
                    "filtered_p99_ms_while_writing": {k: r["latency"].get("filtered/while_writing", {}).get("p99_ms")
                                                      for k, r in res["scenarios"].items()},
                    "filtered_p99_ms_quiet": {k: r["latency"].get("filtered/quiet", {}).get("p99_ms") for k, r in res["scenarios"].items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["total"]))


if __name__ == "__main__":
    main()
