"""Training throughput with 1 vs N data-parallel processes on this machine (`fit --workers N`).

    .venv/bin/python benchmarks/fit_workers.py demo/dataset --workers 1 2 --steps 300

Trains the `fast` preset from scratch for --steps steps once per worker count (same seed, same
global batch of 4096 rays), and reports steps/s and rays/s from the run's own training time
(start-up excluded). Writes benchmarks/results/fit_workers.json; one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "fit_workers.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.workers:
            out = Path(tmp) / f"w{w}"
            r = subprocess.run([sys.executable, "-m", "assets2vec.cli.main", "fit", str(args.data), "--out", str(out),
                                "--steps", str(args.steps), "--quiet", "--workers", str(w), "--device", args.device],
                               capture_output=True, text=True, check=True)
            summary = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
            sec = summary["train_seconds"]
            rows.append({"workers": w, "steps": summary["steps"], "train_seconds": sec,
                         "steps_per_second": round(summary["steps"] / sec, 3),
                         "rays_per_second": round(summary["steps"] * 4096 / sec), "final_quick_psnr": summary["final_quick_psnr"]})
            print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        r["speedup"] = round(r["steps_per_second"] / rows[0]["steps_per_second"], 2)
    result = {"data": str(args.data), "preset": "fast", "device": args.device, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
