"""Single-view inversion with an unknown camera: is the nearest training code the true asset?

    .venv/bin/python benchmarks/inversion.py --run benchmarks/runs/fast

For each asset, its first held-out view (never trained on) is inverted: the camera is
searched over the dataset's rig and codes are fitted with the network frozen, and the nearest
training code (joint shape + texture space) is compared with the asset. By default the search
starts from the run's inversion bank (every training code rendered from every rig pose on an 8x8
grid), built once before the first image and timed separately; `--no-bank` measures the bank-less
path (gradient search over all poses from the mean code, then exemplars). Writes
benchmarks/results/inversion.json (inversion_nobank.json with --no-bank) and prints it last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, default=ROOT / "benchmarks" / "runs" / "fast")
    ap.add_argument("--n", type=int, default=None, help="first N assets only")
    ap.add_argument("--no-bank", action="store_true", help="without the inversion bank")
    args = ap.parse_args()

    import numpy as np
    import torch

    from assets2vec.data.rays import holdout_views
    from assets2vec.code_bank import CodeBank
    from assets2vec.invert import candidate_poses, invert, nearest_codes
    from assets2vec.train import load_run
    from render_core.dataset import RenderedDataset

    model, config, state = load_run(args.run)
    ds = RenderedDataset(state["dataset"])
    ids = state["asset_ids"][: args.n]
    bank, bank_seconds = None, None
    if not args.no_bank:
        v0 = ds.load(ids[0])
        t = time.time()
        bank = CodeBank.build(model, candidate_poses(ds.config.rig), v0.intrinsics, v0.rgb.shape[1])
        bank_seconds = time.time() - t
    top1, top5, pose_ok, times, scores, top1_plain = [], [], [], [], [], []
    for row, asset_id in enumerate(ids):
        v = ds.load(asset_id)
        k = int(holdout_views(asset_id, v.n_views, config.n_holdout, config.seed)[0])
        t = time.time()
        r = invert(model, [v.rgb[k]], v.intrinsics, rig=ds.config.rig, bank=bank)
        times.append(time.time() - t)
        _, rows = nearest_codes(model, r.shape_code, r.texture_code, 5)
        _, rows_plain = nearest_codes(model, r.shape_code, r.texture_code, 1, whiten=False)
        top1_plain.append(int(rows_plain[0]) == row)
        top1.append(int(rows[0]) == row)
        top5.append(row in set(int(x) for x in rows))
        pose_ok.append(r.camera_index == k)
        scores.append(r.score)
        print(f"{row:3d} {asset_id:24s} view {k:2d} -> pose {r.camera_index:2d}  nearest {ids[int(rows[0])] if int(rows[0]) < len(ids) else rows[0]}  "
              f"{'OK ' if top1[-1] else 'MISS'} {times[-1]:.2f} s", flush=True)
    out = {
        "benchmark": "inversion", "run": str(args.run), "images": len(ids), "threads": torch.get_num_threads(),
        "top1_accuracy": float(np.mean(top1)), "top5_accuracy": float(np.mean(top5)), "top1_accuracy_unwhitened": float(np.mean(top1_plain)), "pose_exact": float(np.mean(pose_ok)),
        "seconds_per_image_mean": float(np.mean(times)), "seconds_per_image_max": float(np.max(times)),
        "fit_psnr_mean": float(np.mean(scores)),
        "bank": bank is not None, "bank_codes": None if bank is None else bank.n_codes,
        "bank_poses": None if bank is None else len(bank.poses), "bank_grid": None if bank is None else bank.grid,
        "bank_build_seconds": bank_seconds,
        "top1_by_family": {f: float(np.mean([ok for a, ok in zip(ids, top1) if a.split("-")[0] == f]))
                           for f in sorted({a.split("-")[0] for a in ids})},
    }
    (ROOT / "benchmarks" / "results" / ("inversion_nobank.json" if args.no_bank else "inversion.json")).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
