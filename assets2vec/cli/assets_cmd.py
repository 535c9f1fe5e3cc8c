"""`assets2vec assets generate|sheet`: procedural libraries and contact sheets."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from render_core.assets.procedural import FAMILIES


def add_parser(sub) -> None:
    p = sub.add_parser("assets", help="generate procedural asset libraries; draw contact sheets")
    asub = p.add_subparsers(dest="assets_command", metavar="ACTION", required=True)

    g = asub.add_parser(
        "generate",
        help="write N procedural assets (OBJ+MTL+PNG) and a manifest",
        description="Generate a library of procedural furniture with known generator parameters and attributes. "
        "Same seed, byte-identical files; seed 0 is a seed like any other.",
    )
    g.add_argument("out", type=Path, help="output folder (created; must be empty or hold the same library)")
    g.add_argument("--n", type=int, default=120, help="number of assets (default: 120)")
    g.add_argument("--seed", type=int, default=0, help="random seed, any integer >= 0 (default: 0)")
    g.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help=f"comma-separated families, cycled so counts stay balanced (default: {','.join(FAMILIES)})",
    )
    g.add_argument("--from-proposals", type=Path, metavar="FILE.json",
                   help="generate exactly the assets proposed by 'assets2vec sparse --proposals' (ignores --n and --families)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=run_generate)

    s = asub.add_parser(
        "sheet",
        help="render a labelled contact sheet (PNG) of a library or a folder of meshes",
        description="Render one view of each asset and lay them out in a labelled grid.",
    )
    s.add_argument("assets", type=Path, help="a generated library or a folder of mesh files")
    s.add_argument("out", type=Path, help="PNG file to write")
    s.add_argument("--limit", type=int, default=48, help="at most this many assets (default: 48)")
    s.add_argument("--size", type=int, default=128, help="pixels per tile (default: 128)")
    s.add_argument("--columns", type=int, default=8, help="tiles per row (default: 8)")
    s.set_defaults(func=run_sheet)


def run_generate(args: argparse.Namespace) -> int:
    from render_core.assets.procedural.generate import generate_library, read_proposals

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    proposals = read_proposals(args.from_proposals) if args.from_proposals else None
    records = generate_library(args.out, args.n, args.seed, families, progress=not args.quiet, proposals=proposals)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.category] = counts.get(r.category, 0) + 1
    print(f"wrote {len(records)} assets to {args.out} ({', '.join(f'{k}: {v}' for k, v in counts.items())}); manifest: {args.out / 'manifest.jsonl'}")
    return 0


def run_sheet(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from render_core.artifacts import atomic_write_bytes
    from render_core.assets.library import open_library
    from render_core.assets.loaders import load_mesh
    from render_core.assets.mesh import normalize
    from render_core.contact_sheet import caption, contact_sheet
    from render_core.multiview import MultiviewRenderer, RenderConfig, thumbnail_view
    from render_core.rig import RigConfig

    lib = open_library(args.assets)
    rig = RigConfig(n_views=6, elevations=(20.0,), azimuth_offset=35.0, floor_views=0)
    renderer = MultiviewRenderer(RenderConfig(image_size=args.size, rig=rig))
    view = thumbnail_view(rig)
    images, captions = [], []
    for record in lib.records[: args.limit]:
        try:
            mesh, _ = normalize(load_mesh(lib.path_of(record)))
        except ValueError as exc:  # AssetLoadError included; normalize refuses zero-extent meshes
            print(f"skipped {record.id}: {exc}")
            continue
        images.append(renderer.render(mesh)["rgb"][view])
        captions.append(caption(record))
    sheet = contact_sheet(images, captions, columns=args.columns, cell=args.size)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(sheet)).save(buf, format="PNG")
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out} ({len(images)} assets)")
    return 0
