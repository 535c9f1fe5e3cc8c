"""`assets2vec merge OUT SHARD...`: combine the datasets of `render --shard i/n` workers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "merge", help="merge shards from several workers or machines: datasets ('render --shard') or codes ('embed --shard')",
        description="Datasets: combine DATASET folders rendered as shards of one library with the same settings into "
        "OUT; each asset lands once (hard links when on one file system). Codes: append the codes of 'embed --shard' "
        "folders to the run OUT in one checkpoint write. Either way every shard 0..n-1 must be present, and "
        "rerunning after more shards finish adds only what is new.")
    p.add_argument("out", type=Path, metavar="OUT", help="the merged dataset, or the RUN that embedding shards belong to")
    p.add_argument("shards", type=Path, nargs="+", metavar="SHARD")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from render_core.artifacts import read_header
    from render_core.shards import merge_datasets

    if read_header(args.shards[0]).get("kind") == "embedding":
        from assets2vec.embed_shards import merge_embeddings

        report = merge_embeddings(args.out, args.shards, log=lambda m: None)
        if args.json:
            print(json.dumps(report))
        else:
            print(f"merged {report['merged_shards']} embedding shards into {args.out}: {report['added']} assets added, "
                  f"{report['already_in_run']} already there, {report['assets_in_run']} in the run")
        return 0
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
