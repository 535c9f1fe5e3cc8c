"""Embedding new assets with the training loss, network frozen: it recovers what training learned,
it is reproducible from its seed, and it leaves the shared model exactly as it found it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from assets2vec.data.rays import holdout_views
from assets2vec.embed import EMBED_CONFIG, EmbedConfig, embed_asset
from assets2vec.evaluate import psnr
from assets2vec.nerf_render import render_views
from assets2vec.configs import preset
from assets2vec.run import Run, network_digest
from assets2vec.train import fit
from render_core.dataset import RenderedDataset


@pytest.fixture(scope="module")
def trained(small_dataset, tmp_path_factory):
    cfg = preset("tiny")
    cfg.steps = 300
    cfg.model.code_independence = 0.2  # as `fast` trains: the table's cluster state must survive an embedding
    run = tmp_path_factory.mktemp("embed") / "run"
    fit(small_dataset, run, cfg, progress=False, log=lambda m: None)
    opened = Run.open(run)
    return opened, opened.model(), RenderedDataset(small_dataset)


def heldout_psnr(model, config, dataset, asset_id, shape, texture) -> float:
    v = dataset.load(asset_id)
    hv = holdout_views(asset_id, v.n_views, config.n_holdout, config.seed)
    out = render_views(model, v.c2w[hv], v.intrinsics, dataset.image_size, shape, texture)
    return float(np.mean([psnr(out["rgb"][k], v.rgb[k_].astype(np.float32) / 255) for k, k_ in enumerate(hv)]))


def test_embedding_a_trained_asset_recovers_the_quality_of_its_trained_code(trained):
    opened, model, dataset = trained
    config = opened.config
    mean_s, mean_t = model.codes.mean()
    for row in (0, 3, 5):
        asset = opened.asset_ids[row]
        own = heldout_psnr(model, config, dataset, asset, model.codes.shape.weight[row].detach(), model.codes.texture.weight[row].detach())
        start = heldout_psnr(model, config, dataset, asset, mean_s, mean_t)
        got = embed_asset(model, config, dataset, asset, replace(EMBED_CONFIG, steps=150))
        again = heldout_psnr(model, config, dataset, asset, got.shape_code, got.texture_code)
        # From the mean code, on views it never saw, to within a fraction of a dB of what training reached.
        assert again > start + 1.0, (asset, start, again, own)
        assert again > own - 0.75, (asset, start, again, own)
        assert np.isfinite(got.score) and got.seconds > 0


def test_embedding_is_reproducible_from_its_seed_and_leaves_the_model_untouched(trained):
    opened, model, dataset = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    generator, flags = model.generator, [p.requires_grad for p in model.parameters()]
    quick = replace(EMBED_CONFIG, steps=10)
    a = embed_asset(model, opened.config, dataset, opened.asset_ids[1], quick)
    b = embed_asset(model, opened.config, dataset, opened.asset_ids[1], quick)
    c = embed_asset(model, opened.config, dataset, opened.asset_ids[1], replace(quick, seed=1))
    assert torch.equal(a.shape_code, b.shape_code) and torch.equal(a.texture_code, b.texture_code)
    assert not torch.equal(a.shape_code, c.shape_code)  # seed 0 is a seed like any other
    assert not model.training and model.generator is generator
    assert [p.requires_grad for p in model.parameters()] == flags
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert network_digest(after) == opened.digest  # what `catalog build` and shard merging check


@pytest.mark.parametrize("bad", [dict(steps=0), dict(rays=0), dict(lr=0.0), dict(lr=float("nan"))])
def test_an_impossible_embedding_setting_is_refused(bad):
    with pytest.raises(ValueError, match="positive steps, rays and learning rate"):
        EmbedConfig(**bad)
