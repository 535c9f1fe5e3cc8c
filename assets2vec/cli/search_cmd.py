"""`assets2vec search CATALOG --like ID | --image PHOTO`: more like this, or which asset is in this photo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assets2vec.catalog.spaces import FEATURE_SPACES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "search", help="nearest assets to an asset (--like) or to a photo (--image), in a code space (shape, texture, joint) or a decoded one (geometry, appearance)",
        description="Similarity search in a catalog. --like ID ranks the assets nearest to a catalog asset; "
        "--image PHOTO inverts the photo through the NeRF (camera unknown) and ranks the assets nearest to its "
        "fitted codes. --where filters by attributes, manual tags and predicted tags, e.g. \"family=chair, legs=4|5\".")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--like", metavar="ID", help="a catalog asset id")
    what.add_argument("--image", type=Path, metavar="PHOTO", help="an image file (the object on white, or with alpha)")
    p.add_argument("catalog", type=Path, metavar="CATALOG")
    p.add_argument("--space", choices=FEATURE_SPACES, default="joint", help="space to search (default: joint)")
    p.add_argument("-k", type=int, default=10, help="number of results (default: 10)")
    p.add_argument("--where", default=None, help="filter, e.g. \"legs=4\" or \"family=chair, colour!=red\"")
    p.add_argument("--min-confidence", type=float, default=0.5, help="predicted tags count in --where from this confidence (default: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image inversion (default: 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assets2vec import Catalog

    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    with Catalog.open(args.catalog) as cat:
        if args.like:
            hits = cat.similar(args.like, args.k, args.space, args.where, args.min_confidence)
            out = {"query": args.like, "space": args.space, "where": args.where, "results": hits}
        else:
            r = cat.search_image(args.image, args.k, args.space, args.where, seed=args.seed)
            hits = r["neighbours"]
            out = {"query": str(args.image), "space": args.space, "where": args.where, "fit_psnr": r["fit_psnr"],
                   "camera_index": r["camera_index"], "seconds": r["seconds"], "results": hits}
        if args.json:
            print(json.dumps(out))
            return 0
        extra = f", fit {out['fit_psnr']} dB in {out['seconds']} s" if args.image else ""
        print(f"{len(hits)} nearest to {out['query']} in {args.space} space{' where ' + args.where if args.where else ''}{extra}:")
        for h in hits:
            a = cat.asset(h["id"])
            desc = ", ".join(f"{k}={v}" for k, v in sorted(a["attributes"].items())[:6])
            print(f"  {h['rank']:>3}  {h['id']:<28} {h['distance']:>8.3f}  {a['family'] or '-'}  {desc}")
    return 0
