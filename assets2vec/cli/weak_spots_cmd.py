"""`assets2vec weak-spots CATALOG ERRORS.csv`: where a downstream model fails, and weights toward it."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from assets2vec.catalog.spaces import SPACES
from assets2vec.catalog.weak_spots import KEEP_UNIFORM, SHARPNESS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "weak-spots", help="find latent regions where a downstream model fails and write sampling weights toward them",
        description="Read error scores of a downstream model (CSV: asset_id,error per asset, image or crop; or "
        "image,error with --scenes), carry them to every asset by k-NN regression over the latent space, rank the "
        "weakest regions, and write OUT/weights.csv for 'scenes generate --weights', OUT/weak_spots.json, "
        "OUT/weights_before_after.png and, for procedural families, OUT/proposals.json for "
        "'assets generate --from-proposals'.")
    p.add_argument("catalog", type=Path, metavar="CATALOG")
    p.add_argument("errors", type=Path, metavar="ERRORS.csv")
    p.add_argument("--scenes", type=Path, help="SCENES folder that per-image rows refer to")
    p.add_argument("--out", type=Path, default=Path("weak_spots"), help="output folder (default: ./weak_spots)")
    p.add_argument("--space", choices=SPACES, default="shape", help="space to find regions in (default: shape)")
    p.add_argument("-n", type=int, default=3, help="number of weak regions (default: 3)")
    p.add_argument("--size", type=int, default=10, help="assets per region (default: 10)")
    p.add_argument("-k", type=int, default=10, help="neighbours in the error regression (default: 10)")
    p.add_argument("--prior", type=Path, metavar="WEIGHTS.csv", help="weights to start from (default: uniform)")
    p.add_argument("--sharpness", type=float, default=SHARPNESS,
                   help=f"exponent on relative predicted error: higher draws more from the weak regions (default: {SHARPNESS:g})")
    p.add_argument("--keep-uniform", type=float, default=KEEP_UNIFORM,
                   help=f"share of the prior kept unchanged, so no asset drops out (default: {KEEP_UNIFORM:g})")
    p.add_argument("--proposals", type=int, default=4, help="proposed new assets per region, procedural families (default: 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assets2vec import Catalog
    from assets2vec.catalog import latent_map
    from assets2vec.catalog.weak_spots import plot_before_after
    from render_core.artifacts import atomic_write_json, atomic_write_text

    if args.n < 1 or args.size < 1 or args.k < 1:
        raise ValueError("-n, --size and -k must each be at least 1")
    with Catalog.open(args.catalog) as cat:
        res = cat.weak_spots(args.errors, args.scenes, args.space, args.n, args.size, args.k, args.prior,
                             args.sharpness, args.keep_uniform, args.proposals, args.seed)
        coords = latent_map.project(cat.vectors(args.space))
    args.out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "weight"])
    writer.writerows((a, f"{w:.10g}") for a, w in res["weights"].items())
    atomic_write_text(args.out / "weights.csv", buf.getvalue())
    plot = plot_before_after(coords, res["prior"], res["after"], res["_regions"], args.out / "weights_before_after.png",
                             title=f"sampling weights over the {args.space} map")
    summary = {"space": res["space"], "scored_assets": res["scored_assets"], "regions": res["regions"],
               "share_before": round(res["share_before"], 4), "share_after": round(res["share_after"], 4),
               "weights": str(args.out / "weights.csv"), "plot": str(plot)}
    atomic_write_json(args.out / "weak_spots.json", summary)
    if res["proposals"]:
        atomic_write_json(args.out / "proposals.json", {"kind": "proposals", "space": args.space, "seed": args.seed,
                                                       "assets": [{"family": p["family"], "params": p["params"]} for p in res["proposals"]]})
        summary["proposals"] = str(args.out / "proposals.json")
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{res['scored_assets']} assets scored; weak regions in the {args.space} space:")
    for r in res["regions"]:
        obs = "n/a" if r["observed_error"] is None else f"{r['observed_error']:.3f}"
        print(f"  region {r['rank']}: predicted error {r['predicted_error']:.3f} (observed {obs} on {r['scored_members']}), "
              f"around {r['centre']}: {', '.join(r['members'][:4])}, ...")
    print(f"weak regions' share of draws: {summary['share_before']:.1%} -> {summary['share_after']:.1%}")
    print(f"weights: {summary['weights']}  (use: assets2vec scenes generate CATALOG OUT --n N --weights {summary['weights']})")
    print(f"plot: {plot}")
    if "proposals" in summary:
        print(f"proposals: {summary['proposals']}  (use: assets2vec assets generate OUT --from-proposals {summary['proposals']})")
    return 0
