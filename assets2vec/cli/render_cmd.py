"""`assets2vec render ASSETS OUT`: multiview RGB, mask, depth, normals and cameras for every asset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from render_core.assets.mesh import UP_AXES
from render_core.rig import DEFAULT_FLOOR_VIEWS

from assets2vec.devices import add_device_argument
from assets2vec.workers import cli, run_shards


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "render",
        help="render every asset from a camera rig into a dataset",
        description="Render each asset of a library (generated, or any folder of OBJ/PLY/GLB/GLTF/STL files) from "
        "rings of cameras: RGB on white, alpha mask, depth, normals and cameras per view. Resumable: rerun the "
        "same command to finish an interrupted run; failed assets are listed with reasons and the batch goes on.",
    )
    p.add_argument("assets", type=Path, help="a generated library or a folder of mesh files")
    p.add_argument("out", type=Path, help="dataset folder to create or resume")
    p.add_argument("--views", type=int, default=18, help="views per asset, spread over the elevation rings (default: 18)")
    p.add_argument("--size", type=int, default=64, help="image size in pixels, square (default: 64; 64-256 typical)")
    p.add_argument("--elevations", type=_floats, default=(-10.0, 20.0, 50.0), help="ring elevations in degrees (default: -10,20,50)")
    p.add_argument("--floor-views", type=int, default=DEFAULT_FLOOR_VIEWS, help="extra views on a ring at each asset's own floor "
                   "height, which see through the gap under long, low furniture and between legs; the catalog's "
                   "legs and base accuracies are measured with them (default: 6; 0: none)")
    p.add_argument("--floor-lift", type=float, default=0.02, help="height of the floor ring above the asset's lowest "
                   "point, in units of the normalised asset's longest side (default: 0.02)")
    p.add_argument("--distance", type=float, default=2.6, help="camera distance; assets are normalised to a unit box (default: 2.6)")
    p.add_argument("--fov", type=float, default=40.0, help="vertical field of view in degrees (default: 40)")
    p.add_argument("--lighting", choices=("fixed", "random"), default="fixed", help="fixed studio light, or one random light per asset drawn from --seed (default: fixed)")
    p.add_argument("--seed", type=int, default=0, help="seed for lighting randomisation (default: 0)")
    p.add_argument("--colour", choices=("linear", "display"), default="linear",
                   help="colour pipeline: 'linear' decodes sRGB textures, shades in linear light and writes sRGB, as a "
                        "camera or Blender does; 'display' shades stored values as they are (default: linear)")
    p.add_argument("--up-axis", choices=sorted(UP_AXES), default="y", help="the source files' up axis, rotated to +Y (default: y, as OBJ/glTF; STL is often z)")
    p.add_argument("--manifest", type=Path, default=None, help="CSV with 'path' (relative to ASSETS), 'category' and attribute columns, for plain folders")
    p.add_argument("--max-faces", type=int, default=1_000_000, help="refuse meshes with more faces than this (default: 1000000)")
    add_device_argument(p, "PyTorch3D rasterizes (with --workers and cuda, the workers share every visible GPU)")
    p.add_argument("--shard", metavar="I/N", help="render only shard I of N (assets split by a hash of their id); "
                   "merge the shard folders with 'assets2vec merge'")
    p.add_argument("--workers", type=int, default=1, help="render with N local processes (one shard each, in "
                   "OUT.shards/), then merge them into OUT; resumable like a single run (default: 1)")
    p.add_argument("--json", action="store_true", help="print the run report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _worker_device(device: str, i: int) -> str:
    """Worker i's device: plain "cuda" spreads the workers over every visible GPU, round robin."""
    if device == "cuda" and torch.cuda.device_count() > 1:
        return f"cuda:{i % torch.cuda.device_count()}"
    return device


def _run_workers(args: argparse.Namespace, library, device: str) -> dict:
    """One `render --shard i/N` process per worker into OUT.shards/, a joint progress bar, then merge."""
    from tqdm import tqdm

    from render_core.shards import merge_datasets

    n = args.workers
    root = args.out.with_name(args.out.name + ".shards")
    dirs = [root / f"{i}-of-{n}" for i in range(n)]
    base = cli("render", str(args.assets), "--quiet",
            "--views", str(args.views), "--size", str(args.size), "--elevations=" + ",".join(map(str, args.elevations)),  # "=": a negative value must not read as an option
            "--floor-views", str(args.floor_views), "--floor-lift", str(args.floor_lift),
            "--distance", str(args.distance), "--fov", str(args.fov), "--lighting", args.lighting, "--seed", str(args.seed),
            "--colour", args.colour, "--up-axis", args.up_axis, "--max-faces", str(args.max_faces), "--device", device)
    if args.manifest:
        base += ["--manifest", str(args.manifest)]
    commands = [base[:5] + [str(d), "--shard", f"{i}/{n}"] + base[5:-1] + [_worker_device(device, i)] for i, d in enumerate(dirs)]
    bar = tqdm(total=len(library.records), desc=f"render x{n}", unit="asset", disable=args.quiet)

    def progress() -> None:
        bar.n = sum(len(list((d / "assets").glob("*.npz"))) for d in dirs if (d / "assets").is_dir())
        bar.refresh()

    try:
        errors = run_shards(commands, ok=(0, 1), poll=progress)  # 1: some assets failed, listed in the shard's report
    finally:
        bar.close()
    if errors:
        raise ValueError("; ".join(errors))
    report = merge_datasets(dirs, args.out)
    report["shards"] = str(root)
    return report


def run(args: argparse.Namespace) -> int:
    from render_core.assets.library import open_library
    from render_core.assets.loaders import LoadLimits
    from render_core.multiview import RenderConfig, render_library
    from render_core.rig import RigConfig

    from assets2vec.devices import resolve_device

    device = str(resolve_device(args.device))
    config = RenderConfig(
        image_size=args.size,
        rig=RigConfig(n_views=args.views, elevations=args.elevations, distance=args.distance, fov_deg=args.fov,
                      floor_views=args.floor_views, floor_lift=args.floor_lift),
        lighting=args.lighting,
        seed=args.seed,
        up_axis=args.up_axis,
        colour=args.colour,
    )
    library = open_library(args.assets, args.manifest)
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1:
        if args.shard:
            raise ValueError("--workers and --shard exclude each other: --workers runs every shard itself")
        report = _run_workers(args, library, device)
    else:
        from render_core.shards import Shard

        shard = Shard.parse(args.shard) if args.shard else None
        report = render_library(library, args.out, config, LoadLimits(max_faces=args.max_faces), device=device,
                                progress=not args.quiet, shard=shard)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"rendered {report['rendered']}, skipped {report['skipped']} (already done), failed {len(report['failed'])} "
            f"in {report['seconds']:.1f} s; dataset: {args.out} ({report['total_in_dataset']} assets)"
        )
        for f in report["failed"]:
            print(f"  failed {f['id']} ({f['path']}): {f['error']}")
        for w in report["warnings"]:
            print(f"  warning {w['id']}: {'; '.join(w['warnings'])}")
        if report["total_in_dataset"]:
            print(f"contact sheet: {args.out / 'contact_sheet.png'}")
    nothing_done = report["rendered"] == 0 and report["skipped"] == 0
    return 1 if nothing_done and report["failed"] else 0
