"""Scene generator throughput and memory over a long run.

    .venv/bin/python benchmarks/scenes_speed.py demo/catalog --n 1000 --size 256 [--colour display]

Generates N scenes from the catalog into a fresh folder (default config at --size), samples the
process's resident memory every 50 scenes, and reports scenes/s and the memory curve (flat means
nothing accumulates per scene). `--colour` picks the colour pipeline (default: the config's). Writes
--results (default benchmarks/results/scenes_speed.json); one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec import Catalog  # noqa: E402
from render_core.artifacts import atomic_write_json  # noqa: E402
from render_core.colour import PIPELINES  # noqa: E402
from render_core.scenes import config_from_dict  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "scenes_speed.json"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "runs" / "scenes_speed")
    ap.add_argument("--colour", choices=PIPELINES, default=None)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    import torch

    samples = []
    t0 = time.time()

    def on_scene(i, n):
        if i % 50 == 0 or i == n:
            samples.append({"scenes": i, "rss_mb": round(rss_mb(), 1), "seconds": round(time.time() - t0, 1)})

    config = {"image_size": args.size} | ({"colour": args.colour} if args.colour else {})
    with Catalog.open(args.catalog) as cat:
        report = cat.generate_scenes(args.out, args.n, 0, config_from_dict(config), progress=False, on_scene=on_scene)
    # the first sample after the mesh cache has filled (the last one in a run of under 50 scenes)
    first = next((s for s in samples if s["scenes"] >= max(50, args.n // 10)), samples[-1])
    result = {"catalog": str(args.catalog), "scenes": args.n, "image_size": args.size, "colour": args.colour or "default",
              "threads": torch.get_num_threads(),
              "scenes_per_second": report["scenes_per_second"], "seconds": report["seconds"],
              "rss_mb_after_first_10pct": first["rss_mb"], "rss_mb_at_end": samples[-1]["rss_mb"],
              "rss_growth_mb": round(samples[-1]["rss_mb"] - first["rss_mb"], 1), "memory_curve": samples,
              "disk_mb": round(sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2**20, 1)}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results, result)
    print(json.dumps({k: v for k, v in result.items() if k != "memory_curve"}))


if __name__ == "__main__":
    main()
