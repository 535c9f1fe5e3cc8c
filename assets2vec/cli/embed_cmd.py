"""`assets2vec embed RUN DATASET`: add newly rendered assets to a trained run, network frozen."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device
from assets2vec.workers import cli, run_shards


def add_parser(sub) -> None:
    p = sub.add_parser(
        "embed",
        help="add new assets to a trained run (their codes fitted with the training loss, network frozen, no retraining)",
        description="Fit shape and texture codes for every asset of DATASET that RUN does not have yet, "
        "from its training views, known cameras and depth, with the loss RUN was trained with and the network frozen, "
        "and append them to RUN's code tables. "
        "Saves every few assets; rerun to continue after an interruption.",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="trained run folder")
    p.add_argument("data", type=Path, metavar="DATASET", help="rendered dataset with the new assets")
    p.add_argument("--steps", type=int, default=200, help="optimisation steps per asset (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pixel sampling (default: 0)")
    p.add_argument("--shard", metavar="I/N", help="embed only shard I of N into --out (the run is not written); "
                   "join the shards with 'assets2vec merge RUN SHARD...'")
    p.add_argument("--out", type=Path, help="folder for this shard's codes (with --shard)")
    p.add_argument("--workers", type=int, default=1, help="run N local shard processes (in RUN.embed-shards/), then "
                   "merge them into RUN (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(p, "the inversion runs")
    p.set_defaults(func=run)


def _run_workers(args: argparse.Namespace, log, device) -> dict:
    """One `embed --shard i/N` process per worker, with the cores split between them, then merge."""
    from assets2vec.embed_shards import merge_embeddings

    n = args.workers
    root = args.run.with_name(args.run.name + ".embed-shards")
    dirs = [root / f"{i}-of-{n}" for i in range(n)]
    errors = run_shards([cli("embed", str(args.run), str(args.data), "--shard", f"{i}/{n}", "--out", str(d),
                             "--steps", str(args.steps), "--seed", str(args.seed), "--quiet", "--device", str(device))
                         for i, d in enumerate(dirs)])
    if errors:
        raise ValueError("; ".join(errors))
    return merge_embeddings(args.run, dirs, log)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from assets2vec.embed import EMBED_CONFIG, embed

    if args.steps < 1:
        raise ValueError(f"--steps must be positive, got {args.steps}")
    config = replace(EMBED_CONFIG, steps=args.steps, seed=args.seed)
    device = resolve_device(args.device)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.shard or args.out:
        from assets2vec.embed_shards import embed_shard
        from render_core.shards import Shard

        if not (args.shard and args.out):
            raise ValueError("--shard and --out go together: a shard writes its codes to its own folder")
        if args.workers > 1:
            raise ValueError("--workers and --shard exclude each other: --workers runs every shard itself")
        report = embed_shard(args.run, args.data, Shard.parse(args.shard), args.out, config=config,
                             progress=not args.quiet, log=log, device=device)
        print(json.dumps(report))
        return 0
    if args.workers > 1:
        print(json.dumps(_run_workers(args, log, device)))
        return 0
    summary = embed(args.run, args.data, config=config, progress=not args.quiet, log=log, device=device)
    print(json.dumps(summary))
    return 1 if summary["failed"] and not summary["embedded"] else 0
