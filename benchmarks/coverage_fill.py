"""Does generating the sparse-region proposals fill the catalog's holes?

On a built catalog of procedural assets (the demo's by default), end to end as a user would:
  1. `Catalog.sparse_regions` (what `assets2vec sparse --proposals` runs): the N emptiest regions of
     a space (`--space`: the shape codes, or the decoded geometry; `--within family`: holes among
     each family's assets), each with proposed generator parameters for new assets inside it;
  2. those assets are generated (`assets generate --from-proposals`), rendered exactly like the
     run's dataset, embedded into a copy of the run (`embed`) and added to a copy of the catalog
     (`catalog build`), so the original run and catalog are not touched;
  3. coverage before and after, in the ORIGINAL catalog's coordinates and in units of the median
     nearest-neighbour spacing the search measured each region in: each region centre's distance to
     its nearest asset (of its family, with --within), and the N emptiest regions found again among
     old and new assets together.

The new assets land where their embedding puts them, not where the proposal aimed: the figure
draws each one with a line back to its region's centre. `--control` also regenerates each region's
nearest bordering asset from its own parameters: how far generation and embedding alone move an asset.

    make demo
    .venv/bin/python benchmarks/coverage_fill.py demo/catalog --work /tmp/coverage_fill --space geometry --within family \
        --control --results benchmarks/results/coverage_fill_geometry_family.json --figure docs/coverage_fill.png

Writes the results JSON and the figure; prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec import Catalog  # noqa: E402
from assets2vec.catalog import density  # noqa: E402
from assets2vec.catalog.spaces import SPARSE_SPACES  # noqa: E402
from render_core.artifacts import atomic_write_json, read_header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "coverage_fill.json"
FIGURE = ROOT / "docs" / "coverage_fill.png"


def nearest(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(m,) distance from each of points (m, d) to its nearest row of x (n, d)."""
    return np.sqrt(((points[:, None, :] - x[None, :, :]) ** 2).sum(-1)).min(1)


def add_proposed_assets(catalog: Path, proposals: list[dict], work: Path, seed: int, embed_steps: int | None, log) -> list[str]:
    """Generate, render, embed and catalog the proposed assets in copies under `work` (work/run and
    work/catalog, made once; later calls add to them); their ids, `{family}-p{seed}-{i}`. Rerunning
    with the same arguments resumes."""
    from assets2vec.cli.main import main as cli
    from render_core.assets.library import open_library
    from render_core.assets.procedural.generate import generate_library
    from render_core.multiview import RenderConfig, render_library

    with Catalog.open(catalog) as cat:
        run = Path(cat.store.get_meta("run"))
    dataset_header = read_header(Path(json.loads((run / "artifact.json").read_text())["dataset"]), "dataset")
    run_copy, catalog_copy = work / "run", work / "catalog"
    if not run_copy.exists():
        log(f"copying {run} -> {run_copy} (embed writes to the run)")
        shutil.copytree(run, run_copy, ignore=shutil.ignore_patterns("inversion_bank", "tensorboard"))
    if not catalog_copy.exists():
        shutil.copytree(catalog, catalog_copy)
    library, dataset = work / f"library_p{seed}", work / f"dataset_p{seed}"
    records = generate_library(library, len(proposals), seed, proposals=proposals, progress=False)
    log(f"generated {len(records)} assets; rendering them as the run's dataset was rendered")
    render_library(open_library(library), dataset, RenderConfig.from_json(dataset_header["render"]), progress=False)
    steps = ["--steps", str(embed_steps)] if embed_steps else []
    for argv in (["embed", str(run_copy), str(dataset), *steps, "--quiet"],
                 ["catalog", "build", str(run_copy), str(catalog_copy), "--quiet"]):
        log("assets2vec " + " ".join(argv))
        if cli(argv) != 0:
            raise SystemExit(f"assets2vec {' '.join(argv)} failed")
    return [r.id for r in records]


