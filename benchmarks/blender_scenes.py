"""Scenes through Blender: throughput and memory over many scenes, how far its labels are from the
rasterizer's, and a preview grid of the two renderers side by side.

    .venv/bin/pip install -e '.[blender]'
    .venv/bin/python benchmarks/blender_scenes.py demo/catalog /tmp/blender_scenes --n 200

Writes benchmarks/results/blender_scenes.json and docs/scenes_blender_vs_raster.png. The folder is an
ordinary SCENES folder (`scenes generate --renderer blender`), so a run cut short resumes; the timing
covers the scenes made in this invocation.
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
    from render_core.scenes.folder import image_path, read_record

    memory, stamps = [], []

    def on_scene(done: int, n: int) -> None:
        memory.append(rss_mb())
        stamps.append(time.perf_counter())

    with Catalog.open(args.catalog, device="cpu") as cat:
        t0 = time.perf_counter()
        report = cat.generate_scenes(args.out, args.n, args.seed, renderer="blender", on_scene=on_scene, progress=True)
        seconds = time.perf_counter() - t0
        raster_dir = args.out.with_name(args.out.name + "_raster")
        cat.generate_scenes(raster_dir, args.preview, args.seed, progress=False)  # same seeds, the rasterizer
    checks = [read_record(args.out, i)["label_check"] for i in range(args.n)]
    ious = [c["mask_iou_min"] for c in checks if c["mask_iou_min"] is not None]
    per_scene = np.diff([t0] + stamps) if stamps else np.zeros(0)
    result = {
        "benchmark": "blender_scenes", "scenes": args.n, "made_now": report["made"], "seconds": round(seconds, 1),
        "scenes_per_second": report["scenes_per_second"], "seconds_per_scene_p50": round(float(np.median(per_scene)), 2) if len(per_scene) else None,
        "seconds_per_scene_max": round(float(per_scene.max()), 2) if len(per_scene) else None,
        "seconds_per_scene_each": [round(float(x), 2) for x in per_scene],
        "rss_mb_each": [round(m, 1) for m in memory],
        "rss_mb": {"after_first": round(memory[0], 1), "after_last": round(memory[-1], 1), "max": round(max(memory), 1),
                   "after_10_percent": round(memory[len(memory) // 10], 1)} if memory else None,
        "fell_while_settling": report.get("fell_while_settling"), "failed_scenes": report["failed_scenes"],
        "label_check": {"scenes": len(checks), "objects": sum(c["objects"] for c in checks),
                        "box_max_diff_px": max(c["box_max_diff_px"] for c in checks),
                        "disagree_off_border_px": sum(c["disagree_off_border_px"] for c in checks),
                        "mask_iou_min": min(ious) if ious else None, "mask_iou_p5": round(float(np.percentile(ious, 5)), 4) if ious else None},
        "config": "default (render_core/scenes/default_scenes.yaml): 256², 32 samples, OpenImageDenoise",
    }
    atomic_write_json(args.results, result)
    cells, labels = [], []
    for i in range(min(args.preview, args.n)):
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
