"""`assets2vec demo`: build the demo library end to end and say where everything is.

Grows with the product: today it generates and renders; training, the catalog and
the app join as they land.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="build the demo: procedural library -> rendered dataset (what exists so far)",
        description="Generate the built-in demo library and render it; resumable, and reruns reuse finished steps.",
    )
    p.add_argument("--out", type=Path, default=Path("demo"), help="folder for all demo artifacts (default: demo)")
    p.add_argument("--n", type=int, default=120, help="assets in the demo library (default: 120)")
    p.add_argument("--size", type=int, default=64, help="render size (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from render_core.assets.library import open_library
    from render_core.assets.procedural.generate import generate_library
    from render_core.multiview import RenderConfig, render_library

    t0 = time.time()
    library_dir, dataset_dir = args.out / "library", args.out / "dataset"
    print(f"[1/2] generating {args.n} procedural assets (seed {args.seed}) -> {library_dir}")
    # Regenerating is cheap and byte-identical; a library with other settings is refused by name.
    generate_library(library_dir, args.n, args.seed)
    print(f"[2/2] rendering 18 views at {args.size}x{args.size} -> {dataset_dir}")
    report = render_library(open_library(library_dir), dataset_dir, RenderConfig(image_size=args.size, seed=args.seed))
    minutes = (time.time() - t0) / 60
    print()
    print("=" * 72)
    print(f"assets2vec demo finished in {minutes:.1f} min")
    print(f"  library : {library_dir}  ({args.n} assets: chairs, tables, sofas, lamps; OBJ+MTL+PNG, manifest.jsonl)")
    print(f"  dataset : {dataset_dir}  ({report['total_in_dataset']} assets x 18 views: RGB, mask, depth, normals, cameras)")
    print(f"  look    : {dataset_dir / 'contact_sheet.png'}")
    print(f"  inspect : .venv/bin/assets2vec info {dataset_dir}")
    if report["failed"]:
        print(f"  failed  : {len(report['failed'])} assets, see {dataset_dir / 'report.json'}")
    print("  not yet : NeRF training (assets2vec fit), the catalog and its app are the next")
    print("            milestones; this demo will train, build the catalog and print how")
    print("            to open the app once they land.")
    print("=" * 72)
    return 0
