#!/usr/bin/env bash
# The wheels a lent GPU machine lacks (../shared/GPU.md): Python 3.12, manylinux, no dependencies, into
# .whl/ (git-ignored), made small enough to travel with the tree (64 MiB per call): easypytorch3d's
# extension without its DWARF debug info (GPU code intact), viser without its web client.
# Then on the device:  bash benchmarks/gpu_check.sh   (installs them and runs benchmarks/gpu_check.py)
set -euo pipefail
out="${1:-.whl}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$out"
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d "$out" \
  easypytorch3d==0.7.9.post1 nerfstudio==1.1.5 nerfacc==0.5.2 viser==0.2.7 msgspec==0.23.0 websockets==16.1.1 \
  trimesh==5.2.0 faiss-cpu==1.15.1 scikit-image==0.26.0 lazy-loader==0.6 pycocotools==2.0.11 iopath==0.1.9 portalocker==4.4.2
"$py" -m pip install --quiet wheel
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
slim() {  # slim WHEEL COMMAND...: unpack, run COMMAND in the unpacked tree, repack (RECORD regenerated)
  local whl="$1"; shift
  [ -f "$whl" ] || { echo "missing $whl" >&2; exit 1; }
  rm -rf "$tmp"/* && "$py" -m wheel unpack --dest "$tmp" "$whl" >/dev/null
  (cd "$tmp"/*/ && "$@")
  rm "$whl" && "$py" -m wheel pack --dest-dir "$out" "$tmp"/*/ >/dev/null
}
strip_debug() { find . -name '_C*.so' -exec strip --strip-debug {} +; }
drop_client() { rm -rf viser/client viser/_icons; }
slim "$(ls "$out"/easypytorch3d-*.whl)" strip_debug
slim "$(ls "$out"/viser-*.whl)" drop_client
du -ch "$out"/*.whl | tail -1
