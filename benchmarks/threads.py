"""`fit` beside a busy neighbour: training speed alone and next to one single-threaded CPU hog.

Users run `fit` beside the app, a render or a second job. For each setting, `assets2vec fit`
trains `--steps` steps on a small rendered dataset, once alone and once while another process
spins on one core; the figure is the fit's own `train_seconds` (start-up excluded). Settings:

- product: what `assets2vec fit` does by default (threads = usable cores, short OpenMP spin);
- long spin: the same threads with GNU OpenMP's default spin before sleeping (GOMP_SPINCOUNT=300000),
  which is how `fit` ran before;
- 1 thread: `--threads 1`.

    .venv/bin/python benchmarks/threads.py            # ~8 min on 2 cores

Writes benchmarks/results/threads.json; prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "threads.json"
CLI = [sys.executable, "-m", "assets2vec.cli.main"]

SETTINGS = {
    "product": ([], {}),
    "long_spin": ([], {"GOMP_SPINCOUNT": "300000"}),
    "one_thread": (["--threads", "1"], {}),
}


def fit_seconds(data: Path, out: Path, steps: int, flags: list[str], env: dict) -> float:
    cmd = [*CLI, *flags, "fit", str(data), "--out", str(out), "--steps", str(steps), "--quiet"]
    proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"fit failed: {proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["train_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--assets", type=int, default=12)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    res: dict = {"steps": args.steps, "assets": args.assets, "cores": os.cpu_count(), "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([*CLI, "assets", "generate", str(tmp / "lib"), "--n", str(args.assets), "--seed", "0", "--quiet"], check=True)
        subprocess.run([*CLI, "render", str(tmp / "lib"), str(tmp / "data"), "--quiet"], check=True, capture_output=True)
        for name, (flags, env) in SETTINGS.items():
            row = {}
            for beside in ("alone", "busy"):
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if beside == "busy" else None
                try:
                    time.sleep(0.5 if hog else 0)
                    row[f"{beside}_s"] = round(fit_seconds(tmp / "data", tmp / f"run_{name}_{beside}", args.steps, flags, env), 1)
                finally:
                    if hog:
                        hog.kill()
                        hog.wait()
            row["speed_beside_busy_vs_alone"] = round(row["alone_s"] / row["busy_s"], 2)
            res["settings"][name] = row
            print(f"{name}: {row}", file=sys.stderr)
    base = res["settings"]["long_spin"]["alone_s"]
    for row in res["settings"].values():
        row["speed_alone_vs_long_spin_alone"] = round(base / row["alone_s"], 2)
    p = res["settings"]["product"]
    res["targets"] = {"busy_at_least_0.45x_alone": p["speed_beside_busy_vs_alone"] >= 0.45,
                      "no_loss_alone": p["alone_s"] <= 1.05 * base}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
