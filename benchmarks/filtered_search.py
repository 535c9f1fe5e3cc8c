"""Filtered search at catalog scale: latency distributions, strategies side by side, worst of 5 runs.

1,000,000 clustered 64-d latents (benchmarks/search_scale.py's generator, with each vector's
family). Two kinds of filter, each at selectivities from 0.5 % to 50 %:

- random: a random subset of the given fraction (an attribute unrelated to the latent);
- family: whole families until the fraction is reached (an attribute the latent encodes, like
  "chairs"); its queries are reported apart when they come from a kept family ("chairs like
  this chair") and when they do not ("chairs like this table").

For each filter, single-client latency of every query (p50, p90, p99, p99.9, max) and recall@10
against exact search over the subset, for the product's `LatentIndex.restrict` (five repeated
runs: p99 is the worst of the five, with the spread) and, side by side, for the alternatives:
a flat scan of the copied subset, HNSW with a bitmap selector (FAISS `IDSelectorBitmap`, the
previous strategy, efSearch = 64 / fraction^0.25) and with `IDSelectorBatch`, an inverted file
over all vectors with a bitmap selector (nprobe scaled by 1/fraction), and an HNSW graph built
over the subset alone (a pre-filtered index per frequent filter; its build time is reported).
Then 4 concurrent client threads on the product's path; unfiltered HNSW latency; and the
single-query cost constants fitted from the measurements next to the ones the index uses.

The constants in `assets2vec/catalog/index.py` were chosen on data generated with seed 0;
this benchmark reports seed 1 by default.

    .venv/bin/python benchmarks/filtered_search.py                # 1M, ~15 min on 2 cores
    .venv/bin/python benchmarks/filtered_search.py --n 100000     # quicker

Writes benchmarks/results/filtered_search.json and .png; prints one JSON line last.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # single-threaded queries, as the targets are stated
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_scale import clustered_latents  # noqa: E402

from assets2vec.catalog import index as index_module  # noqa: E402
from assets2vec.catalog.index import LatentIndex  # noqa: E402
from assets2vec.catalog.partition import restricted_ivf  # noqa: E402
from assets2vec.cpus import usable_cores  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "filtered_search.json"
K = 10


def timed(fn, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run one query at a time; (found ids (nq, K), latencies in ms)."""
    out, ms = np.empty((len(queries), K), np.int64), np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        out[i] = fn(q[None])
        ms[i] = (time.perf_counter() - t) * 1e3
    return out, ms


def dist(ms: np.ndarray) -> dict:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p90_ms": round(float(np.percentile(ms, 90)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4), "p999_ms": round(float(np.percentile(ms, 99.9)), 4),
            "max_ms": round(float(ms.max()), 4), "mean_ms": round(float(ms.mean()), 4)}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return round(float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth)])), 4)


def concurrent(fn, queries: np.ndarray, clients: int, runs: int) -> dict:
    """`runs` times: `clients` threads each run every query once, one at a time. Per-query latency
    over all runs, the worst run's p99 and the total rate."""
    p99s, all_ms, rates = [], [], []
    for _ in range(runs):
        ms, rate = _concurrent_once(fn, queries, clients)
        p99s.append(float(np.percentile(ms, 99)))
        all_ms.append(ms)
        rates.append(rate)
    return {"clients": clients, "queries_per_s": round(float(np.mean(rates)), 1), **dist(np.concatenate(all_ms)),
            "p99_worst_of_runs_ms": round(max(p99s), 4), "p99_runs_ms": [round(p, 4) for p in p99s]}


def _concurrent_once(fn, queries: np.ndarray, clients: int) -> tuple[np.ndarray, float]:
    lat: list[np.ndarray] = [None] * clients
    barrier = threading.Barrier(clients)

    def client(c: int) -> None:
        barrier.wait()
        lat[c] = timed(fn, queries[np.random.default_rng(c).permutation(len(queries))])[1]

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    ms = np.concatenate(lat)
    return ms, len(ms) / wall


