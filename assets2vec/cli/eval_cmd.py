"""`assets2vec eval RUN`: held-out PSNR / SSIM / mask IoU and the shape-texture swap test."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a run on its held-out views (PSNR, SSIM, mask IoU, swap test)",
        description="Render every asset's held-out views from its codes and compare with the dataset; "
        "also render shape-of-i x texture-of-j swaps. Writes RUN/eval.json.",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="run folder (or a checkpoint file)")
    p.add_argument("--data", type=Path, help="dataset to evaluate on (default: the one the run was trained on)")
    p.add_argument("--json", action="store_true", help="print the full result as one JSON object")
    p.add_argument("--max-assets", type=int, help="evaluate the first N assets only")
    p.add_argument("--swap-pairs", type=int, default=32, help="random (shape i, texture j) pairs in the swap test (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the swap pairs (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(p, "the held-out views are rendered")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assets2vec.evaluate import evaluate

    if args.max_assets is not None and args.max_assets < 1:
        raise ValueError(f"--max-assets must be positive, got {args.max_assets}")
    result = evaluate(args.run, args.data, max_assets=args.max_assets, swap_pairs=args.swap_pairs, seed=args.seed, progress=not args.quiet,
                      device=resolve_device(args.device))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['assets']} assets, {result['heldout_views_per_asset']} held-out views each, step {result['step']}")
        print(f"  PSNR {result['psnr']:.2f} dB   SSIM {result['ssim']:.3f}   mask IoU {result['mask_iou']:.3f}")
        if "swap" in result:
            s = result["swap"]
            print(f"  swap: silhouette IoU {s['silhouette_iou_swapped']:.3f} swapped vs {s['silhouette_iou_unswapped']:.3f} unswapped; "
                  f"colour distance to texture source {s['colour_distance_to_texture_source']:.3f} "
                  f"(unswapped {s['colour_distance_unswapped']:.3f}, to shape source {s['colour_distance_to_shape_source']:.3f})")
        print(f"  written to {Path(args.run) / 'eval.json' if Path(args.run).is_dir() else 'the run folder'}")
    return 0
