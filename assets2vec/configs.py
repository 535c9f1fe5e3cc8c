"""Training configuration and its presets.

`FitConfig` holds everything `assets2vec fit` needs besides the data; presets are
named starting points that options then override. The dataclass defaults stay what they were when
runs first stored their configuration, so an older run's file, which may lack a newer field, loads as
it was trained; the presets carry today's recipe:

- "fast": our model and training recipe, tuned for a 2-core CPU at 64x64: 12,000 steps, a quarter
  of each batch from the empty pixels at the asset's edge, and the kernel independence penalty
  between texture and shape codes (0.2). With `render`'s default floor ring this is the recipe
  BENCHMARKS.md measures the catalog targets on.
- "codenerf": the configuration of CodeNeRF (Jang & Agapito, ICCV 2021: 256-d codes, 96
  stratified samples, AdamW 1e-4 / 1e-3), for side-by-side benchmarks.
- "tiny": a very small model for tests and smoke runs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from assets2vec.fields.codenerf_field import CodeNeRFFieldConfig
from assets2vec.fields.triplane_field import TriplaneFieldConfig
from assets2vec.models.latent_nerf import LatentNeRFModelConfig


@dataclass
class FitConfig:
    preset: str = "fast"
    """preset this configuration started from"""
    model: LatentNeRFModelConfig = field(default_factory=LatentNeRFModelConfig)
    """model settings (field, code sizes, sampling, losses)"""
    steps: int = 12000
    """optimisation steps; the learning-rate schedule spans them"""
    max_minutes: float | None = None
    """wall-clock budget for the whole fit; the schedule is shortened to fit it"""
    seed: int = 0
    """seed of every random choice (0 is a seed like any other)"""
    batch_size: int = 4096
    """rays per step, mixed across assets"""
    assets_per_batch: int | None = 8
    """distinct assets per batch (batch_size / assets_per_batch rays each); None: rays mixed over all assets"""
    foreground_fraction: float | None = 0.5
    """share of each batch drawn from rays that hit an asset (None: uniform over all rays)"""
    edge_fraction: float | None = 0.25
    """share of each batch drawn from the empty rays within 2 pixels of the asset, which keep thin
    gaps (under a sofa, between legs) empty; None: no such share (needs assets_per_batch)"""
    ray_table: str = "auto"
    """training rays: "memory" (one table, 46 bytes per ray), "stream" (read from the dataset asset by
    asset when a batch needs them, the last `ray_cache_assets` kept; needs assets_per_batch) or
    "auto" (stream when the table would exceed `ray_table_gb`); both train identically"""
    ray_table_gb: float = 4.0
    """with ray_table "auto": the largest in-memory ray table, in GB"""
    ray_cache_assets: int = 64
    """with streamed rays: assets kept decoded (about 3 MB each at 64² and 16 views)"""
    optimizer: str = "adam"
    """adam or adamw"""
    lr_field: float = 1e-2
    """peak learning rate of the network"""
    lr_codes: float = 1e-2
    """peak learning rate of the code tables"""
    lr_final_factor: float = 0.03
    """learning rates decay exponentially to this fraction at the last step"""
    warmup_steps: int = 50
    """linear learning-rate warm-up"""
    n_holdout: int = 2
    """views per asset held out for evaluation"""
    views: list[int] | None = None
    """train on these view indices only (an image subset); None: all but the held-out ones"""
    max_assets: int | None = None
    """train on the first N assets of the dataset only"""
    eval_every: int = 500
    """steps between quick held-out evaluations (PSNR on a few assets, for the curve)"""
    eval_assets: int = 8
    """assets in each quick evaluation (one held-out view each)"""
    checkpoint_every: int = 1000
    """steps between periodic checkpoints"""
    checkpoint_minutes: float = 2.0
    """also save the latest checkpoint after this many minutes of training since the last one, so a
    hard kill (power, OOM killer, kill -9) loses at most that much; 0: by steps only"""

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        for k in [k for k in d["model"] if k.startswith("_") or k in ("collider_params", "loss_coefficients", "prompt")]:
            del d["model"][k]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FitConfig":
        """Read a stored config as it was trained: a setting the file predates takes the value it had then."""
        d: dict[str, Any] = {**LEGACY_FIT_DEFAULTS, **json.loads(text)}
        model = {**LEGACY_MODEL_DEFAULTS, **d.pop("model")}
        model["triplane"] = TriplaneFieldConfig(**model["triplane"])
        model["codenerf"] = CodeNeRFFieldConfig(**model["codenerf"])
        return cls(model=LatentNeRFModelConfig(**model), **d)


# Settings added after runs were already being written, with the value those runs trained with.
LEGACY_FIT_DEFAULTS: dict[str, Any] = {"edge_fraction": None}
LEGACY_MODEL_DEFAULTS: dict[str, Any] = {"code_independence": 0.0}


def preset(name: str) -> FitConfig:
    if name == "fast":
        return FitConfig(preset=name)  # the dataclass defaults are the product's
    if name == "codenerf":
        return FitConfig(
            preset=name,
            model=LatentNeRFModelConfig(
                field_type="codenerf", shape_dim=256, texture_dim=256, code_init_std=1.0 / 128**0.5,
                train_sampler="stratified", num_coarse_samples=96, num_fine_samples=0, eval_sampler="coarse_fine",
                code_independence=0.0,
            ),
            steps=6000, edge_fraction=None, batch_size=2048, assets_per_batch=None, foreground_fraction=None, optimizer="adamw",
            lr_field=1e-4, lr_codes=1e-3, lr_final_factor=1.0, warmup_steps=0,
        )
    if name == "tiny":
        return FitConfig(
            preset=name,
            model=LatentNeRFModelConfig(
                shape_dim=8, texture_dim=8,
                triplane=TriplaneFieldConfig(num_basis=4, channels=4, resolution=16, xyz_frequencies=2, num_layers=1, hidden_dim=16, geo_feat_dim=8, color_layers=1, color_hidden_dim=16),
                num_uniform_samples=4, num_surface_samples=4, num_coarse_samples=16, num_fine_samples=8, grid_resolution=16, grid_samples=32,
                code_independence=0.0,
            ),
            steps=200, edge_fraction=None, batch_size=512, assets_per_batch=4, eval_every=100, eval_assets=2, checkpoint_every=100, warmup_steps=10,
        )
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


PRESETS = ("fast", "codenerf", "tiny")

GPU_BATCH = 32768
"""rays per step of `fast` on a GPU. At the CPU's 4,096 a GPU step is bound by the host (Python, launches,
synchronisation) and the device idles; on the H200 this size kept it busy and trained the demo to 30 dB
held-out in 90 s with the CPU recipe's learning rates (../shared/GPU.md)."""


def for_device(config: FitConfig, device, batch_given: bool = False) -> FitConfig:
    """`config` as it should train on `device` (a torch.device): unchanged on the CPU; on a GPU the `fast`
    preset's batch grows to `GPU_BATCH` unless the user gave one, and the assets per batch grow with it, so
    every asset in a batch still gets the CPU recipe's rays per step: a code's gradient is then as noisy as
    the recipe was tuned for, and each step moves 8x more codes (per-asset learning keeps pace with the
    asset count). The learning rates stay: Adam's steps do not scale with the batch, and these rates
    trained well at this batch on the H200 (with 8 assets per batch; `benchmarks/gpu_check.py` measures this preset)."""
    if getattr(device, "type", str(device)) != "cuda" or config.preset != "fast" or batch_given:
        return config
    rays_per_asset = config.batch_size // config.assets_per_batch
    return dataclasses.replace(config, batch_size=GPU_BATCH, assets_per_batch=GPU_BATCH // rays_per_asset)
