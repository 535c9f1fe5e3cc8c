"""`LatentNeRFModel`: the multi-asset auto-decoder NeRF, as a nerfstudio `Model`.

One shape code and one texture code per asset (`LatentCodes`), a field that takes
them per ray, and two ways of placing samples:

- training with known surfaces ("surface"): `SurfaceGuidedSampler`, plus losses
  only synthetic data allows (coverage, depth, free space);
- everything else (evaluation, rendering new codes, inversion, and the CodeNeRF
  reference's training): a uniform coarse pass, then, when `num_fine_samples` > 0,
  nerfstudio's PDF sampler around what the coarse pass found.

Codes are looked up from `ray_bundle.metadata["asset_index"]` (B, 1) unless the
bundle carries explicit "shape_code" (B, ds) and "texture_code" (B, dt) rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Type

import torch
from nerfstudio.cameras.rays import Frustums, RayBundle, RaySamples
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.model_components.ray_samplers import PDFSampler, UniformSampler
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, RGBRenderer
from nerfstudio.model_components.scene_colliders import AABBBoxCollider
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colors
from torch import Tensor
from torch.nn import Parameter

from assets2vec.data.rays import covered_pixels
from assets2vec.devices import autocast
from assets2vec.field_components.codes import LatentCodes, cross_correlation
from assets2vec.field_components.dependence import ShapeClusters, cluster_dependence
from assets2vec.fields.codenerf_field import CodeNeRFField, CodeNeRFFieldConfig
from assets2vec.fields.triplane_field import TriplaneFieldConfig, TriplaneLatentField
from assets2vec.model_components.occupancy import OccupancyGridSampler
from assets2vec.model_components.surface_sampler import SurfaceGuidedSampler


@dataclass
class LatentNeRFModelConfig(ModelConfig):
    _target: Type = field(default_factory=lambda: LatentNeRFModel)
    enable_collider: bool = False
    """rays are clipped to the object's box by the model's own AABB collider"""
    field_type: Literal["triplane", "codenerf"] = "triplane"
    """"triplane": ours (code-decoded triplanes + FiLM MLPs); "codenerf": CodeNeRF's field (Jang & Agapito, ICCV 2021)"""
    triplane: TriplaneFieldConfig = field(default_factory=TriplaneFieldConfig)
    """settings of our field"""
    codenerf: CodeNeRFFieldConfig = field(default_factory=CodeNeRFFieldConfig)
    """settings of the CodeNeRF field"""
    shape_dim: int = 32
    """shape code size (conditions density)"""
    texture_dim: int = 32
    """texture code size (colour branch only)"""
    code_init_std: float = 0.25
    """codes start as N(0, std^2): 0.25 gives 32-d codes CodeNeRF's initial norm (randn/sqrt(128) in 256-d);
    much smaller codes start too alike and are slow to separate"""
    code_reg: float = 1e-4
    """weight of the squared code norm per ray"""
    code_decorrelation: float = 1e-3
    """weight of the squared cross-correlation between shape and texture code dimensions over all
    assets: without it an auto-decoder's texture codes also learn the family (a classifier reads it
    from texture codes alone far above chance), which breaks texture-only search"""
    code_independence: float = 0.2
    """weight of the kernel dependence of the texture codes on the shape codes (absolute debiased CKA of
    Gaussian kernels of the texture codes at 3 widths and "same k-means cluster of shape codes" kernels; see
    `field_components.dependence`), over the whole table (a seeded draw of `independence_assets` rows
    above that). The linear decorrelation penalty leaves what an RBF classifier reads (the family,
    above chance, from texture codes on a long run). The shape codes are held fixed in it, only the
    texture codes move away"""
    independence_assets: int = 1024
    """rows the dependence is measured on per step (its cost is quadratic in them)"""
    independence_refresh: int = 250
    """steps between refits of the shape codes' k-means partitions (4, 8, 16 and 32 clusters)"""
    texture_rays: Literal["all", "covered"] = "all"
    """rays whose colour loss reaches the texture codes: all, or only pixels wholly on the asset. Empty
    and edge pixels are white wherever the density is right; a texture code trained on them learns to
    paint white the density a code gets wrong there, i.e. learns the shape (the network's colour weights
    still learn from every ray)"""
    scene_half_size: float = 0.55
    """half side of the box rays are clipped to; normalised objects fill [-0.5, 0.5]^3"""
    train_sampler: Literal["surface", "stratified"] = "surface"
    """training samples near the known surface, or stratified over the box (CodeNeRF)"""
    num_uniform_samples: int = 8
    """surface sampler: stratified samples per ray"""
    num_surface_samples: int = 8
    """surface sampler: samples in the band around the surface"""
    surface_std: float = 0.02
    """surface sampler: band spread in object units (a pixel is about 0.03 at 64x64)"""
    num_coarse_samples: int = 64
    """uniform samples per ray when the surface is unknown"""
    num_fine_samples: int = 48
    """PDF samples after the coarse pass (0: no hierarchical sampling)"""
    eval_sampler: Literal["grid", "coarse_fine"] = "grid"
    """test-time sampling: per-code occupancy grid with empty-space skipping, or coarse (+ fine) passes"""
    grid_resolution: int = 48
    """occupancy grid cells per side"""
    grid_samples: int = 128
    """uniform samples per ray before empty-space skipping"""
    grid_density_threshold: float = 0.5
    """density above which a grid cell counts as occupied"""
    rgb_loss_mult: float = 1.0
    """weight of the colour loss"""
    alpha_loss_mult: float = 0.5
    """weight of the coverage loss (accumulation vs. the render's alpha)"""
    depth_loss_mult: float = 0.05
    """weight of the L1 loss between expected and true surface distance on covered pixels"""
    free_space_loss_mult: float = 0.1
    """weight of the opacity of samples known to be in empty space"""
    mixed_precision: bool = True
    """run the field under bfloat16 autocast where the device computes bf16 natively (`devices.fast_bf16`:
    GPUs, CPUs with AVX512-BF16 or AMX); elsewhere it stays fp32, since emulated bf16 is slower"""


