"""The nerfstudio entry point: `ns-train` lists the method, and its pipeline trains and renders."""

from __future__ import annotations

import pytest
import torch

from assets2vec.configs import preset


def test_method_is_registered_with_nerfstudio():
    from nerfstudio.plugins.registry import discover_methods

    methods, descriptions = discover_methods()
    assert "assets2vec" in methods
    assert "shape code" in descriptions["assets2vec"]


@pytest.mark.parametrize("independence", [0.0, 0.2])  # 0.2: the product's default, whose loss spans the code table
def test_pipeline_trains_a_step_and_renders_a_camera(small_dataset, independence):
    from dataclasses import replace

    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    from assets2vec.ns_plugin import MultiAssetDataManagerConfig

    model_config = replace(preset("tiny").model, code_independence=independence)
    config = VanillaPipelineConfig(
        datamanager=MultiAssetDataManagerConfig(data=small_dataset, rays_per_batch=256, assets_per_batch=2),
        model=model_config,
    )
    pipeline = config.setup(device="cpu", test_mode="val")
    assert pipeline.model.codes.num_assets == 8
    pipeline.train()
    _, loss_dict, metrics = pipeline.get_train_loss_dict(step=0)
    loss = sum(loss_dict.values())
    loss.backward()
    assert torch.isfinite(loss) and "psnr" in metrics
    pipeline.eval()
    camera, batch = pipeline.datamanager.next_eval_image(step=1)
    with torch.no_grad():
        out = pipeline.model.get_outputs_for_camera(camera)
    assert out["rgb"].shape == batch["image"].shape


def test_each_ns_train_gpu_draws_its_own_rays(small_dataset):
    """Under `ns-train --machine.num-devices N` every rank builds its own data manager: the same
    rank draws the same rays (seeded), different ranks different ones (not N copies of one batch)."""
    from assets2vec.ns_plugin import MultiAssetDataManager, MultiAssetDataManagerConfig

    config = MultiAssetDataManagerConfig(data=small_dataset, rays_per_batch=256, assets_per_batch=2)

    def first_batch(rank):
        manager = MultiAssetDataManager(config, device="cpu", world_size=2, local_rank=rank)
        return manager.next_train(0)[1]["rgb"]

    assert torch.equal(first_batch(0), first_batch(0))
    assert not torch.equal(first_batch(0), first_batch(1))
