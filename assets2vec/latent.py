"""Things to do with codes: turntables, shape x texture swap grids, interpolation, PCA traversal.

All functions take a trained model and codes (rows of its tables or any vectors of
the right size) and return uint8 images; `save_animation` writes GIF or MP4.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from assets2vec.models.latent_nerf import LatentNeRFModel
from assets2vec.nerf_render import render_views
from render_core.poses import orbit_poses  # noqa: F401 - callers render along orbits through this module
from render_core.rig import RigConfig, intrinsics


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_image(model, pose, K, size, shape, texture) -> np.ndarray:
    """One uint8 (size, size, 3) image of codes `shape`, `texture` from camera `pose` (4, 4) with intrinsics K."""
    return _to_u8(render_views(model, pose[None], K, size, shape, texture)["rgb"][0])


def turntable(model: LatentNeRFModel, shape: torch.Tensor, texture: torch.Tensor, rig: RigConfig, size: int,
              frames: int = 36, elevation: float = 20.0) -> np.ndarray:
    """(frames, size, size, 3) uint8: one full turn around the object."""
    poses = orbit_poses(elevation, np.arange(frames) * 360.0 / frames, rig.distance)
    return _to_u8(render_views(model, poses, intrinsics(rig.fov_deg, size), size, shape, texture)["rgb"])


def swap_grid(model: LatentNeRFModel, rows: list[int], rig: RigConfig, size: int, azimuth: float = 30.0, elevation: float = 20.0) -> np.ndarray:
    """(n*size, n*size, 3) uint8: cell (i, j) = shape of asset rows[i] with texture of rows[j]."""
    pose = orbit_poses(elevation, np.array([azimuth]), rig.distance)[0]
    K = intrinsics(rig.fov_deg, size)
    S, T = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
    grid = [[render_image(model, pose, K, size, S[i], T[j]) for j in rows] for i in rows]
    return np.concatenate([np.concatenate(r, 1) for r in grid], 0)


def interpolation(model: LatentNeRFModel, a: int, b: int, rig: RigConfig, size: int, steps: int = 8, azimuth: float = 30.0) -> np.ndarray:
    """(size, steps*size, 3) uint8: both halves of the code blended linearly from asset row a to row b."""
    pose = orbit_poses(20.0, np.array([azimuth]), rig.distance)[0]
    K = intrinsics(rig.fov_deg, size)
    S, T = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
    cells = [render_image(model, pose, K, size, torch.lerp(S[a], S[b], w), torch.lerp(T[a], T[b], w)) for w in np.linspace(0, 1, steps)]
    return np.concatenate(cells, 1)


def principal_components(codes: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (d,), components (n, d) and their standard deviations (n,) of a code table."""
    x = codes.detach().cpu().numpy().astype(np.float64)
    n = min(n, x.shape[0], x.shape[1])
    pca = PCA(n_components=n, svd_solver="full").fit(x)
    return pca.mean_, pca.components_, np.sqrt(pca.explained_variance_)


def pca_traversal(model: LatentNeRFModel, half: str, rig: RigConfig, size: int, components: int = 3, steps: int = 7,
                  sigmas: float = 2.0, base_row: int | None = None, azimuth: float = 30.0) -> np.ndarray:
    """(components*size, steps*size, 3) uint8: row k walks principal component k of the `half` ("shape"
    or "texture") table from -sigmas to +sigmas standard deviations; the other half stays at the
    mean code (or at asset `base_row`'s)."""
    if half not in ("shape", "texture"):
        raise ValueError(f"half must be shape or texture, got {half!r}")
    S, T = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
    table = S if half == "shape" else T
    mean, comps, std = principal_components(table, components)
    other = (T if half == "shape" else S)[base_row] if base_row is not None else (T if half == "shape" else S).mean(0)
    pose = orbit_poses(20.0, np.array([azimuth]), rig.distance)[0]
    K = intrinsics(rig.fov_deg, size)
    rows = []
    for k in range(len(comps)):
        cells = []
        for w in np.linspace(-sigmas, sigmas, steps):
            code = torch.as_tensor(mean + w * std[k] * comps[k], dtype=torch.float32)
            cells.append(render_image(model, pose, K, size, code, other) if half == "shape" else render_image(model, pose, K, size, other, code))
        rows.append(np.concatenate(cells, 1))
    return np.concatenate(rows, 0)


def save_animation(path: str | os.PathLike, frames: np.ndarray, fps: int = 12) -> Path:
    """GIF or MP4 by extension, `frames` (F, H, W, 3) uint8; encoded in memory, then written atomically."""
    import imageio.v3 as iio

    from render_core.artifacts import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() == ".gif":
        data = iio.imwrite("<bytes>", list(frames), extension=".gif", duration=1000 / fps, loop=0)
    elif path.suffix.lower() == ".mp4":
        even = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # yuv420 needs even sides
        data = iio.imwrite("<bytes>", even, extension=".mp4", plugin="pyav", codec="mpeg4", fps=fps)
    else:
        raise ValueError(f"{path}: animations are written as .gif or .mp4")
    atomic_write_bytes(path, data)
    return path