class LatentNeRFModel(Model):
    config: LatentNeRFModelConfig
    TABLE_LOSSES = ("decorrelation_loss", "independence_loss")

    def populate_modules(self) -> None:
        super().populate_modules()
        c = self.config
        self.codes = LatentCodes(self.num_train_data, c.shape_dim, c.texture_dim, c.code_init_std)
        # Only runs trained with the penalty carry the clusters (older checkpoints load unchanged).
        self.shape_clusters = ShapeClusters(c.shape_dim, refresh=c.independence_refresh) if c.code_independence > 0 else None
        # The step reaches the model through its training callback, so refits fall on the same steps
        # after a resume; without a trainer (tests, ns-train evaluation) loss calls are counted instead.
        self.train_step: int | None = None
        self._loss_calls = 0
        if c.field_type == "triplane":
            self.field = TriplaneLatentField(c.triplane, c.shape_dim, c.texture_dim, c.scene_half_size)
        elif c.field_type == "codenerf":
            self.field = CodeNeRFField(c.codenerf, c.shape_dim, c.texture_dim)
        else:
            raise ValueError(f"unknown field type {c.field_type!r}")
        h = c.scene_half_size
        self.collider = AABBBoxCollider(SceneBox(aabb=torch.tensor([[-h, -h, -h], [h, h, h]])))
        self.surface_sampler = SurfaceGuidedSampler(c.num_uniform_samples, c.num_surface_samples, c.surface_std)
        self.coarse_sampler = UniformSampler(num_samples=c.num_coarse_samples)
        self.fine_sampler = PDFSampler(num_samples=c.num_fine_samples, include_original=False)
        # Inversion keeps the uniform samples beside the fine ones: they carry the gradient that
        # grows density where the image has the object and the current code has none.
        self.inversion_fine_sampler = PDFSampler(include_original=True)
        self.grid_sampler = OccupancyGridSampler(c.grid_resolution, c.grid_samples, c.grid_density_threshold, h)
        self._grid_cache: dict[bytes, Tensor] = {}
        self.renderer_rgb = RGBRenderer(background_color=colors.WHITE)
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="expected")
        # Set up by the trainer (`Model.setup(..., generator=, batch_rows=)`): training randomness
        # comes from `generator` (explicit, checkpointed, resumable; torch's global RNG without one),
        # and a data-parallel worker holds rows `batch_rows` = (start, stop, total) of the global batch.
        self.generator: torch.Generator | None = self.kwargs.get("generator")
        self.batch_rows: tuple[int, int, int] | None = self.kwargs.get("batch_rows")

    def get_training_callbacks(self, training_callback_attributes=None) -> List[TrainingCallback]:
        """nerfstudio's hook for step-dependent behaviour: the step, before each iteration."""

        def set_step(step: int) -> None:
            self.train_step = step

        return [TrainingCallback(where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], func=set_step)]

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        return {"fields": list(self.field.parameters()), "codes": list(self.codes.parameters())}

    def _autocast(self):
        return autocast(self.device, enabled=self.config.mixed_precision)

    def _attach_codes(self, ray_bundle: RayBundle) -> None:
        md = ray_bundle.metadata
        if "shape_code" not in md or "texture_code" not in md:
            shape, texture = self.codes(md["asset_index"].view(-1))
            md.setdefault("shape_code", shape)
            md.setdefault("texture_code", texture)

    def train(self, mode: bool = True):
        if mode:
            self._grid_cache = {}  # weights are about to change
        return super().train(mode)

    def density_at(self, positions: Tensor, shape_code: Tensor) -> Tensor:
        """Density (N, 1) at points (N, 3) for per-point shape codes (N, ds)."""
        zeros = torch.zeros_like(positions[:, :1])
        frustums = Frustums(origins=positions, directions=torch.zeros_like(positions), starts=zeros, ends=zeros, pixel_area=zeros)
        return self._field(RaySamples(frustums=frustums, metadata={"shape_code": shape_code}), density_only=True)

    def colour_at(self, positions: Tensor, directions: Tensor, shape_code: Tensor, texture_code: Tensor) -> Tensor:
        """Colour (N, 3) at points (N, 3) seen along unit `directions` (N, 3), for per-point codes (N, ds), (N, dt)."""
        zeros = torch.zeros_like(positions[:, :1])
        frustums = Frustums(origins=positions, directions=directions, starts=zeros, ends=zeros, pixel_area=zeros)
        samples = RaySamples(frustums=frustums, metadata={"shape_code": shape_code, "texture_code": texture_code})
        return self._field(samples)[FieldHeadNames.RGB]

    def occupancy_grids(self, shape_codes: Tensor) -> Tensor:
        """(U, R, R, R) occupancy of U shape codes, cached while the weights are frozen."""
        out = []
        for code in shape_codes:
            key = code.detach().float().cpu().numpy().tobytes()
            if key not in self._grid_cache:
                if len(self._grid_cache) >= 256:
                    self._grid_cache.pop(next(iter(self._grid_cache)))
                self._grid_cache[key] = self.grid_sampler.grids(self.density_at, code[None])[0]
            out.append(self._grid_cache[key])
        return torch.stack(out)

    def _grid_pass(self, ray_bundle: RayBundle):
        """Field outputs on the grid sampler's samples, evaluated only where cells are occupied."""
        codes = ray_bundle.metadata["shape_code"]
        unique, inverse = torch.unique(codes.detach(), dim=0, return_inverse=True)
        ray_samples, mask = self.grid_sampler.sample(ray_bundle, self.occupancy_grids(unique), inverse)
        B, S = mask.shape
        density = torch.zeros(B, S, 1, device=mask.device)
        rgb = torch.zeros(B, S, 3, device=mask.device)
        if mask.any():
            md = {k: v.expand(B, S, v.shape[-1])[mask] for k, v in ray_samples.metadata.items()}
            packed = RaySamples(frustums=ray_samples.frustums[mask], metadata=md)  # (N,) occupied samples only
            fo = self._field(packed)
            density[mask] = fo[FieldHeadNames.DENSITY]
            rgb[mask] = fo[FieldHeadNames.RGB]
        return ray_samples, {FieldHeadNames.DENSITY: density, FieldHeadNames.RGB: rgb}

    def _field(self, ray_samples, density_only: bool = False):
        with self._autocast():
            if density_only:
                density, _ = self.field.get_density(ray_samples)
                return density.float()
            out = self.field(ray_samples)
        return {k: v.float() for k, v in out.items()}

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        self._attach_codes(ray_bundle)
        outputs: Dict[str, Tensor] = {}
        free, field_outputs = None, None
        texture = ray_bundle.metadata["texture_code"]
        if self.training and self.config.texture_rays == "covered":
            md = ray_bundle.metadata
            md["texture_code"] = torch.where(md["covered"], texture, texture.detach())
        if self.training and self.config.train_sampler == "surface":
            md = ray_bundle.metadata
            ray_samples, free = self.surface_sampler.generate_ray_samples(ray_bundle, md["surface_t"], md["empty"], self.generator,
                                                                          self.batch_rows)
        elif self.training:
            ray_samples = self.coarse_sampler(ray_bundle)
        elif self.config.eval_sampler == "grid":
            ray_samples, field_outputs = self._grid_pass(ray_bundle)
        else:
            ray_samples = self.coarse_sampler(ray_bundle)
            if self.config.num_fine_samples > 0:
                weights = ray_samples.get_weights(self._field(ray_samples, density_only=True))
                ray_samples = self.fine_sampler(ray_bundle, ray_samples, weights)
        if field_outputs is None:
            field_outputs = self._field(ray_samples)
        density = field_outputs[FieldHeadNames.DENSITY]  # (B, S, 1)
        weights = ray_samples.get_weights(density)
        outputs["rgb"] = self.renderer_rgb(rgb=field_outputs[FieldHeadNames.RGB], weights=weights)
        outputs["accumulation"] = self.renderer_accumulation(weights=weights)
        outputs["depth"] = self.renderer_depth(weights=weights, ray_samples=ray_samples)
        if free is not None:
            # Opacity a free-space sample would have over a fixed 0.01 step: scale-free in bin width.
            opacity = 1.0 - torch.exp(-0.01 * density[..., 0])
            outputs["free_space_sum"] = (opacity * free).sum()
            outputs["free_count"] = free.sum().float()
        if self.training:
            md = ray_bundle.metadata
            outputs["code_norm_sum"] = (md["shape_code"].square().sum(-1) + texture.square().sum(-1)).sum()
        return outputs

    def render_uniform(self, ray_bundle: RayBundle, num_samples: int, num_fine: int = 0) -> Dict[str, Tensor]:
        """Differentiable render with `num_samples` evenly spaced samples in the box, for inversion:
        no occupancy grid (the codes change every step) and no known surface. With `num_fine`,
        that many more samples are drawn where a gradient-free pass over the uniform ones found
        density: thin parts (a lamp's shade, a chair's legs) that fall between uniform samples
        are then rendered as the network learned them."""
        ray_bundle = self.collider(ray_bundle)
        self._attach_codes(ray_bundle)
        ray_samples = self.coarse_sampler.generate_ray_samples(ray_bundle, num_samples=num_samples)
        if num_fine > 0:
            with torch.no_grad():
                weights = ray_samples.get_weights(self._field(ray_samples, density_only=True))
            ray_samples = self.inversion_fine_sampler(ray_bundle, ray_samples, weights, num_samples=num_fine)
        field_outputs = self._field(ray_samples)
        weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
        return {
            "rgb": self.renderer_rgb(rgb=field_outputs[FieldHeadNames.RGB], weights=weights),
            "accumulation": self.renderer_accumulation(weights=weights),
        }

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        mse = torch.mean((outputs["rgb"].detach() - batch["rgb"]) ** 2)
        return {"psnr": -10.0 * torch.log10(mse.clamp(min=1e-10))}

    def local_counts(self, outputs, batch) -> Tensor:
        """(rays, covered rays, free samples) of this batch: what the batch-mean losses divide by.
        Data-parallel workers sum these across workers and pass them to `get_loss_dict`, so every
        loss is a sum over this worker's rays divided by the global count, and the workers'
        gradients add up to the single-process gradient."""
        covered = covered_pixels(batch).sum().float()
        free = outputs.get("free_count", torch.zeros((), device=covered.device))
        return torch.stack([torch.tensor(float(len(batch["rgb"])), device=covered.device), covered, free.float()])

    def get_loss_dict(self, outputs, batch, metrics_dict=None, counts: Tensor | None = None,
                      table_losses: bool = True) -> Dict[str, Tensor]:
        """Batch-mean losses, divided by `counts` (rays, covered rays, free samples: the global
        batch's, under data parallelism) or by this batch's own. The `TABLE_LOSSES` depend on the
        whole code table, not on the batch: a data-parallel trainer adds their gradient once,
        after reducing the others; `table_losses=False` leaves them out (and the table's cluster
        state untouched), for fitting codes that are not in the table (`embed`)."""
        c = self.config
        n, n_cov, n_free = self.local_counts(outputs, batch) if counts is None else counts
        loss = {"rgb_loss": c.rgb_loss_mult * ((outputs["rgb"] - batch["rgb"]) ** 2).sum() / (3 * n)}
        if "code_norm_sum" in outputs:
            loss["code_loss"] = c.code_reg * outputs["code_norm_sum"] / n
        if "code_norm_sum" in outputs and table_losses:
            if c.code_decorrelation > 0 and self.codes.num_assets > 2:
                loss["decorrelation_loss"] = c.code_decorrelation * cross_correlation(
                    self.codes.shape.weight, self.codes.texture.weight).square().sum()
            if c.code_independence > 0 and self.codes.num_assets >= 4:
                loss["independence_loss"] = c.code_independence * self.code_dependence()
        if c.train_sampler == "surface":
            alpha = batch["alpha"].view(-1, 1)
            loss["alpha_loss"] = c.alpha_loss_mult * ((outputs["accumulation"] - alpha) ** 2).sum() / n
            covered = covered_pixels(batch)
            if n_cov > 0:
                err = (outputs["depth"][:, 0] - batch["surface_t"]).abs()
                loss["depth_loss"] = c.depth_loss_mult * err[covered].sum() / n_cov
            if "free_space_sum" in outputs:
                loss["free_space_loss"] = c.free_space_loss_mult * outputs["free_space_sum"] / n_free.clamp(min=1)
        return loss

    def code_dependence(self) -> Tensor:
        """Kernel dependence of the texture codes on the shape codes' clusters, on the whole table
        or, above `independence_assets` rows, on rows drawn from the training generator (every
        data-parallel worker draws the same ones, so the term is identical on each)."""
        n, m = self.codes.num_assets, self.config.independence_assets
        shape, texture = self.codes.shape.weight, self.codes.texture.weight
        if n > m:
            rows = torch.randperm(n, generator=self.generator)[:m].to(shape.device)
            shape, texture = shape[rows], texture[rows]
        step = self.train_step if self.train_step is not None else self._loss_calls
        self._loss_calls += 1
        self.shape_clusters.refit_if_due(shape, step)
        return cluster_dependence(self.shape_clusters.labels(shape), texture)

    def get_image_metrics_and_images(self, outputs, batch):
        gt = batch["image"].to(outputs["rgb"].device)[..., :3].float()
        mse = torch.mean((outputs["rgb"] - gt) ** 2)
        return {"psnr": float(-10.0 * torch.log10(mse.clamp(min=1e-10)))}, {"img": torch.cat([gt, outputs["rgb"]], 1)}
