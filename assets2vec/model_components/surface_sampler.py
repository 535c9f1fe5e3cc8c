"""Training-time ray sampler that knows where the surface is.

Synthetic renders come with exact depth, so instead of spending 64-96 samples per ray
finding the surface (as a coarse pass must at test time), training places half the
samples in a narrow band around the true surface and the other half stratified over
the rest of the ray inside the object's box. Samples in front of the surface are known
to be empty space, which the free-space loss supervises directly.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.model_components.ray_samplers import Sampler
from torch import Tensor


class SurfaceGuidedSampler(Sampler):
    """Args:
    num_uniform: stratified samples over [near, far] on every ray.
    num_surface: samples around the surface on rays that hit it (uniform on rays that miss).
    surface_std: spread of the surface band, in object units (the object spans 1).
    """

    def __init__(self, num_uniform: int, num_surface: int, surface_std: float) -> None:
        super().__init__(num_samples=num_uniform + num_surface + 1)
        if num_uniform < 1 or num_surface < 0 or surface_std <= 0:
            raise ValueError(f"bad surface sampler settings: {num_uniform} uniform, {num_surface} surface, std {surface_std}")
        self.num_uniform = num_uniform
        self.num_surface = num_surface
        self.surface_std = surface_std

    def generate_ray_samples(
        self,
        ray_bundle: RayBundle,
        surface_t: Float[Tensor, "B 1"],
        empty: Bool[Tensor, "B 1"],
        generator: torch.Generator | None = None,
        rows: tuple[int, int, int] | None = None,
    ) -> tuple[RaySamples, Bool[Tensor, "B S"]]:
        """Samples (B, num_uniform + num_surface + 1) and the mask of those known to be in empty space.

        `surface_t` is the distance to the surface at the pixel centre (0: the centre misses),
        `empty` marks rays whose pixel has no coverage at all (a partly covered edge pixel is
        neither a hit nor empty, and gets no free-space supervision).
        `rows` = (start, stop, total): these rays are rows start..stop of a batch of `total` split
        across data-parallel workers; the noise is drawn for the whole batch and sliced, so a
        worker's samples equal what one process would have drawn for those rays.
        """
        assert ray_bundle.nears is not None and ray_bundle.fars is not None
        near, far = ray_bundle.nears, ray_bundle.fars  # (B, 1)
        B = near.shape[0]
        lo, hi, total = rows if rows is not None else (0, B, B)
        if hi - lo != B:
            raise ValueError(f"rows {lo}..{hi} do not match a batch of {B} rays")
        span = far - near
        noise_u = torch.rand(total, self.num_uniform, generator=generator)[lo:hi].to(near.device)
        noise_band = torch.randn(total, self.num_surface, generator=generator)[lo:hi].to(near.device)
        noise_spread = torch.rand(total, self.num_surface, generator=generator)[lo:hi].to(near.device)
        u = (torch.arange(self.num_uniform, dtype=near.dtype, device=near.device) + noise_u) / self.num_uniform
        t_uniform = near + span * u  # (B, nu)
        hit = surface_t > 0  # (B, 1)
        band = surface_t + self.surface_std * noise_band
        spread = near + span * noise_spread
        t_surface = torch.where(hit, band, spread)
        edges = torch.cat([near, t_uniform, torch.minimum(torch.maximum(t_surface, near), far), far], -1)
        edges, _ = torch.sort(edges, -1)  # (B, S + 1)
        samples = ray_bundle.get_ray_samples(bin_starts=edges[:, :-1, None], bin_ends=edges[:, 1:, None])
        # Empty for sure: the whole bin ends before the surface band starts, or the ray misses.
        free = ((edges[:, 1:] < surface_t - 2.0 * self.surface_std) & hit) | empty
        return samples, free