def subset_for(kind: str, frac: float, n: int, family: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if kind == "random":
        return np.flatnonzero(rng.random(n) < frac)
    sizes = np.bincount(family)
    order = rng.permutation(len(sizes))
    keep = order[: int(np.searchsorted(np.cumsum(sizes[order]), frac * n)) + 1]
    return np.flatnonzero(np.isin(family, keep))


def alternatives(ours: LatentIndex, X: np.ndarray, sub: np.ndarray, Q: np.ndarray, truth: np.ndarray, frac: float,
                 slow_queries: int, prefilter_limit: int) -> dict:
    n, d = X.shape
    out = {}
    flat = faiss.IndexFlatL2(d)
    flat.add(np.ascontiguousarray(X[sub]))
    nq = min(len(Q), slow_queries) if len(sub) > 100_000 else len(Q)
    f, ms = timed(lambda q: sub[flat.search(q, K)[1][0]], Q[:nq])
    out["exact_subset"] = {**dist(ms), "recall_at_10": recall(f, truth[:nq]), "queries": nq}
    if ours.built_kind == "hnsw":
        mask = np.zeros(n, bool)
        mask[sub] = True
        bitmap = np.packbits(mask, bitorder="little")
        ef = int(min(1024, np.ceil(64 * max(frac, 1e-3) ** -0.25)))
        for name, sel in (("hnsw_bitmap", faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))),
                          ("hnsw_batch", faiss.IDSelectorBatch(sub.astype(np.int64)))):
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
            f, ms = timed(lambda q: ours.index.search(q, K, params=params)[1][0], Q)
            out[name] = {**dist(ms), "recall_at_10": recall(f, truth), "ef_search": ef}
        full, _ = restricted_ivf(ours.partition, X, np.arange(n))
        nprobe = int(min(full.nlist, np.ceil(index_module.NPROBE_MIN / max(frac, 1e-3) ** 0.5)))
        params = faiss.SearchParametersIVF(nprobe=nprobe, sel=faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap)))
        f, ms = timed(lambda q: full.search(q, K, params=params)[1][0], Q)
        out["ivf_all_bitmap"] = {**dist(ms), "recall_at_10": recall(f, truth), "nprobe": nprobe}
        if len(sub) <= prefilter_limit:
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            t = time.perf_counter()
            pre = faiss.IndexHNSWFlat(d, index_module.HNSW_M)
            pre.hnsw.efConstruction = index_module.HNSW_EF_CONSTRUCTION
            pre.add(np.ascontiguousarray(X[sub]))
            pre.hnsw.efSearch = index_module.HNSW_EF_SEARCH
            build = time.perf_counter() - t
            faiss.omp_set_num_threads(1)
            f, ms = timed(lambda q: sub[pre.search(q, K)[1][0]], Q)
            out["hnsw_prefiltered"] = {**dist(ms), "recall_at_10": recall(f, truth), "build_s": round(build, 1)}
    return out


