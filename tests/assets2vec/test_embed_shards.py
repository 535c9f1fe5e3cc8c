"""Embedding on several workers: shards resume, merge into the run exactly as one process would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from assets2vec.checkpoint import CheckpointError, load_checkpoint
from assets2vec.configs import preset
from assets2vec.embed import EMBED_CONFIG, embed
from assets2vec.embed_shards import embed_shard, merge_embeddings
from assets2vec.train import fit
from render_core.artifacts import ArtifactError
from render_core.shards import Shard

CFG = replace(EMBED_CONFIG, steps=5)
quiet = lambda m: None  # noqa: E731


@pytest.fixture(scope="module")
def base_run(small_dataset, tmp_path_factory):
    cfg = preset("tiny")
    cfg.steps, cfg.max_assets = 40, 5
    run = tmp_path_factory.mktemp("embshard") / "run"
    fit(small_dataset, run, cfg, progress=False, log=quiet)
    return run


def test_shards_merge_to_the_single_process_result(base_run, small_dataset, tmp_path):
    one, split = tmp_path / "one", tmp_path / "split"
    shutil.copytree(base_run, one)
    shutil.copytree(base_run, split)
    embed(one, small_dataset, config=CFG, progress=False, log=quiet)
    parts = [tmp_path / f"shard{i}" for i in range(2)]
    reports = [embed_shard(split, small_dataset, Shard(i, 2), parts[i], config=CFG, progress=False, log=quiet) for i in range(2)]
    assert sum(r["embedded_now"] for r in reports) == 3
    assert embed_shard(split, small_dataset, Shard(0, 2), parts[0], config=CFG, progress=False, log=quiet)["embedded_now"] == 0
    assert load_checkpoint(split)["asset_ids"] == load_checkpoint(base_run)["asset_ids"]  # shards never write the run
    with pytest.raises(ArtifactError, match=r"shard\(s\) 1/2 missing"):
        merge_embeddings(split, parts[:1], log=quiet)
    assert merge_embeddings(split, parts, log=quiet)["added"] == 3
    a, b = load_checkpoint(one), load_checkpoint(split)
    assert a["asset_ids"] == b["asset_ids"] and len(a["asset_ids"]) == 8
    for k in ("codes.shape.weight", "codes.texture.weight"):
        np.testing.assert_allclose(a["model"][k].numpy(), b["model"][k].numpy(), atol=1e-5)
    assert b["embedded"] == a["embedded"]
    assert merge_embeddings(split, parts, log=quiet)["added"] == 0  # rerun: nothing twice
    with pytest.raises(ArtifactError, match="another shard"):
        embed_shard(split, small_dataset, Shard(1, 2), parts[0], config=CFG, progress=False, log=quiet)


def test_merge_refuses_codes_from_another_network(base_run, small_dataset, tmp_path):
    part = tmp_path / "shard"
    embed_shard(base_run, small_dataset, Shard(0, 1), part, config=CFG, progress=False, log=quiet)
    cfg = preset("tiny")
    cfg.steps, cfg.max_assets, cfg.seed = 40, 5, 1
    other = tmp_path / "other"
    fit(small_dataset, other, cfg, progress=False, log=quiet)
    with pytest.raises(CheckpointError, match="another network"):
        merge_embeddings(other, [part], log=quiet)


def test_embed_with_local_workers_via_cli(base_run, small_dataset, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    r = subprocess.run([sys.executable, "-m", "assets2vec.cli.main", "embed", str(run), str(small_dataset), "--steps", "5",
                        "--workers", "2", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["assets_in_run"] == 8
    assert len(load_checkpoint(run)["asset_ids"]) == 8
    r = subprocess.run([sys.executable, "-m", "assets2vec.cli.main", "embed", str(run), str(small_dataset), "--shard", "0/2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--shard and --out go together" in r.stderr


def test_an_embedding_does_not_depend_on_when_the_run_was_saved(base_run, small_dataset, tmp_path):
    """Saved after every asset (as after a kill and a rerun) or once at the end, the codes are the
    same: embedding starts from the mean of the trained codes, not of those embedded so far."""
    once, each = tmp_path / "once", tmp_path / "each"
    shutil.copytree(base_run, once)
    shutil.copytree(base_run, each)
    embed(once, small_dataset, config=CFG, progress=False, log=quiet)
    embed(each, small_dataset, config=CFG, save_every=1, progress=False, log=quiet)
    a, b = load_checkpoint(once), load_checkpoint(each)
    assert a["asset_ids"] == b["asset_ids"] and len(a["asset_ids"]) == 8
    for k in ("codes.shape.weight", "codes.texture.weight"):
        assert np.array_equal(a["model"][k].numpy(), b["model"][k].numpy()), k
