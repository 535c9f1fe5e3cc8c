#!/usr/bin/env bash
# The GPU check on a lent GPU machine, from the repository root, with .whl/ carried (benchmarks/gpu_wheels.sh
# made it here). Installs the wheels outside the tree, then runs benchmarks/gpu_check.py and writes its JSON
# to $OUT (what comes back from the device) or benchmarks/results/. Options go to gpu_check.py, e.g.
#   bash benchmarks/gpu_check.sh --stages env,render,fit,eval,catalog,photo      (about 4 minutes)
#   bash benchmarks/gpu_check.sh --stages scale                                   (about 6 minutes)
set -euo pipefail
site="${TMPDIR:-/tmp}/assets2vec-site"
if [ ! -d "$site/pytorch3d" ]; then
  python3 -m pip install --quiet --no-index --no-deps --no-compile --target "$site" .whl/*.whl
fi
export PYTHONPATH="$site:$PWD"
out="${OUT:-benchmarks/results}"
python3 benchmarks/gpu_check.py --out "$out/gpu_check.json" --work "${TMPDIR:-/tmp}/gpu_check" "$@"
