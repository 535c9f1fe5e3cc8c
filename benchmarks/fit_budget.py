"""Train one preset for a fixed wall-clock budget on the demo dataset, then evaluate it.

    .venv/bin/python benchmarks/fit_budget.py --preset fast --minutes 30
    .venv/bin/python benchmarks/fit_budget.py --preset codenerf --minutes 30

Writes benchmarks/results/fit_<preset>.json (eval + the held-out PSNR-vs-time curve
from the run's history) and prints it as the last line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--data", type=Path, default=ROOT / "demo" / "dataset")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "runs")
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--eval-assets", type=int, default=None, help="final evaluation on the first N assets only")
    args = ap.parse_args()

    import torch

    from assets2vec.configs import preset
    from assets2vec.evaluate import evaluate
    from assets2vec.train import fit

    cfg = preset(args.preset)
    cfg.max_minutes = args.minutes
    cfg.steps = 10**6  # the time budget decides
    if args.eval_every:
        cfg.eval_every = args.eval_every
    run = args.out / args.preset
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.time()
    summary = fit(args.data, run, cfg, progress=False, log=lambda m: print(m, flush=True))
    fit_wall = time.time() - t0
    result = evaluate(run, max_assets=args.eval_assets, progress=False)
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    out = {
        "benchmark": "fit_budget", "preset": args.preset, "budget_minutes": args.minutes,
        "fit_wall_seconds": round(fit_wall, 1), "steps": summary["steps"], "threads": torch.get_num_threads(),
        "heldout_psnr": result["psnr"], "heldout_ssim": result["ssim"], "mask_iou": result["mask_iou"],
        "swap": result.get("swap"), "assets": result["assets"], "eval_seconds": result["seconds"],
        "curve": history,
    }
    path = ROOT / "benchmarks" / "results" / f"fit_{args.preset}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