def fit_costs(rows: list[dict]) -> dict:
    """Least-squares single-query cost constants (µs) from the measured medians."""
    # Subsets that fit in cache: a flat scan of a larger one is memory-bound, and the index never
    # chooses a flat scan that large anyway.
    ex = [(r["kept"], r["alternatives"]["exact_subset"]["p50_ms"] * 1e3) for r in rows
          if "exact_subset" in r["alternatives"] and r["kept"] <= 60_000]
    if len(ex) < 2:
        return {}
    A = np.array([[1.0, k] for k, _ in ex])
    call, per_vec = np.linalg.lstsq(A, np.array([t for _, t in ex]), rcond=None)[0]
    call = max(float(call), 0.0)
    out = {"call": round(call, 2), "flat_vector": round(float(per_vec), 4)}
    # Inverted-file probes, from the random filters (there nearly every query takes the first probe only).
    iv = [r for r in rows if r["mode"] == "partition" and r["filter"] == "random"]
    if len(iv) >= 3:
        A = np.array([[r["occupied_lists"], r["nprobe"], r["nprobe"] * r["kept"] / r["occupied_lists"]] for r in iv])
        y = np.array([r["ours"]["p50_ms"] * 1e3 - call for r in iv])
        c, lst, vec = np.linalg.lstsq(A, y, rcond=None)[0]
        out.update(centroid=round(float(c), 4), ivf_list=round(float(lst), 3), ivf_vector=round(float(vec), 4))
    return out


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, kind in zip(axes, ("random", "family")):
        rows = [r for r in res["filtered"] if r["filter"] == kind]
        if not rows:
            continue
        fr = [r["fraction"] * 100 for r in rows]
        ax.plot(fr, [r["ours"]["p99_worst_of_runs_ms"] for r in rows], "o-", lw=2.5, label="ours (restrict), worst-of-5 p99")
        for name in ("exact_subset", "hnsw_bitmap", "ivf_all_bitmap", "hnsw_prefiltered"):
            pts = [(r["fraction"] * 100, r["alternatives"][name]["p99_ms"], r["alternatives"][name]["recall_at_10"])
                   for r in rows if name in r["alternatives"]]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "--", marker=".", label=name.replace("_", " ") + " p99")
                for x, y, rc in pts:
                    if rc < 0.98:
                        ax.annotate(f"{rc:.2f}", (x, y), fontsize=7, color="red")
        ax.axhline(0.5, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("filter keeps (%)")
        ax.set_title(f"{kind} filters, {res['n']:,} vectors (red: recall@10 < 0.98)")
    axes[0].set_ylabel("single-query p99 latency (ms)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5, help="repeated runs of the product's path; p99 is the worst")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--slow-queries", type=int, default=200, help="queries for flat scans of subsets over 100k")
    ap.add_argument("--prefilter-limit", type=int, default=100_000, help="build a per-filter HNSW only up to this size")
    ap.add_argument("--fractions", default="0.005,0.01,0.02,0.05,0.1,0.25,0.5")
    ap.add_argument("--filters", default="random,family")
    ap.add_argument("--no-alternatives", action="store_true", help="measure the product's path only")
    ap.add_argument("--query-slots", type=int, default=0,
                    help="override the index's concurrent-query limit (default: usable cores - 1, at least 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.query_slots:
        index_module._QUERY_SLOTS = index_module.FairSlots(args.query_slots)
    t = time.time()
    X, family = clustered_latents(args.n + args.queries, args.dim, 200, rng, return_labels=True)
    X, Q, family, q_family = X[: args.n], X[args.n:], family[: args.n], family[args.n:]
    print(f"data: {args.n:,} x {args.dim} in {time.time() - t:.1f} s", file=sys.stderr)
    res: dict = {"n": args.n, "dim": args.dim, "queries": args.queries, "k": K, "runs": args.runs, "seed": args.seed,
                 "threads_per_query": 1, "machine": f"{os.cpu_count()} cores",
                 "query_slots": args.query_slots or max(1, usable_cores() - 1)}

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    ours = LatentIndex(args.dim)
    ours.add(X)
    res["build_s"] = round(time.perf_counter() - t, 1)
    res["lists"] = ours.partition.nlist if ours.partition is not None else 0
    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatL2(args.dim)
    flat.add(X)
    _, truth = flat.search(Q, K)
    runs = [timed(lambda q: ours.search(q, K)[1][0], Q) for _ in range(args.runs)]
    p99s = [float(np.percentile(ms, 99)) for _, ms in runs]
    res["unfiltered"] = {"kind": ours.built_kind, **dist(np.concatenate([ms for _, ms in runs])),
                         "p99_worst_of_runs_ms": round(max(p99s), 4), "p99_runs_ms": [round(p, 4) for p in p99s],
                         "recall_at_10": recall(runs[0][0], truth),
                         "concurrent": concurrent(lambda q: ours.search(q, K)[1][0], Q, args.clients, args.runs)}
    print(f"unfiltered: {res['unfiltered']}", file=sys.stderr)

    res["filtered"] = []
    for kind in args.filters.split(","):
        for frac in [float(f) for f in args.fractions.split(",")]:
            sub = subset_for(kind, frac, args.n, family, rng)
            t = time.perf_counter()
            view = ours.restrict(sub)
            prepare = time.perf_counter() - t
            sflat = faiss.IndexFlatL2(args.dim)
            sflat.add(np.ascontiguousarray(X[sub]))
            _, It = sflat.search(Q, K)
            truth = sub[It]
            runs = [timed(lambda q: view.search(q, K)[1][0], Q) for _ in range(args.runs)]
            p99s = [float(np.percentile(ms, 99)) for _, ms in runs]
            row = {"filter": kind, "fraction": frac, "kept": int(len(sub)), "mode": view.mode, "prepare_s": round(prepare, 3),
                   "ours": {**dist(np.concatenate([ms for _, ms in runs])), "p99_worst_of_runs_ms": round(max(p99s), 4),
                            "p99_runs_ms": [round(p, 4) for p in p99s], "recall_at_10": recall(runs[0][0], truth)}}
            if view.mode == "partition":
                row["nprobe"], row["wide_nprobe"] = view.nprobe, view.wide_nprobe
                row["occupied_lists"] = int(view.ivf.nlist)
                row["wide_share"] = round(float(view.outside(Q, view.ivf.quantizer.search(Q, 1)[0][:, 0]).mean()), 4)
                row["predicted_us"] = {k: round(v, 1) for k, v in view.cost_us.items()}
            if kind == "family":
                inside = np.isin(q_family, np.unique(family[sub]))
                for name, m in (("in_subset", inside), ("cross_subset", ~inside)):
                    if m.any():
                        row["ours"][name] = {"queries": int(m.sum()), "recall_at_10": recall(runs[0][0][m], truth[m]),
                                             "p99_worst_of_runs_ms": round(max(float(np.percentile(ms[m], 99)) for _, ms in runs), 4)}
            row["ours"]["concurrent"] = concurrent(lambda q: view.search(q, K)[1][0], Q, args.clients, args.runs)
            row["alternatives"] = ({} if args.no_alternatives else
                                   alternatives(ours, X, sub, Q, truth, frac, args.slow_queries, args.prefilter_limit))
            res["filtered"].append(row)
            brief = {k: (v["p99_ms"], v["recall_at_10"]) for k, v in row["alternatives"].items()}
            print(f"{kind} {frac}: kept {len(sub)} mode {view.mode} ours p99 worst {row['ours']['p99_worst_of_runs_ms']} "
                  f"runs {row['ours']['p99_runs_ms']} recall {row['ours']['recall_at_10']} "
                  f"wide {row.get('wide_share')} {args.clients} clients p99 worst {row['ours']['concurrent']['p99_worst_of_runs_ms']} | {brief}", file=sys.stderr)

    res["fitted_costs_us"] = fit_costs(res["filtered"])
    res["index_costs_us"] = dict(index_module.COST_US)
    main_rows = [r for r in res["filtered"] if r["filter"] == "random"]
    fam = [r for r in res["filtered"] if r["filter"] == "family"]
    res["targets"] = {
        "random_p99_worst_under_0.5ms_recall_0.98": bool(main_rows) and all(
            r["ours"]["p99_worst_of_runs_ms"] < 0.5 and r["ours"]["recall_at_10"] >= 0.98 for r in main_rows),
        "random_4_clients_p99_under_2ms": bool(main_rows) and all(r["ours"]["concurrent"]["p99_worst_of_runs_ms"] < 2.0 for r in main_rows),
        "family_in_subset_p99_worst_under_0.5ms_recall_0.98": bool(fam) and all(
            r["ours"]["in_subset"]["p99_worst_of_runs_ms"] < 0.5 and r["ours"]["in_subset"]["recall_at_10"] >= 0.98
            for r in fam if "in_subset" in r["ours"]),
        "unfiltered_p99_worst_under_0.5ms_recall_0.98": bool(res["unfiltered"]["p99_worst_of_runs_ms"] < 0.5
                                                             and res["unfiltered"]["recall_at_10"] >= 0.98),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    plot(res, args.out.with_suffix(".png"))
    print(json.dumps({k: res[k] for k in ("n", "build_s", "lists", "targets", "fitted_costs_us", "index_costs_us")}))


if __name__ == "__main__":
    main()
