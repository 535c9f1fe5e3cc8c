"""`assets2vec render-latent RUN KIND ...`: pictures from codes (turntable, swap grid, interpolation, PCA)."""

from __future__ import annotations

import argparse
import difflib
import io
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device

KINDS = ("turntable", "swap", "interpolate", "pca")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "render-latent",
        help="render codes: turntable GIF/MP4, shape x texture swap grid, interpolation, PCA traversal",
        description=(
            "turntable ASSET [--texture-from ASSET]: a full turn (.gif or .mp4). "
            "swap ASSET ASSET ...: grid, row i = shape of asset i, column j = texture of asset j. "
            "interpolate A B: both code halves blended from A to B. "
            "pca shape|texture: rows walk the first principal components of that half. "
            "Assets are given by id or by row number in the run."
        ),
    )
    p.add_argument("run", type=Path, metavar="RUN", help="trained run folder")
    p.add_argument("kind", choices=KINDS, help="what to render")
    p.add_argument("items", nargs="*", metavar="ARG", help="assets (ids or rows), or 'shape'/'texture' for pca")
    p.add_argument("--out", type=Path, required=True, help="output file (.png; .gif or .mp4 for turntable)")
    p.add_argument("--texture-from", help="turntable: take the texture code from this asset")
    p.add_argument("--size", type=int, help="image side in pixels (default: the training size)")
    p.add_argument("--frames", type=int, default=36, help="turntable frames (default: 36)")
    p.add_argument("--steps", type=int, default=8, help="interpolation / PCA steps (default: 8)")
    p.add_argument("--components", type=int, default=3, help="PCA components shown (default: 3)")
    add_device_argument(p, "the network renders")
    p.set_defaults(func=run)


def resolve(item: str, ids: list[str]) -> int:
    if item in ids:
        return ids.index(item)
    if item.isdigit() and int(item) < len(ids):
        return int(item)
    close = difflib.get_close_matches(item, ids, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (the run has {len(ids)} assets, rows 0..{len(ids) - 1})"
    raise ValueError(f"asset {item!r} is not in this run{hint}")


def _save_png(path: Path, image) -> None:
    from PIL import Image

    from render_core.artifacts import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    from assets2vec import latent
    from assets2vec.run import Run

    device = resolve_device(args.device)
    run = Run.open(args.run)
    model, ids = run.model(device), run.asset_ids
    rig, size = run.rig()
    size = args.size or size
    if not 8 <= size <= 1024:
        raise ValueError(f"--size must be in [8, 1024], got {size}")
    suffix = args.out.suffix.lower()
    if args.kind == "turntable":
        if len(args.items) != 1:
            raise ValueError("turntable takes one asset")
        if suffix not in (".gif", ".mp4"):
            raise ValueError(f"--out {args.out}: a turntable is written as .gif or .mp4")
        i = resolve(args.items[0], ids)
        j = resolve(args.texture_from, ids) if args.texture_from else i
        frames = latent.turntable(model, model.codes.shape.weight[i].detach(), model.codes.texture.weight[j].detach(), rig, size, args.frames)
        latent.save_animation(args.out, frames)
    else:
        if suffix != ".png":
            raise ValueError(f"--out {args.out}: {args.kind} is written as .png")
        if args.kind == "swap":
            if len(args.items) < 2:
                raise ValueError("swap takes at least two assets")
            image = latent.swap_grid(model, [resolve(a, ids) for a in args.items], rig, size)
        elif args.kind == "interpolate":
            if len(args.items) != 2:
                raise ValueError("interpolate takes two assets")
            image = latent.interpolation(model, resolve(args.items[0], ids), resolve(args.items[1], ids), rig, size, args.steps)
        else:
            if len(args.items) != 1 or args.items[0] not in ("shape", "texture"):
                raise ValueError("pca takes 'shape' or 'texture'")
            image = latent.pca_traversal(model, args.items[0], rig, size, args.components, args.steps)
        _save_png(args.out, image)
    print(f"wrote {args.out}")
    return 0
