"""Photos of a LIBRARY's assets from our own renderer, in the photo benchmark's folder format: for
choosing the photo search's settings (the match rule's thresholds) on photos the benchmark never uses.

Same camera ranges as benchmarks/blender_photos.py (azimuth 0-360, elevation 0-50 deg, fov 25-60 deg,
the object's longer side 25-80 % of the frame) but our PyTorch3D rasterizer, our light, the object
centred, laid on a random flat wall-and-floor backdrop through its alpha (no shadow, no clutter).

    .venv/bin/python benchmarks/raster_photos.py LIBRARY OUT [--per-asset 2] [--size 128] [--limit N]
    .venv/bin/python benchmarks/raster_photos.py --heldout RUN OUT   # each asset's first held-out view of the run

OUT: photos/<id>__<j>.png, masks/<id>__<j>.png, photos.jsonl, artifact.json, contact_sheet.png.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("library", type=Path, nargs="?", help="a LIBRARY (not with --heldout)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--heldout", type=Path, metavar="RUN", help="write each asset's first held-out view of RUN's dataset "
                    "(the rig-view case: a pose the run knows, a view it never trained on), on white as the dataset holds it")
    ap.add_argument("--per-asset", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="first N assets only")
    args = ap.parse_args()

    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from render_core.artifacts import atomic_write_bytes, atomic_write_json, atomic_write_text
    from render_core.assets.library import open_library
    from render_core.assets.loaders import load_mesh
    from render_core.assets.mesh import normalize
    from render_core.contact_sheet import contact_sheet
    from render_core.multiview import MultiviewRenderer, RenderConfig
    from render_core.rig import RigConfig

    def png(a) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    (args.out / "photos").mkdir(parents=True, exist_ok=True)
    (args.out / "masks").mkdir(exist_ok=True)
    if args.heldout:
        return heldout(args.heldout, args.out, args.limit, png)
    lib = open_library(args.library)
    records = lib.records[: args.limit]
    atomic_write_json(args.out / "artifact.json", {"kind": "photos", "producer": "benchmarks/raster_photos.py", "seed": args.seed,
                                                  "library": str(args.library.resolve()), "renderer": "assets2vec rasterizer"})
    lines, thumbs, captions, t0 = [], [], [], time.time()
    for record in tqdm(records, desc="raster photos", unit="asset"):
        mesh, _ = normalize(load_mesh(lib.path_of(record)))
        for j in range(args.per_asset):
            h = int.from_bytes(hashlib.sha256(record.id.encode()).digest()[:8], "little")
            rng = np.random.default_rng(np.random.SeedSequence([args.seed, h, j]))
            fov, fill = float(rng.uniform(25, 60)), float(rng.uniform(0.25, 0.8))
            distance = max(0.95, 1.0 / (2 * fill * math.tan(math.radians(fov) / 2)))
            rig = RigConfig(n_views=1, elevations=(float(rng.uniform(0, 50)),), fov_deg=fov, distance=distance,
                            azimuth_offset=float(rng.uniform(0, 360)), floor_views=0)
            views = MultiviewRenderer(RenderConfig(image_size=args.size, rig=rig)).render(mesh)
            wall, floor = rng.integers(30, 230, 3), rng.integers(30, 230, 3)
            horizon = int(rng.uniform(0.4, 0.75) * args.size)
            bg = np.empty((args.size, args.size, 3), np.float32)
            bg[:horizon], bg[horizon:] = wall, floor
            alpha = views["alpha"][0][..., None] / 255.0
            photo = (views["rgb"][0] * alpha + bg * (1 - alpha) + 0.5).astype(np.uint8)
            name = f"{record.id}__{j}"
            atomic_write_bytes(args.out / "masks" / f"{name}.png", png((views["alpha"][0] >= 128).astype(np.uint8) * 255))
            atomic_write_bytes(args.out / "photos" / f"{name}.png", png(photo))
            lines.append(json.dumps({"asset_id": record.id, "j": j, "setting": "raster-backdrop", "fov_deg": fov, "fill": fill,
                                     "elevation_deg": rig.elevations[0], "azimuth_deg": rig.azimuth_offset, "distance": distance,
                                     "c2w": views["c2w"][0].tolist(), "intrinsics": views["intrinsics"].tolist()}))
            if len(thumbs) < 48:
                thumbs.append(photo)
                captions.append(name)
    atomic_write_text(args.out / "photos.jsonl", "\n".join(lines) + "\n")
    atomic_write_bytes(args.out / "contact_sheet.png", png(contact_sheet(thumbs, captions)))
    print(json.dumps({"photos": len(lines), "seconds": round(time.time() - t0, 1)}))


def heldout(run: Path, out: Path, limit: int | None, png) -> None:
    from assets2vec.data.rays import holdout_views
    from assets2vec.train import load_run
    from render_core.artifacts import atomic_write_bytes, atomic_write_json, atomic_write_text
    from render_core.dataset import RenderedDataset

    _, config, state = load_run(run)
    ds = RenderedDataset(state["dataset"])
    lines = []
    for aid in state["asset_ids"][:limit]:
        v = ds.load(aid)
        h = int(holdout_views(aid, v.n_views, config.n_holdout, config.seed)[0])
        atomic_write_bytes(out / "photos" / f"{aid}__0.png", png(v.rgb[h]))
        atomic_write_bytes(out / "masks" / f"{aid}__0.png", png(v.mask[h].astype("uint8") * 255))
        lines.append(json.dumps({"asset_id": aid, "j": 0, "setting": "rig-heldout", "view": h, "c2w": v.c2w[h].tolist(),
                                 "intrinsics": v.intrinsics.tolist()}))
    atomic_write_json(out / "artifact.json", {"kind": "photos", "producer": "benchmarks/raster_photos.py --heldout",
                                             "run": str(run.resolve()), "renderer": "assets2vec rasterizer"})
    atomic_write_text(out / "photos.jsonl", "\n".join(lines) + "\n")
    print(json.dumps({"photos": len(lines)}))


if __name__ == "__main__":
    main()
