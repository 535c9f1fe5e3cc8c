"""`assets2vec merge OUT SHARD...`: combine the datasets of `render --shard i/n` workers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "merge", help="merge shard datasets (from 'render --shard i/n' on several workers or machines) into one",
        description="Combine DATASET folders rendered as shards of one library with the same settings. Every shard "
        "0..n-1 must be present; each asset lands once (hard links when on one file system); rerunning after more "
        "shards finish adds only what is new.")
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument("shards", type=Path, nargs="+", metavar="SHARD")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from render_core.shards import merge_datasets

    report = merge_datasets(args.shards, args.out)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"merged {report['merged_shards']} shards into {args.out}: {report['added']} assets added, "
          f"{report['already_there']} already there, {report['total_in_dataset']} in the dataset, "
          f"{len(report['failed'])} failed in the shards")
    for f in report["failed"]:
        print(f"  failed {f['id']} ({f.get('path')}): {f.get('error')}")
    return 0
