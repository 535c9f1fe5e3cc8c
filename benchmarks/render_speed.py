"""Fast CPU rasterizer vs PyTorch3D's stock MeshRasterizer, side by side in one run.

Same meshes (~20k faces), same 18-view rig, 128x128, faces_per_pixel=1. Prints a
human table, then one JSON line with `speedup` and `pixel_agreement` (last line).

    .venv/bin/python benchmarks/render_speed.py [--size 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import trimesh
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere

from render_core.assets.mesh import MeshData, normalize
from render_core.assets.procedural.generate import make_asset
from render_core.raster import FastMeshRasterizer
from render_core.rig import RigConfig, make_cameras


def bench_meshes() -> dict[str, Meshes]:
    """A ~20k-face procedural chair (thin legs, many small faces) and a 20,480-face lumpy sphere."""
    verts, faces, *_ = make_asset("chair", np.random.default_rng(3))
    while len(faces) * 4 <= 20_000:
        verts, faces = trimesh.remesh.subdivide(verts, faces)
    # Subdividing k more faces adds 3k: stop at ~20k faces, the size the target is stated for.
    extra = max(0, (20_000 - len(faces)) // 3)
    verts, faces = trimesh.remesh.subdivide(verts, faces, face_index=np.arange(extra))
    chair, _ = normalize(MeshData(verts=verts.astype(np.float32), faces=faces.astype(np.int64)))
    sphere = ico_sphere(5)
    g = torch.Generator().manual_seed(0)
    v = sphere.verts_packed() * (0.8 + 0.2 * torch.rand(sphere.verts_packed().shape[0], 1, generator=g)) * 0.5
    return {
        "chair_subdivided": Meshes([torch.as_tensor(chair.verts)], [torch.as_tensor(chair.faces)]),
        "lumpy_sphere": Meshes([v], [sphere.faces_packed()]),
    }


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: allocator and thread-pool start-up are not part of steady state
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--views", type=int, default=18)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of the fast path (stock: 1)")
    args = ap.parse_args()

    cameras, _, _, _ = make_cameras(RigConfig(n_views=args.views, floor_views=0))
    settings = RasterizationSettings(image_size=args.size, faces_per_pixel=1, blur_radius=0.0, bin_size=0)
    fast_r = FastMeshRasterizer(cameras=cameras, raster_settings=settings)
    stock_r = MeshRasterizer(cameras=cameras, raster_settings=settings)
    rows = []
    for name, mesh in bench_meshes().items():
        batch = mesh.extend(args.views)
        batch.verts_packed(), batch.faces_packed()  # pack once; both rasterizers share it
        t_fast, f = timed(lambda: fast_r(batch), args.repeats)
        t_stock, s = timed(lambda: stock_r(batch), 1)
        agree = (f.pix_to_face == s.pix_to_face).float().mean().item()
        both = (f.pix_to_face == s.pix_to_face) & (s.pix_to_face >= 0)
        zerr = (f.zbuf - s.zbuf)[both].abs().max().item()
        rows.append(
            dict(mesh=name, faces=int(mesh.num_faces_per_mesh()[0]), fast_views_per_s=args.views / t_fast, stock_views_per_s=args.views / t_stock,
                 speedup=t_stock / t_fast, pixel_agreement=agree, max_zbuf_abs_err=zerr, covered_fraction=(s.pix_to_face >= 0).float().mean().item())
        )
    print(f"{'mesh':18s} {'faces':>7s} {'fast v/s':>9s} {'stock v/s':>9s} {'speedup':>8s} {'agree':>8s} {'max|dz|':>9s}")
    for r in rows:
        print(f"{r['mesh']:18s} {r['faces']:7d} {r['fast_views_per_s']:9.1f} {r['stock_views_per_s']:9.2f} {r['speedup']:8.1f} {r['pixel_agreement']:8.5f} {r['max_zbuf_abs_err']:9.2e}")
    summary = {
        "benchmark": "render_speed",
        "image_size": args.size,
        "views": args.views,
        "threads": torch.get_num_threads(),
        "speedup": min(r["speedup"] for r in rows),
        "pixel_agreement": min(r["pixel_agreement"] for r in rows),
        "max_zbuf_abs_err": max(r["max_zbuf_abs_err"] for r in rows),
        "per_mesh": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
