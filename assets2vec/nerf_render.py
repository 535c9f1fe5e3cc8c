"""Rendering images through the NeRF: any shape/texture code pair from any camera with a trained model
(the `render` command, by contrast, rasterizes meshes with render_core)."""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RayBundle
from torch import Tensor

from assets2vec.data.rays import camera_rays
from assets2vec.models.latent_nerf import LatentNeRFModel


@torch.no_grad()
def render_rays(
    model: LatentNeRFModel,
    origins: Float[Tensor, "N 3"],
    directions: Float[Tensor, "N 3"],
    shape_code: Float[Tensor, "N ds"] | Float[Tensor, "ds"],
    texture_code: Float[Tensor, "N dt"] | Float[Tensor, "dt"],
    chunk: int = 8192,
) -> dict[str, Tensor]:
    """rgb (N, 3), accumulation (N, 1) and depth (N, 1) of N rays, in chunks of `chunk` rays."""
    was_training = model.training
    model.eval()
    n = origins.shape[0]
    shape_code = shape_code.expand(n, -1) if shape_code.dim() == 1 else shape_code
    texture_code = texture_code.expand(n, -1) if texture_code.dim() == 1 else texture_code
    dev = model.device
    parts: dict[str, list[Tensor]] = {}
    try:
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            bundle = RayBundle(
                origins=origins[s:e].to(dev), directions=directions[s:e].to(dev),
                pixel_area=torch.ones(e - s, 1, device=dev),
                metadata={"shape_code": shape_code[s:e].to(dev), "texture_code": texture_code[s:e].to(dev)},
            )
            out = model(bundle)
            for k in ("rgb", "accumulation", "depth"):
                parts.setdefault(k, []).append(out[k].float().cpu())
    finally:
        model.train(was_training)
    return {k: torch.cat(v) for k, v in parts.items()}


def render_views(
    model: LatentNeRFModel,
    c2w: np.ndarray,
    intrinsics: np.ndarray,
    image_size: int,
    shape_code: Tensor,
    texture_code: Tensor,
    chunk: int = 8192,
) -> dict[str, np.ndarray]:
    """V views (c2w (V, 4, 4), OpenGL convention) of one code pair: rgb (V, H, W, 3) float in [0, 1],
    accumulation (V, H, W), depth (V, H, W) (distance along each ray)."""
    c2w = np.asarray(c2w, dtype=np.float32).reshape(-1, 4, 4)
    rays = camera_rays(c2w, np.asarray(intrinsics), image_size)
    V, S = c2w.shape[0], image_size
    out = render_rays(model, rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3), shape_code, texture_code, chunk)
    return {
        "rgb": out["rgb"].reshape(V, S, S, 3).clamp(0, 1).numpy(),
        "accumulation": out["accumulation"].reshape(V, S, S).numpy(),
        "depth": out["depth"].reshape(V, S, S).numpy(),
    }