def figure(X: np.ndarray, centres: np.ndarray, new: np.ndarray, new_region: list[int], before: np.ndarray,
           after: np.ndarray, path: Path, space: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    pca = PCA(2, random_state=0).fit(X)
    p, c, q = pca.transform(X), pca.transform(centres), pca.transform(new) if len(new) else np.zeros((0, 2))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.5), dpi=110, gridspec_kw={"width_ratios": [1.3, 1]})
    ax.scatter(p[:, 0], p[:, 1], s=10, c="0.6", label="catalog assets")
    for j, r in enumerate(new_region):
        ax.plot([c[r, 0], q[j, 0]], [c[r, 1], q[j, 1]], c="tab:red", lw=0.6, alpha=0.6)
    ax.scatter(q[:, 0], q[:, 1], s=22, c="tab:red", label="new assets from the proposals (as embedded)")
    ax.scatter(c[:, 0], c[:, 1], s=160, marker="*", c="gold", edgecolors="k", label="sparse-region centres")
    for i, xy in enumerate(c):
        ax.annotate(str(i + 1), xy, xytext=(5, 5), textcoords="offset points", fontsize=9)
    ax.set_title(f"{space} space (PCA of the original catalog); lines: region -> its new assets")
    ax.legend(fontsize=8, loc="best")
    ix = np.arange(len(before))
    bx.bar(ix - 0.2, before, 0.4, label="before")
    bx.bar(ix + 0.2, after, 0.4, label="after adding the proposed assets")
    bx.set_xticks(ix, [str(i + 1) for i in ix])
    bx.set_xlabel("sparse region (emptiest first)")
    bx.set_ylabel("distance to nearest asset / median spacing")
    bx.legend(fontsize=8)
    bx.set_title("how empty each region is")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--work", type=Path, required=True, help="folder for the copies of the run and catalog, and the new assets")
    ap.add_argument("--space", choices=SPARSE_SPACES, default="shape",
                    help="where to find the holes and measure them (default: shape): a code space, or the decoded geometry")
    ap.add_argument("--within", choices=("family",), help="look for the holes among each family's assets (sparse --within "
                    "family), and measure each against its own family's assets, old and new")
    ap.add_argument("-n", type=int, default=5, help="sparse regions (default: 5)")
    ap.add_argument("--samples", type=int, default=4, help="proposed assets per region (default: 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embed-steps", type=int, help="embedding steps per new asset (default: embed's)")
    ap.add_argument("--control", action="store_true",
                    help="also regenerate each region's nearest bordering asset from its own generator parameters, "
                    "embed it the same way and report how far it lands from the original: the part of the miss that "
                    "generation and inversion make, whatever the proposer")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--figure", type=Path, default=FIGURE)
    args = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    with Catalog.open(args.catalog) as cat:
        X = cat.vectors(args.space).astype(np.float64)
        regions = cat.sparse_regions(args.n, args.space, args.samples, args.seed, within=args.within)
        old_ids = set(cat.ids)
        old_groups = [str(v) for v in cat.values(args.within)] if args.within else ["all"] * len(cat)
        meta = cat.store.asset_columns("family", "params")
        sources = [int(r.border[0]) for r in regions]
        controls = [{"family": meta[int(cat.rows[i])][0], "params": json.loads(meta[int(cat.rows[i])][1])} for i in sources]
        source_ids = [cat.ids[i] for i in sources]
    proposals, region_of = [], []
    for r in regions:
        for p in r.extra.get("proposals", [])[: args.samples]:
            proposals.append(p)
            region_of.append(r.rank - 1)
    if not proposals:
        raise SystemExit(f"{args.catalog}: no proposals (the regions border no procedural family)")
    args.work.mkdir(parents=True, exist_ok=True)
    new_ids = add_proposed_assets(args.catalog, proposals, args.work, args.seed, args.embed_steps, log)
    with Catalog.open(args.work / "catalog") as after_cat:
        present = [a for a in new_ids if a in set(after_cat.ids)]
        s, t = after_cat.codes(present)
    # Old coordinates: the new codes go through the ORIGINAL catalog's transform (and, for geometry, its
    # PCA and the same frozen network), so "before" and "after" are one space whatever catalog build refits.
    with Catalog.open(args.catalog) as cat:
        new = cat.code_vectors(args.space, s, t).astype(np.float64)
    new_groups = [proposals[new_ids.index(a)]["family"] if args.within else "all" for a in present]
    region_of = [region_of[new_ids.index(a)] for a in present]
    # Each region in units of the median nearest-neighbour spacing the search measured it in (its family's with --within).
    units = np.array([r.radius / r.score for r in regions])
    group = [r.extra.get("group", "all") for r in regions]
    centres = np.stack([r.center for r in regions]).astype(np.float64)
    og, ng = np.array(old_groups), np.array(new_groups, dtype=str).reshape(-1)
    before = np.array([nearest(centres[i:i + 1], X[og == group[i]])[0] for i in range(len(regions))]) / units
    after = np.array([nearest(centres[i:i + 1], np.vstack([X[og == group[i]], new[ng == group[i]]]))[0]
                      for i in range(len(regions))]) / units
    # The emptiest regions, found again with the same search over old + new assets.
    both = np.vstack([X, new]).astype(np.float32)
    again = (density.sparse_regions_within(both, old_groups + new_groups, args.n, seed=args.seed) if args.within
             else density.sparse_regions(both, args.n, seed=args.seed))
    own = [sorted((nearest(new[[j for j, r in enumerate(region_of) if r == i]], centres[i:i + 1]) / units[i]).tolist())
           if i in region_of else [] for i in range(len(regions))]
    summary = {
        "catalog": str(args.catalog), "assets_before": len(old_ids), "space": args.space, "regions": len(regions),
        "proposed": len(proposals), "added": len(present), "not_added": sorted(set(new_ids) - set(present)),
        "within": args.within, "spacing_units": [round(float(u), 5) for u in units],
        "per_region": [{"rank": r.rank, "group": r.extra.get("group"), "before": round(float(b), 3), "after": round(float(a), 3),
                        "shrink": round(float(1 - a / b), 3), "new_assets": int(sum(x == i for x in region_of)),
                        "new_assets_distance_to_centre": [round(d, 3) for d in own[i]]}
                       for i, (r, b, a) in enumerate(zip(regions, before, after))],
        "mean_shrink": round(float(np.mean(1 - after / before)), 4),
        "emptiest_before": [round(r.score, 3) for r in regions],
        "emptiest_after": [round(r.score, 3) for r in again],
        "emptiest_after_groups": [r.extra.get("group") for r in again],
        "emptiest_shrink": round(float(1 - np.mean([r.score for r in again]) / np.mean([r.score for r in regions])), 4),
        "embed_steps": args.embed_steps, "seed": args.seed, "seconds": round(time.time() - t0, 1),
    }
    if args.control:
        control_ids = add_proposed_assets(args.catalog, controls, args.work, args.seed + 1, args.embed_steps, log)
        with Catalog.open(args.work / "catalog") as after_cat:
            control_codes = after_cat.codes(control_ids)
        with Catalog.open(args.catalog) as cat:
            cv = cat.code_vectors(args.space, *control_codes).astype(np.float64)
        own_nn = [float(np.sort(np.linalg.norm(X - X[i], axis=1))[1]) / u for i, u in zip(sources, units)]
        summary["control"] = [{"source": a, "landed_from_source": round(float(np.linalg.norm(v - X[i])) / u, 3),
                               "source_nearest_other_asset": round(d, 3)}
                              for a, v, i, d, u in zip(source_ids, cv, sources, own_nn, units)]
    figure(X, centres, new, region_of, before, after, args.figure, args.space)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results, summary)
    print(json.dumps({k: summary[k] for k in ("added", "mean_shrink", "emptiest_before", "emptiest_after", "emptiest_shrink",
                                               "seconds")}))


if __name__ == "__main__":
    main()
