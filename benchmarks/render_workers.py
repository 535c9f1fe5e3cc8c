"""Rendering with 1 vs N local worker processes (`assets2vec render --workers N`), same library.

    .venv/bin/python benchmarks/render_workers.py demo/library --workers 1 2

Renders the library from scratch once per worker count (64², 18 views), checks the merged
datasets are byte-identical, and reports assets/s. Writes benchmarks/results/render_workers.json;
one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "render_workers.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("library", type=Path)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    rows, first = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.workers:
            out = Path(tmp) / f"w{w}"
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "assets2vec.cli.main", "render", str(args.library), str(out),
                            "--size", str(args.size), "--workers", str(w), "--quiet"], check=True, stdout=subprocess.DEVNULL)
            sec = time.time() - t0
            files = sorted((out / "assets").glob("*.npz"))
            if first is None:
                first = {f.name: f.read_bytes() for f in files}
                identical = True
            else:
                identical = len(files) == len(first) and all(first.get(f.name) == f.read_bytes() for f in files)
            rows.append({"workers": w, "assets": len(files), "seconds": round(sec, 1),
                         "assets_per_second": round(len(files) / sec, 3), "identical_to_first": identical})
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(out, ignore_errors=True)
    base = rows[0]["assets_per_second"]
    for r in rows:
        r["speedup"] = round(r["assets_per_second"] / base, 2)
    result = {"library": str(args.library), "image_size": args.size, "views": 18, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
