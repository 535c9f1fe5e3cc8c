"""`assets2vec scenes generate CATALOG OUT`: labelled synthetic scenes composed from catalog assets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assets2vec.catalog.spaces import SPACES
from assets2vec.devices import add_device_argument


def add_parser(sub) -> None:
    p = sub.add_parser("scenes", help="compose catalog assets into randomized, fully labelled scenes (RGB, depth, masks, boxes, COCO)")
    ssub = p.add_subparsers(dest="scenes_command", metavar="SUBCOMMAND", required=True)
    g = ssub.add_parser(
        "generate", help="render N scenes into OUT (resumable)",
        description="Compose catalog assets on a floor with walls, clutter, random camera, lights and textures, render "
        "with PyTorch3D and write RGB, depth, instance and semantic masks, boxes with visible fraction, cameras and a "
        "COCO file. Every range lives in a YAML config (defaults: render_core/scenes/default_scenes.yaml). Scene i "
        "is seeded from (--seed, i); rerunning the same command resumes.")
    g.add_argument("catalog", type=Path, metavar="CATALOG")
    g.add_argument("out", type=Path, metavar="OUT")
    g.add_argument("--n", type=int, required=True, help="number of scenes")
    g.add_argument("--seed", type=int, default=0, help="run seed; scene seeds derive from it (default: 0)")
    g.add_argument("--config", type=Path, help="YAML overriding any of the documented ranges")
    g.add_argument("--where", help='only assets matching a filter, e.g. "family=chair|sofa, base=swivel"')
    g.add_argument("--like", metavar="ID", help="only the --k assets most similar to ID (ID included)")
    g.add_argument("--k", type=int, default=50, help="how many similar assets --like keeps (default: 50)")
    g.add_argument("--space", choices=SPACES, default="joint", help="space of --like (default: joint)")
    g.add_argument("--weights", type=Path, metavar="WEIGHTS.csv",
                   help="draw assets in proportion to these weights (id,weight: from 'weak-spots' or the app's Coverage page)")
    g.add_argument("--min-confidence", type=float, default=0.5, help="predicted tags below this do not count (default: 0.5)")
    add_device_argument(g, "the scenes are rasterized")
    g.add_argument("--renderer", choices=("raster", "blender"), default="raster",
                   help="raster: PyTorch3D, fast (default); blender: Cycles path tracing after the objects settle under "
                        "gravity, labels from its own passes (needs the [blender] extra; about 5 s a scene at 256² on 2 cores)")
    g.add_argument("--json", action="store_true", help="print the run report as JSON")
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assets2vec import Catalog
    from assets2vec.devices import resolve_device

    args.device = str(resolve_device(args.device))
    if args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    with Catalog.open(args.catalog, device=args.device) as cat:
        report = cat.generate_scenes(args.out, args.n, args.seed, args.config, where=args.where, like=args.like, k=args.k,
                                     space=args.space, weights=args.weights, min_confidence=args.min_confidence,
                                     device=args.device, progress=True, renderer=args.renderer)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"scenes: {report['made']} made, {report['skipped']} already there, {report['total_in_folder']} in {args.out}"
          + (f" ({report['scenes_per_second']} scenes/s)" if report["scenes_per_second"] else ""))
    for f in report["failed_assets"]:
        print(f"  skipped asset {f['asset_id']}: {f['error']}")
    for f in report["failed_scenes"]:
        print(f"  failed scene {f['index']} (seed {f['seed']}): {f['error']}")
    print(f"COCO: {args.out / 'coco.json'}   preview: {args.out / 'preview.png'}")
    return 0
