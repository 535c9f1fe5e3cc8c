"""`assets2vec search CATALOG --like ID | --image PHOTO`: more like this, or which asset is in this photo."""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device

from assets2vec.catalog.spaces import FEATURE_SPACES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "search", help="nearest assets to an asset (--like) or to a photo (--image), in a code space (shape, texture, joint) or a decoded one (geometry, appearance)",
        description="Similarity search in a catalog. --like ID ranks the assets nearest to a catalog asset; "
        "--image PHOTO finds the object in a photo (any camera, any background), fits the NeRF's codes, a camera and a "
        "colour transform to it, names the catalog asset it shows (or says that none matches) and ranks the assets "
        "nearest to its fitted codes. --where filters by attributes, manual tags and predicted tags, e.g. "
        "\"family=chair, legs=4|5\".")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--like", metavar="ID", help="a catalog asset id")
    what.add_argument("--image", type=Path, metavar="PHOTO", help="a photo of one object: PNG, JPEG, ...; the object "
                      "is taken from the alpha channel when there is one, else segmented from its background")
    p.add_argument("catalog", type=Path, metavar="CATALOG")
    p.add_argument("--space", choices=FEATURE_SPACES, default="joint", help="space to search (default: joint)")
    p.add_argument("-k", type=int, default=10, help="number of results (default: 10)")
    p.add_argument("--where", default=None, help="filter, e.g. \"legs=4\" or \"family=chair, colour!=red\"")
    p.add_argument("--min-confidence", type=float, default=0.5, help="predicted tags count in --where from this confidence (default: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the photo fit (default: 0)")
    p.add_argument("--box", type=_box, default=None, metavar="X0,Y0,X1,Y1",
                   help="with --image: the object's box in photo pixels, for a cluttered photo")
    p.add_argument("--overlay", type=Path, default=None, metavar="OUT.png",
                   help="with --image: write the photo with the fitted render laid over it")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_device_argument(p, "the photo fit runs")
    p.set_defaults(func=run)


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise argparse.ArgumentTypeError(f"a box is four finite numbers x0,y0,x1,y1 in pixels, got {text!r}")
    return box


def run(args: argparse.Namespace) -> int:
    from assets2vec import Catalog

    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    if (args.box or args.overlay) and not args.image:
        raise ValueError("--box and --overlay go with --image")
    with Catalog.open(args.catalog, device=resolve_device(args.device)) as cat:
        if args.like:
            hits = cat.similar(args.like, args.k, args.space, args.where, args.min_confidence)
            out = {"query": args.like, "space": args.space, "where": args.where, "results": hits}
        else:
            r = cat.search_image(args.image, args.k, args.space, args.where, seed=args.seed, box=args.box)
            hits = r["neighbours"]
            cam = r["camera"]
            out = {"query": str(args.image), "space": args.space, "where": args.where, "match": r["match"],
                   "verdict": r["verdict"], "rule": r["rule"], "asset": r["asset"], "runner_up": r["runner_up"], "confidence": r["confidence"],
                   "camera": {"c2w": cam["c2w"].tolist(), "K": cam["K"].tolist(), "photo_size": list(cam["photo_size"])},
                   "colour": {k: v.tolist() for k, v in r["colour"].items()}, "mask_source": r["mask_source"],
                   "proposals": r["proposals"],
                   "seconds": r["seconds"], "results": hits}
            if args.overlay:
                from PIL import Image

                from render_core.artifacts import atomic_write_bytes

                buf = io.BytesIO()
                Image.fromarray(r["overlay"]).save(buf, format="PNG")
                atomic_write_bytes(args.overlay, buf.getvalue())
                out["overlay"] = str(args.overlay)
        if args.json:
            print(json.dumps(out, allow_nan=False))
            return 0
        if args.image:
            print(f"{'match' if out['match'] else 'no match'}: {out['verdict']}  [{out['seconds']} s]")
            if args.overlay:
                print(f"overlay: {args.overlay}")
        print(f"{len(hits)} nearest to {out['query']} in {args.space} space{' where ' + args.where if args.where else ''}:")
        for h in hits:
            a = cat.asset(h["id"])
            desc = ", ".join(f"{k}={v}" for k, v in sorted(a["attributes"].items())[:6])
            print(f"  {h['rank']:>3}  {h['id']:<28} {h['distance']:>8.3f}  {a['family'] or '-'}  {desc}")
    return 0
