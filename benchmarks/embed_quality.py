"""How faithfully does `embed` place an asset? Embed assets the run was TRAINED on again, from the mean
code, and compare with the codes training gave them: held-out PSNR, and the distance to the trained
asset's own vector in the shape-code and geometry spaces (units of each space's median
nearest-neighbour spacing). Side by side: `embed` (the training loss, network frozen) at several step
counts, and a photo's inversion objective on the same views and cameras (a few uniform samples per
ray, colour and coverage only; what `embed` ran before).

    make demo
    .venv/bin/python benchmarks/embed_quality.py demo/catalog --assets 10

Writes benchmarks/results/embed_quality.json; prints one JSON line per asset, then the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec import Catalog  # noqa: E402
from assets2vec.data.rays import holdout_views  # noqa: E402
from assets2vec.embed import EMBED_CONFIG, embed_asset  # noqa: E402
from assets2vec.evaluate import psnr  # noqa: E402
from assets2vec.invert import InversionConfig, invert  # noqa: E402
from assets2vec.nerf_render import render_views  # noqa: E402
from assets2vec.run import Run  # noqa: E402
from render_core.artifacts import atomic_write_json  # noqa: E402
from render_core.dataset import RenderedDataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The photo objective with known cameras, as `embed` ran it before it used the training loss.
INVERSION = InversionConfig(refine_steps=80, refine_rays=1024, lr=0.03, exemplars=0, fine_samples=0)


def spacing(V: np.ndarray) -> float:
    D = np.sqrt(((V[:, None] - V[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    return float(np.median(D.min(1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--assets", type=int, default=10, help="trained assets to embed again, drawn with --seed (default: 10)")
    ap.add_argument("--steps", default="100,200", help="embed step counts to compare (default: 100,200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "embed_quality.json")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    t0 = time.time()
    with Catalog.open(args.catalog) as cat:
        run = Run.open(cat.store.get_meta("run"))
        model, config = run.model("cpu"), run.config
        dataset = RenderedDataset(run.dataset)
        X, G = cat.vectors("shape").astype(np.float64), cat.vectors("geometry").astype(np.float64)
        units = {"shape": spacing(X), "geometry": spacing(G)}
        trained = [i for i, a in enumerate(cat.ids) if a in set(dataset.asset_ids) and a not in run.embedded]
        pick = sorted(np.random.default_rng(args.seed).choice(trained, min(args.assets, len(trained)), replace=False).tolist())
        rows = []
        for p in pick:
            aid = cat.ids[p]
            v = dataset.load(aid)
            held = holdout_views(aid, v.n_views, config.n_holdout, config.seed)
            train_views = np.setdiff1d(np.arange(v.n_views), held)
            truth = v.rgb[held].astype(np.float32) / 255

            def score(shape, texture, seconds) -> dict:
                out = render_views(model, v.c2w[held], v.intrinsics, dataset.image_size, shape, texture)
                s, t = shape.detach().numpy()[None], texture.detach().numpy()[None]
                return {"heldout_psnr": round(float(np.mean([psnr(out["rgb"][k], truth[k]) for k in range(len(held))])), 3),
                        "shape_distance": round(float(np.linalg.norm(cat.code_vectors("shape", s, t)[0] - X[p]) / units["shape"]), 3),
                        "geometry_distance": round(float(np.linalg.norm(cat.code_vectors("geometry", s, t)[0] - G[p]) / units["geometry"]), 3),
                        "seconds": round(seconds, 1)}

            row = {"id": aid, "trained": score(*(w[run.asset_ids.index(aid)].detach() for w in (model.codes.shape.weight, model.codes.texture.weight)), 0.0)}
            row["mean_code"] = score(*model.codes.mean(), 0.0)
            for n in steps:
                r = embed_asset(model, config, dataset, aid, replace(EMBED_CONFIG, steps=n, seed=args.seed))
                row[f"embed_{n}"] = score(r.shape_code, r.texture_code, r.seconds)
            r = invert(model, [v.rgb[k] for k in train_views], v.intrinsics, poses=v.c2w[train_views], config=replace(INVERSION, seed=args.seed))
            row["inversion_80"] = score(r.shape_code, r.texture_code, r.seconds)
            rows.append(row)
            print(json.dumps(row), flush=True)
    methods = [k for k in rows[0] if k != "id"]
    summary = {
        "catalog": str(args.catalog), "assets": [r["id"] for r in rows], "seed": args.seed, "units": units,
        "median": {m: {k: float(np.median([r[m][k] for r in rows])) for k in rows[0][m]} for m in methods},
        "psnr_below_trained": {m: {"median": float(np.median([r["trained"]["heldout_psnr"] - r[m]["heldout_psnr"] for r in rows])),
                                   "worst": float(np.max([r["trained"]["heldout_psnr"] - r[m]["heldout_psnr"] for r in rows]))}
                               for m in methods if m != "trained"},
        "rows": rows, "seconds": round(time.time() - t0, 1),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results, summary)
    print(json.dumps({k: summary[k] for k in ("median", "psnr_below_trained", "seconds")}))


if __name__ == "__main__":
    main()
