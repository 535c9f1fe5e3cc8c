"""Does `sparse --within family` find a hole we make on purpose?

A catalog's sparse regions are meant to say where the library is thin. Here a hole is planted: in each
family, one asset (drawn from the seed) and its `--remove - 1` nearest neighbours of the same family
(in `--space`) are taken out of the catalog's vectors; `density.sparse_regions_within` (what
`Catalog.sparse_regions(within="family")` runs) then ranks the emptiest regions among the assets left.
Reported per planted hole: how far the removed assets are from the nearest asset kept (the hole's real
depth, in units of the family's median nearest-neighbour spacing), and per region found: its score and
how far its centre is from the nearest removed asset. A region that found the hole has its centre
among the removed assets (closer to one of them than they are to the assets kept).

    .venv/bin/python benchmarks/planted_holes.py demo/catalog --space geometry --seeds 0 1 2

Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec import Catalog  # noqa: E402
from assets2vec.catalog import density  # noqa: E402


def plant(X: np.ndarray, family: np.ndarray, remove: int, seed: int) -> dict[str, np.ndarray]:
    """{family: positions removed}: one seeded asset per family and its nearest of the same family."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in sorted(set(family.tolist())):
        rows = np.flatnonzero(family == f)
        centre = rng.choice(rows)
        out[f] = rows[np.argsort(np.linalg.norm(X[rows] - X[centre], axis=1))[:remove]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--space", default="geometry")
    ap.add_argument("--remove", type=int, default=6, help="assets taken out per family (default: 6)")
    ap.add_argument("--regions", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    with Catalog.open(args.catalog) as cat:
        X, family = cat.vectors(args.space), np.array([str(v) for v in cat.values("family")])
    runs = []
    for seed in args.seeds:
        removed = plant(X, family, args.remove, seed)
        keep = np.setdiff1d(np.arange(len(X)), np.concatenate(list(removed.values())))
        regions = density.sparse_regions_within(X[keep], family[keep], args.regions, seed=seed)
        spacing = {f: float(np.median(density.isolation(X[keep][family[keep] == f], 1))) for f in removed}
        holes = {f: [round(float(np.linalg.norm(X[keep][family[keep] == f] - X[o], axis=1).min() / spacing[f]), 2) for o in out]
                 for f, out in removed.items()}
        found = []
        for r in regions:
            f = r.extra["group"]
            to_removed = np.linalg.norm(X[removed[f]] - r.center, axis=1) / spacing[f]
            found.append({"rank": r.rank, "family": f, "score": round(r.score, 2), "centre_to_nearest_removed": round(float(to_removed.min()), 2),
                          "in_the_hole": bool(to_removed.min() < min(holes[f]))})
        runs.append({"seed": seed, "hole_depth": holes, "regions": found, "regions_in_a_hole": sum(x["in_the_hole"] for x in found)})
        print(f"seed {seed}: planted holes (removed assets' distance to the nearest kept, spacings) {holes}")
        for x in found:
            print(f"  region {x['rank']} {x['family']:<6} score {x['score']:.2f}  centre to nearest removed {x['centre_to_nearest_removed']:.2f}"
                  f"{'  IN THE HOLE' if x['in_the_hole'] else ''}")
    print(json.dumps({"catalog": str(args.catalog), "space": args.space, "remove": args.remove, "runs": runs}))


if __name__ == "__main__":
    main()
