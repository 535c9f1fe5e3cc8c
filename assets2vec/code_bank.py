"""CodeBank: every training code rendered from every candidate pose on a coarse pixel grid.

A camera-unknown inversion has to find a pose and a code at once. Gradient steps from the
mean code find both slowly and often settle on a blob at a wrong pose. The bank answers the
discrete part by lookup instead: the image's grid pixels are compared with the renders of all
(pose, code) pairs (a few milliseconds), and the best pairs become the inversion's starts.
Built once per trained run and rig (a progress bar; about 0.15 s per code on this 2-core CPU
at an 8x8 grid and 18 poses) and saved beside the run, keyed by a fingerprint of the network,
codes, poses and grid, so a retrained or grown run never reads a stale bank.

Memory is codes x poses x grid pixels x 4 float16 (9 KB per code at 18 poses and 8x8):
fine to about 10^5 codes; above `MAX_CODES` the inversion goes without it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from nerfstudio.cameras.rays import RayBundle
from tqdm.auto import tqdm

from assets2vec.data.rays import camera_rays

MAX_CODES = 100_000
FORMAT = 1


def grid_pixels(size: int, grid: int) -> np.ndarray:
    """(grid*grid,) flat indices of the centres of a grid x grid tiling of a size x size image."""
    if not 1 <= grid <= size:
        raise ValueError(f"bank grid {grid} must be between 1 and the image size {size}")
    c = (np.arange(grid) * size) // grid + size // (2 * grid)
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return (ys * size + xs).reshape(-1)


def fingerprint(model, poses: np.ndarray, intrinsics: np.ndarray, size: int, grid: int, num_samples: int) -> str:
    """Hash of everything a bank's renders depend on."""
    h = hashlib.sha256(f"v{FORMAT} {size} {grid} {num_samples}".encode())
    for a in (poses, intrinsics):
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    for name, t in sorted(model.state_dict().items()):
        if torch.is_tensor(t) and t.is_floating_point():
            h.update(name.encode())
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class CodeBank:
    """Renders (K poses, N codes, G grid pixels, rgb + coverage) of a run's training codes."""

    def __init__(self, poses: np.ndarray, size: int, grid: int, renders: np.ndarray, key: str):
        self.poses = np.asarray(poses, np.float32)  # (K, 4, 4)
        self.size, self.grid, self.key = int(size), int(grid), key
        self.pixels = torch.as_tensor(grid_pixels(self.size, self.grid))
        self.renders = torch.as_tensor(np.asarray(renders, np.float16))  # (K, N, G, 4)
        K, N, G, C = self.renders.shape
        if K != len(self.poses) or G != len(self.pixels) or C != 4:
            raise ValueError(f"bank renders of shape {tuple(self.renders.shape)} do not match {len(self.poses)} poses "
                             f"and a {grid}x{grid} grid")

    @property
    def n_codes(self) -> int:
        return self.renders.shape[1]

    @classmethod
    @torch.no_grad()
    def build(cls, model, poses: np.ndarray, intrinsics: np.ndarray, size: int, grid: int = 8, num_samples: int = 24,
              progress: bool = True, rays_per_batch: int = 16384, key: str | None = None) -> "CodeBank":
        """Render every training code of `model` from each of `poses` (K, 4, 4) on the grid pixels."""
        shape, texture = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
        N = len(shape)
        if N > MAX_CODES:
            raise ValueError(f"a bank of {N} codes would need {N * len(poses) * grid * grid * 8 / 1e9:.1f} GB; "
                             f"the limit is {MAX_CODES} codes")
        poses = np.asarray(poses, np.float32).reshape(-1, 4, 4)
        pixels = torch.as_tensor(grid_pixels(size, grid))
        G, K = len(pixels), len(poses)
        rays = camera_rays(poses, np.asarray(intrinsics, np.float32), size)
        origins = rays.origins.reshape(K, -1, 3)[:, pixels]
        directions = rays.directions.reshape(K, -1, 3)[:, pixels]
        renders = torch.empty(K, N, G, 4, dtype=torch.float16)
        per = max(1, rays_per_batch // G)  # codes per batch
        was_training = model.training
        model.eval()
        bar = tqdm(total=K * N, desc="inversion bank", unit="render", disable=not progress, mininterval=1.0)
        for k in range(K):
            for c in range(0, N, per):
                n = min(per, N - c)
                bundle = RayBundle(origins=origins[k].repeat(n, 1), directions=directions[k].repeat(n, 1),
                                   pixel_area=torch.ones(n * G, 1, device=origins.device),
                                   metadata={"shape_code": shape[c:c + n].repeat_interleave(G, 0),
                                             "texture_code": texture[c:c + n].repeat_interleave(G, 0)})
                out = model.render_uniform(bundle, num_samples)
                renders[k, c:c + n, :, :3] = out["rgb"].view(n, G, 3).half()
                renders[k, c:c + n, :, 3] = out["accumulation"].view(n, G).half()
                bar.update(n)
        bar.close()
        model.train(was_training)
        key = key or fingerprint(model, poses, intrinsics, size, grid, num_samples)
        return cls(poses, size, grid, renders.numpy(), key)

    def search(self, rgb: torch.Tensor, mask: torch.Tensor, k: int, mask_weight: float = 0.5
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Best `k` (pose row, code row, error) pairs for one image: `rgb` (S*S, 3) and `mask` (S*S,) flattened."""
        if len(rgb) != self.size * self.size:
            raise ValueError(f"the bank was built for {self.size}x{self.size} images, got {len(rgb)} pixels")
        ref_rgb, ref_mask = rgb[self.pixels].float(), mask[self.pixels].float()
        r = self.renders.float()
        err = ((r[..., :3] - ref_rgb) ** 2).mean((-1, -2)) + mask_weight * ((r[..., 3] - ref_mask) ** 2).mean(-1)
        err, order = torch.topk(err.flatten(), min(k, err.numel()), largest=False)
        return order // self.n_codes, order % self.n_codes, err

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a temporary file renamed into place): a reader never sees half a bank."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, poses=self.poses, size=self.size, grid=self.grid, renders=self.renders.numpy(),
                         key=np.frombuffer(self.key.encode(), np.uint8), format=FORMAT)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CodeBank":
        """Read a saved bank (plain arrays only: nothing is unpickled)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != FORMAT:
                    raise ValueError(f"format {int(z['format'])}, expected {FORMAT}")
                return cls(z["poses"], int(z["size"]), int(z["grid"]), z["renders"], bytes(z["key"]).decode())
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: not a readable inversion bank ({e})") from e

    @classmethod
    def for_run(cls, run: str | os.PathLike, model, poses: np.ndarray, intrinsics: np.ndarray, size: int,
                grid: int = 8, num_samples: int = 24, progress: bool = True) -> "CodeBank":
        """The run's bank for these poses and grid: read from `RUN/inversion_bank/` when its fingerprint
        matches, else built and saved there (kept in memory only when the run folder is read-only)."""
        key = fingerprint(model, poses, intrinsics, size, grid, num_samples)
        path = Path(run) / "inversion_bank" / f"{key[:20]}.npz"
        try:
            saved = cls.load(path) if path.exists() else None
        except ValueError as e:
            warnings.warn(f"{e}; rebuilding it")
            saved = None
        if saved is not None and saved.key == key:
            return saved
        bank = cls.build(model, poses, intrinsics, size, grid, num_samples, progress, key=key)
        try:
            bank.save(path)
        except OSError as e:
            warnings.warn(f"{path}: could not save the inversion bank ({e}); it is kept in memory only")
        return bank


def run_bank(run: str | os.PathLike, model, rig, size: int, progress: bool = True) -> CodeBank | None:
    """The bank a camera-unknown inversion against `run` should use: its training codes seen from
    `rig`'s poses at `size` px (read from the run folder or built there), or None above `MAX_CODES`."""
    from assets2vec.invert import candidate_poses
    from render_core.rig import intrinsics

    if model.codes.shape.weight.shape[0] > MAX_CODES:
        return None
    return CodeBank.for_run(run, model, candidate_poses(rig), intrinsics(rig.fov_deg, size), size, progress=progress)

