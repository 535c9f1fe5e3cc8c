"""`assets2vec embed RUN DATASET`: add newly rendered assets to a trained run by inversion."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "embed",
        help="add new assets to a trained run by inversion (network frozen, no retraining)",
        description="Fit shape and texture codes for every asset of DATASET that RUN does not have yet, "
        "from its training views and known cameras, and append them to RUN's code tables. "
        "Saves every few assets; rerun to continue after an interruption.",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="trained run folder")
    p.add_argument("data", type=Path, metavar="DATASET", help="rendered dataset with the new assets")
    p.add_argument("--steps", type=int, default=80, help="optimisation steps per asset (default: 80)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pixel sampling (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from assets2vec.embed import EMBED_CONFIG, embed

    if args.steps < 1:
        raise ValueError(f"--steps must be positive, got {args.steps}")
    config = replace(EMBED_CONFIG, refine_steps=args.steps, seed=args.seed)
    summary = embed(args.run, args.data, config=config, progress=not args.quiet, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(summary))
    return 1 if summary["failed"] and not summary["embedded"] else 0
