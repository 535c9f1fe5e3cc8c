"""Probe: can the catalog take the shape that leaks into the texture codes back out of them?

The texture codes of the best recipe carry some shape (armrests read from them at 9-13 points over
chance, `benchmarks/tagging.py`). A catalog-side fix would replace the texture space, for search
and tagging only, by the texture vectors less what the asset's decoded geometry (the geometry
space, `catalog.geometry`) predicts of them. This scores candidate residuals with the same
few-shot classifiers and draws as `benchmarks/tagging.py` (20 labels per class, `--repeats`
seeds): each shape attribute's leak (balanced accuracy minus chance; the target is at most 10
points) and each texture attribute's signal (balanced accuracy minus chance; it should stay).

- `texture`: the standardised texture codes, as the catalog's texture space holds them;
- `linear-K`: less a least-squares fit (with intercept) on the first K geometry coordinates;
- `knn-M`: less the mean texture vector of the M nearest other assets in the geometry space
  (what is particular to an asset's texture among assets shaped like it; removes non-linear
  traces too).

Every fit here is made on all assets of the run (what a catalog would do); nothing is tuned on
the draws.

    .venv/bin/python benchmarks/texture_residual.py benchmarks/runs/fit400fei_s1 --out benchmarks/results/texture_residual_fit400fei_s1.json

Prints a table; writes benchmarks/results/texture_residual.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec.catalog.texture_only import residual  # noqa: E402
from benchmarks.tagging import SHAPE_ATTRS, TEXTURE_ATTRS, run_cell, temporary_catalog  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "texture_residual.json"
VARIANTS = ("texture", "linear-8", "linear-16", "linear-32", "knn-20")


def linear_residual(texture: np.ndarray, geometry: np.ndarray, k: int) -> np.ndarray:
    design = np.hstack([np.ones((len(geometry), 1)), geometry[:, :k]])
    return texture - design @ np.linalg.lstsq(design, texture, rcond=None)[0]


def knn_residual(texture: np.ndarray, geometry: np.ndarray, m: int) -> np.ndarray:
    """Every asset a reference that leaves itself out: what the catalog's texture_only space is for m=20."""
    return residual(texture, geometry, texture, geometry, np.arange(len(texture)), m)


def variant(name: str, texture: np.ndarray, geometry: np.ndarray) -> np.ndarray:
    if name == "texture":
        return texture
    kind, n = name.split("-")
    return linear_residual(texture, geometry, int(n)) if kind == "linear" else knn_residual(texture, geometry, int(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="trained run (its catalog is built in a temporary folder)")
    ap.add_argument("--labels", type=int, default=20, help="labels per class (default: 20)")
    ap.add_argument("--repeats", type=int, default=10, help="seeds per cell (default: 10)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"default: {','.join(VARIANTS)}")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    t0 = time.time()
    with temporary_catalog(args.run) as cat:
        texture, geometry = cat.vectors("texture").astype(np.float64), cat.vectors("geometry").astype(np.float64)
        truth = {a: cat.values(a) for a in SHAPE_ATTRS + TEXTURE_ATTRS}
    rows = []
    for name in args.variants.split(","):
        X = variant(name, texture, geometry)
        row = {"variant": name}
        for attr in SHAPE_ATTRS + TEXTURE_ATTRS:
            has = np.array([v is not None for v in truth[attr]])
            y = np.array([str(v) for v in truth[attr]])[has]
            cells = [c for c in (run_cell(X[has], y, args.labels, s, True) for s in range(args.repeats)) if c]
            bal = [c["balanced_accuracy"] for c in cells]
            row[attr] = {"points_over_chance": round(100 * (float(np.mean(bal)) - cells[0]["chance"]), 1),
                         "se": round(100 * float(np.std(bal, ddof=1) / np.sqrt(len(bal))), 1)}
        row["shape_leaks_within_10_points"] = all(row[a]["points_over_chance"] <= 10 for a in SHAPE_ATTRS)
        rows.append(row)
        print(f"{name:10s} " + " ".join(f"{a} {row[a]['points_over_chance']:+5.1f}±{row[a]['se']:.1f}" for a in SHAPE_ATTRS + TEXTURE_ATTRS),
              file=sys.stderr, flush=True)
    res = {"run": str(args.run), "labels_per_class": args.labels, "repeats": args.repeats, "seconds": round(time.time() - t0, 1),
           "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
