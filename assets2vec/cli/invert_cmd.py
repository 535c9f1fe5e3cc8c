"""`assets2vec invert RUN IMAGE...`: which training assets look like the object in each image?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device


def add_parser(sub) -> None:
    p = sub.add_parser(
        "invert",
        help="fit codes to images (camera unknown) and list the nearest assets of the run",
        description="For each IMAGE (PNG/JPEG, the object on white or with alpha), search the camera over the "
        "run's rig, fit shape and texture codes with the network frozen, and print the nearest training assets "
        "(one JSON line per image). An image that cannot be read or fitted prints {\"image\", \"error\"} and the "
        "others go on; the exit status is then 2.",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="trained run folder")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--k", type=int, default=5, help="nearest assets to list, at least 1 (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pixel sampling (default: 0)")
    p.add_argument("--no-bank", action="store_true",
                   help="search the camera by gradient steps from the mean code instead of starting from the run's "
                   "inversion bank (renders of every training code from every rig pose, built on first use and "
                   "saved in RUN/inversion_bank/)")
    add_device_argument(p, "the inversion runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assets2vec.code_bank import run_bank
    from assets2vec.invert import InversionConfig, invert, nearest_codes
    from assets2vec.images import load_image
    from assets2vec.run import Run
    from render_core.rig import intrinsics

    if args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    device = resolve_device(args.device)
    run = Run.open(args.run)
    model = run.model(device)
    rig, size = run.rig()
    ids = run.asset_ids
    bank = None if args.no_bank else run_bank(args.run, model, rig, size)
    failed = 0
    for path in args.images:
        # One unreadable or unusable image must not cost the answers for the others.
        try:
            image = load_image(path, size)
            r = invert(model, [image], intrinsics(rig.fov_deg, size), rig=rig, config=InversionConfig(seed=args.seed), bank=bank)
        except (OSError, ValueError) as exc:
            failed += 1
            message = str(exc) or type(exc).__name__
            # a JSON line in its place on stdout (one line per image) and the error where errors go
            print(json.dumps({"image": str(path), "error": message}), flush=True)
            print(f"error: {message}", file=sys.stderr, flush=True)
            continue
        dist, rows = nearest_codes(model, r.shape_code, r.texture_code, args.k)
        print(json.dumps({
            "image": str(path), "fit_psnr": round(r.score, 2), "camera_index": r.camera_index, "seconds": round(r.seconds, 2),
            "nearest": [{"asset": ids[int(i)], "distance": round(float(d), 4)} for d, i in zip(dist, rows)],
        }), flush=True)
    return 2 if failed else 0
