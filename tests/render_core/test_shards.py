"""Sharded rendering: every asset in exactly one shard, shards merge into the single-run dataset."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from render_core.artifacts import ArtifactError
from render_core.assets.library import open_library
from render_core.multiview import RenderConfig, render_library
from render_core.rig import RigConfig
from render_core.shards import Shard, merge_datasets, shard_of

CFG = RenderConfig(image_size=32, rig=RigConfig(n_views=6, elevations=(10.0, 40.0), floor_views=0))


def test_shards_partition_ids_stably():
    ids = [f"asset-{i}" for i in range(500)]
    owners = [[s for s in range(4) if Shard(s, 4).owns(a)] for a in ids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(o == [s] for o in owners) for s in range(4)]
    assert min(sizes) > 90  # a hash, not a skewed split
    assert [shard_of(a, 4) for a in ids] == [shard_of(a, 4) for a in reversed(ids)][::-1]  # order-free
    for bad in ("3", "4/4", "-1/2", "a/b", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            Shard.parse(bad)


def test_two_shards_merge_into_the_single_run_dataset(small_library, small_dataset, tmp_path):
    lib = open_library(small_library)
    parts = [tmp_path / f"s{i}" for i in range(2)]
    for i, d in enumerate(parts):
        render_library(lib, d, CFG, progress=False, shard=Shard(i, 2))
    ids = [sorted(p.stem for p in (d / "assets").glob("*.npz")) for d in parts]
    assert ids[0] and ids[1] and not set(ids[0]) & set(ids[1])
    with pytest.raises(ArtifactError, match=r"shard\(s\) 1/2 missing"):
        merge_datasets(parts[:1], tmp_path / "merged")
    report = merge_datasets(parts, tmp_path / "merged")
    assert report["added"] == len(lib.records) and report["total_in_dataset"] == len(lib.records)
    for f in (small_dataset / "assets").glob("*.npz"):  # byte-identical to one process rendering everything
        assert (tmp_path / "merged" / "assets" / f.name).read_bytes() == f.read_bytes()
    assert merge_datasets(parts, tmp_path / "merged")["added"] == 0  # rerun: nothing twice
    from render_core.dataset import RenderedDataset

    assert sorted(RenderedDataset(tmp_path / "merged").asset_ids) == sorted(r.id for r in lib.records)
    with pytest.raises(ArtifactError, match="holds shard 0/2"):
        render_library(lib, parts[0], CFG, progress=False, shard=Shard(1, 2))
    other = tmp_path / "other"
    render_library(lib, other, RenderConfig(image_size=40, rig=CFG.rig), progress=False, shard=Shard(1, 2))
    with pytest.raises(ArtifactError, match="render differs"):
        merge_datasets([parts[0], other], tmp_path / "bad")


def test_render_with_local_workers_via_cli(small_library, tmp_path):
    out = tmp_path / "ds"
    r = subprocess.run([sys.executable, "-m", "assets2vec.cli.main", "render", str(small_library), str(out), "--size", "32",
                        "--views", "6", "--elevations=-10,40", "--workers", "2", "--quiet", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["total_in_dataset"] == 8 and report["merged_shards"] == 2
    assert sorted(p.name for p in (tmp_path / "ds.shards").iterdir()) == ["0-of-2", "1-of-2"]
    header = json.loads((out / "artifact.json").read_text())
    assert header["kind"] == "dataset" and len(header["merged_from"]) == 2
