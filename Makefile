# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-search bench-filters bench-photos bench-reliability install browser clean-demo

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/assets2vec demo --out demo

# The app's end-to-end test drives Debian's chromium; install it when missing and allowed to.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	  else echo "note: chromium/chromedriver missing and not root: install them, or set ASSETS2VEC_SKIP_BROWSER=1"; fi; \
	fi

# The Blender extra (bpy, ~520 MB) is installed for the tests only: one small test renders scenes with it.
test: $(STAMP) browser
	$(BIN)/python -m pip install --quiet -e '.[blender]'
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python benchmarks/render_speed.py

# 1M-asset search and tagging scale (about 10 min on 2 cores); see BENCHMARKS.md
bench-search: $(STAMP)
	$(BIN)/python benchmarks/search_scale.py

# Filtered search at 1M: every strategy side by side, worst of 5 runs, 4 concurrent clients (~20 min)
bench-filters: $(STAMP)
	$(BIN)/python benchmarks/filtered_search.py

# Search by photo on photos from a second renderer (Blender, the optional [blender] extra, ~520 MB):
# the demo catalog's assets and 40 assets it does not hold, three settings each; see BENCHMARKS.md.
bench-photos: $(STAMP)
	test -d demo/catalog || $(MAKE) demo
	$(BIN)/python -m pip install --quiet -e '.[blender]'
	$(BIN)/assets2vec assets generate demo/photos_other_lib --n 40 --seed 1 --quiet
	test -f demo/run/photo_encoder.pt || $(BIN)/assets2vec photo-encoder demo/run --only encoder
	test -f demo/run/photo_segmenter.pt || $(BIN)/assets2vec photo-encoder demo/run --only segmenter
	# Seed 1: the test photos, never used to choose anything (seed 0 photos are the development set).
	$(BIN)/python benchmarks/blender_photos.py demo/library demo/photos_in_s1 --seed 1 --size 160 --samples 24 --threads 1 --limit 30
	$(BIN)/python benchmarks/blender_photos.py demo/photos_other_lib demo/photos_out_s1 --seed 1 --size 160 --samples 24 --threads 1 --limit 30
	$(BIN)/python benchmarks/photo_search.py demo/catalog demo/photos_in_s1 demo/photos_out_s1
	# Not-in-catalog photos of meshes made by others (a duck, a mug, Google's random objects), not by our generator.
	$(BIN)/python -m pip install --quiet -e '.[foreign-meshes]'
	$(BIN)/python benchmarks/foreign_meshes.py demo/foreign_lib --n 30
	$(BIN)/python benchmarks/blender_photos.py demo/foreign_lib demo/photos_foreign_s1 --seed 1 --size 160 --samples 24 --threads 1 --limit 30
	$(BIN)/python benchmarks/photo_search.py demo/catalog demo/photos_foreign_s1 --out benchmarks/results/photo_search_foreign.json

# Reliability: SIGKILL anywhere, a full disk and a read-only folder for seven commands (~1 h; the tmpfs
# and read-only mounts need root, else a file-size limit and chmod); fuzzed inputs (2 min); the API and
# the app's data layer under load while a build and a tag write (~15 min). See BENCHMARKS.md.
bench-reliability: $(STAMP)
	$(BIN)/python benchmarks/faults.py
	$(BIN)/python benchmarks/fuzz.py --seed 2
	$(BIN)/python benchmarks/load.py

clean-demo:
	rm -rf demo
