"""nerfstudio plugin: `ns-train assets2vec --data DATASET` trains our model with nerfstudio's trainer.

nerfstudio's own data managers are single-scene, so this module supplies the
multi-asset one: rays batched across assets, each carrying its asset index, built on
the same ray table and batcher as `assets2vec fit`. `assets2vec fit` remains the
fast path (bf16, time budgets, exact resume); this entry point lets nerfstudio users
train, log and view the same model with their tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.datamanagers.base_datamanager import DataManager, DataManagerConfig
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification
from torch.nn import Parameter

from assets2vec.data.rays import AssetBatcher, build_ray_table, holdout_views, to_ray_bundle
from assets2vec.models.latent_nerf import LatentNeRFModelConfig
from render_core.dataset import RenderedDataset


@dataclass
class MultiAssetDataManagerConfig(DataManagerConfig):
    _target: Type = field(default_factory=lambda: MultiAssetDataManager)
    data: Optional[Path] = None
    """rendered dataset folder ('assets2vec render' output)"""
    rays_per_batch: int = 4096
    """training rays per step"""
    assets_per_batch: int = 8
    """distinct assets per training batch"""
    foreground_fraction: float = 0.5
    """share of rays that hit the asset"""
    edge_fraction: Optional[float] = None
    """share of rays from the empty pixels within 2 px of the asset (keeps thin gaps empty); None: none"""
    n_holdout: int = 2
    """views per asset held out for evaluation"""
    seed: int = 0
    """seed of the held-out choice and the batches"""


class _AssetSet:
    """What nerfstudio's pipeline reads from a train dataset: a scene box, a length, metadata."""

    def __init__(self, n_assets: int, half: float = 0.55):
        self.scene_box = SceneBox(aabb=torch.tensor([[-half] * 3, [half] * 3]))
        self.metadata: dict = {}
        self._n = n_assets

    def __len__(self) -> int:
        return self._n


class MultiAssetDataManager(DataManager):
    config: MultiAssetDataManagerConfig

    def __init__(self, config: MultiAssetDataManagerConfig, device: str | torch.device = "cpu",
                 test_mode: Literal["test", "val", "inference"] = "val", world_size: int = 1, local_rank: int = 0, **kwargs):
        if config.data is None:
            raise ValueError("MultiAssetDataManager needs --pipeline.datamanager.data DATASET")
        self.config, self.device, self.test_mode = config, device, test_mode
        self.dataset = RenderedDataset(config.data)
        self.asset_ids = self.dataset.asset_ids
        self.train_dataset = _AssetSet(len(self.asset_ids))
        self.eval_dataset = None
        super().__init__()
        self.train_table = build_ray_table(self.dataset, self.asset_ids, "train", config.n_holdout, config.seed)
        self.eval_table = build_ray_table(self.dataset, self.asset_ids, "heldout", config.n_holdout, config.seed)
        # Each of ns-train's GPUs (--machine.num-devices) must draw its own rays, or they all train on the same ones.
        gen = torch.Generator().manual_seed(config.seed + local_rank)
        per_asset = max(1, config.rays_per_batch // config.assets_per_batch)
        self.train_batcher = AssetBatcher(self.train_table, config.assets_per_batch, per_asset, gen, config.foreground_fraction,
                                          config.edge_fraction)
        self.eval_batcher = AssetBatcher(self.eval_table, config.assets_per_batch, per_asset, torch.Generator().manual_seed(config.seed + 1), config.foreground_fraction)

    def _next(self, batcher: AssetBatcher) -> Tuple[RayBundle, Dict]:
        batch = batcher.table.select(batcher.next_indices())
        return to_ray_bundle(batch, self.device), {k: v.to(self.device) for k, v in batch.items()}

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        self.train_count += 1
        return self._next(self.train_batcher)

    def next_eval(self, step: int) -> Tuple[RayBundle, Dict]:
        self.eval_count += 1
        return self._next(self.eval_batcher)

    def next_eval_image(self, step: int) -> Tuple[Cameras, Dict]:
        """One held-out view of an asset; the camera's metadata carries the asset index to its rays."""
        a = step % len(self.asset_ids)
        v = self.dataset.load(self.asset_ids[a])
        k = int(holdout_views(self.asset_ids[a], v.n_views, self.config.n_holdout, self.config.seed)[0])
        K = v.intrinsics
        camera = Cameras(camera_to_worlds=torch.as_tensor(v.c2w[k : k + 1, :3, :]), fx=float(K[0, 0]), fy=float(K[1, 1]),
                         cx=float(K[0, 2]), cy=float(K[1, 2]), width=v.rgb.shape[2], height=v.rgb.shape[1],
                         camera_type=CameraType.PERSPECTIVE, metadata={"asset_index": torch.tensor([[a]])})
        return camera.to(self.device), {"image": torch.as_tensor(v.rgb[k]).float() / 255.0}

    def get_train_rays_per_batch(self) -> int:
        return self.config.rays_per_batch

    def get_eval_rays_per_batch(self) -> int:
        return self.config.rays_per_batch

    def get_datapath(self) -> Path:
        assert self.config.data is not None
        return Path(self.config.data)

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        return {}


def _optimizers(max_steps: int) -> dict:
    return {
        name: {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": ExponentialDecaySchedulerConfig(lr_final=3e-4, max_steps=max_steps)}
        for name in ("fields", "codes")
    }


assets2vec_method = MethodSpecification(
    config=TrainerConfig(
        method_name="assets2vec",
        steps_per_eval_batch=500,
        steps_per_eval_image=2000,
        steps_per_save=2000,
        max_num_iterations=6000,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(datamanager=MultiAssetDataManagerConfig(), model=LatentNeRFModelConfig()),
        optimizers=_optimizers(6000),
        viewer=ViewerConfig(num_rays_per_chunk=4096),
        vis="tensorboard",
    ),
    description="assets2vec: one shape code and one texture code per asset (multi-asset auto-decoder NeRF)",
)
