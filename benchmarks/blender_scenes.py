"""Scenes through Blender: throughput and memory over many scenes, how far its labels are from the
rasterizer's, and a preview grid of the two renderers side by side.

    .venv/bin/pip install -e '.[blender]'
    .venv/bin/python benchmarks/blender_scenes.py demo/catalog /tmp/blender_scenes --n 200

Writes benchmarks/results/blender_scenes.json and docs/scenes_blender_vs_raster.png. The folder is an
ordinary SCENES folder (`scenes generate --renderer blender`), so a run cut short resumes; the timing
covers the scenes made in this invocation, and per-scene times start at the first finished scene
(what comes before it, pool building, importing bpy and that scene, is `startup_and_first_scene_seconds`).
Label statistics cover every scene in the folder; scenes that failed are listed, not fatal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("catalog", type=Path)
    ap.add_argument("out", type=Path, help="SCENES folder for the Blender scenes (resumed if it exists)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preview", type=int, default=6, help="scenes in the side-by-side grid")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "blender_scenes.json")
    ap.add_argument("--grid", type=Path, default=ROOT / "docs" / "scenes_blender_vs_raster.png")
    args = ap.parse_args()

    from assets2vec import Catalog
    from render_core.artifacts import atomic_write_bytes, atomic_write_json
    from render_core.contact_sheet import contact_sheet
    from render_core.scenes.folder import done_indices, image_path, read_record

    memory, stamps = [], []

    def on_scene(done: int, n: int) -> None:
        memory.append(rss_mb())
        stamps.append(time.perf_counter())

    with Catalog.open(args.catalog, device="cpu") as cat:
        t0 = time.perf_counter()
        report = cat.generate_scenes(args.out, args.n, args.seed, renderer="blender", on_scene=on_scene, progress=True)
        seconds = time.perf_counter() - t0
    # Only the scenes that exist: one failed scene must not throw away hours of results.
    done = [i for i in done_indices(args.out) if i < args.n]
    records = [read_record(args.out, i) for i in done]
    checks = [r["label_check"] for r in records]
    ious = [c["mask_iou_min"] for c in checks if c["mask_iou_min"] is not None]
    # The first interval holds the start-up (pool, bpy import) besides a scene: kept out of the per-scene figures.
    per_scene = np.diff(stamps) if len(stamps) > 1 else np.zeros(0)
    result = {
        "benchmark": "blender_scenes", "scenes": len(done), "scenes_asked": args.n,
        "missing_scenes": sorted(set(range(args.n)) - set(done)), "made_now": report["made"], "seconds": round(seconds, 1),
        "scenes_per_second": report["scenes_per_second"],
        "startup_and_first_scene_seconds": round(stamps[0] - t0, 2) if stamps else None,
        "seconds_per_scene_p50": round(float(np.median(per_scene)), 2) if len(per_scene) else None,
        "seconds_per_scene_max": round(float(per_scene.max()), 2) if len(per_scene) else None,
        "seconds_per_scene_each": [round(float(x), 2) for x in per_scene],
        "rss_mb_each": [round(m, 1) for m in memory],
        "rss_mb": {"after_first": round(memory[0], 1), "after_last": round(memory[-1], 1), "max": round(max(memory), 1),
                   "after_10_percent": round(memory[len(memory) // 10], 1)} if memory else None,
        "fell_while_settling": report.get("fell_while_settling"), "failed_scenes": report["failed_scenes"],
        "label_check": {"scenes": len(checks), "objects": sum(c["objects"] for c in checks),
                        "box_max_diff_px": max((c["box_max_diff_px"] for c in checks), default=None),
                        "disagree_off_border_px": sum(c["disagree_off_border_px"] for c in checks),
                        "mask_iou_min": min(ious) if ious else None, "mask_iou_p5": round(float(np.percentile(ious, 5)), 4) if ious else None},
        # What the records say was used, not what the config asked for (the denoiser depends on the build).
        "config": {"file": "default (render_core/scenes/default_scenes.yaml)",
                   "image_size": sorted({r["width"] for r in records}),
                   "samples": sorted({r["blender"]["samples"] for r in records}),
                   "denoiser": sorted({r["blender"]["denoiser"] for r in records}),
                   "renderer": sorted({r["blender"]["renderer"] for r in records})},
    }
    atomic_write_json(args.results, result)  # before the preview, which a stale raster folder could refuse
    raster_dir = args.out.with_name(args.out.name + "_raster")
    with Catalog.open(args.catalog, device="cpu") as cat:
        cat.generate_scenes(raster_dir, args.preview, args.seed, progress=False)  # same seeds, the rasterizer
    cells, labels = [], []
    shown = [i for i in done if image_path(raster_dir, i).is_file()][: args.preview]
    for i in shown:
        for folder, name in ((raster_dir, "rasterizer"), (args.out, "Blender (Cycles)")):
            cells.append(np.asarray(Image.open(image_path(folder, i)).convert("RGB")))
            labels.append(f"scene {i}: {name}")
    import io

    buf = io.BytesIO()
    Image.fromarray(contact_sheet(cells, labels, columns=4, cell=256)).save(buf, format="PNG")
    atomic_write_bytes(args.grid, buf.getvalue())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
