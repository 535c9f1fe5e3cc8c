"""Rays of many assets in one table, each carrying its asset index, and a seeded batch sampler.

Rays come from nerfstudio's `Cameras.generate_rays` built straight from the dataset's
stored cameras, so they follow nerfstudio's conventions exactly. Synthetic data gives
more than photos do, and the table keeps it: per-ray coverage (alpha) and the
distance along the ray to the true surface (0 where the ray misses the asset).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterator, Sequence

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.cameras.rays import RayBundle

from render_core.dataset import RenderedDataset
from render_core.multiview import asset_rng


def holdout_views(asset_id: str, n_views: int, n_holdout: int = 2, seed: int = 0) -> np.ndarray:
    """Indices of the views held out for evaluation: `n_holdout` per asset, chosen from
    (seed, asset id) alone, so every run and every tool agrees on them."""
    if not 0 <= n_holdout < n_views:
        raise ValueError(f"held-out views per asset must be in [0, {n_views - 1}], got {n_holdout}")
    return np.sort(asset_rng(seed, f"holdout:{asset_id}").choice(n_views, n_holdout, replace=False))


@dataclass
class RayTable:
    """R rays, flattened over (asset, view, row, col)."""

    origins: torch.Tensor  # (R, 3) float32, world
    directions: torch.Tensor  # (R, 3) float32, unit length
    pixel_area: torch.Tensor  # (R, 1) float32, nerfstudio's cone footprint
    rgb: torch.Tensor  # (R, 3) uint8, on white
    alpha: torch.Tensor  # (R,) uint8, pixel coverage
    surface_t: torch.Tensor  # (R,) float32, distance along the ray to the surface, 0 if it misses
    asset_index: torch.Tensor  # (R,) int64, row of the asset in `asset_ids`
    view_index: torch.Tensor  # (R,) int16, view of that asset
    asset_ids: list[str]
    image_size: int

    def __len__(self) -> int:
        return int(self.origins.shape[0])

    def select(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """A batch as float tensors: rgb and alpha in [0, 1]."""
        return {
            "origins": self.origins[idx],
            "directions": self.directions[idx],
            "pixel_area": self.pixel_area[idx],
            "rgb": self.rgb[idx].float() / 255.0,
            "alpha": self.alpha[idx].float() / 255.0,
            "surface_t": self.surface_t[idx],
            "asset_index": self.asset_index[idx],
        }


def camera_rays(c2w: np.ndarray, K: np.ndarray, size: int) -> RayBundle:
    """nerfstudio rays for every pixel of V views: tensors shaped (V, H, W, ...)."""
    V = c2w.shape[0]
    cams = Cameras(
        camera_to_worlds=torch.as_tensor(c2w[:, :3, :], dtype=torch.float32),
        fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
        width=size, height=size, camera_type=CameraType.PERSPECTIVE,
    )
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    coords = torch.stack([rows, cols], -1).float() + 0.5  # (H, W, 2), nerfstudio's (y, x) pixel centres
    coords = coords.expand(V, size, size, 2)
    cam_idx = torch.arange(V).view(V, 1, 1, 1).expand(V, size, size, 1)
    return cams.generate_rays(camera_indices=cam_idx, coords=coords)


def build_ray_table(
    dataset: RenderedDataset,
    asset_ids: Sequence[str] | None = None,
    split: str = "train",
    n_holdout: int = 2,
    seed: int = 0,
    views: dict[str, Sequence[int]] | None = None,
) -> RayTable:
    """Rays of `split` ("train": all but the held-out views, "heldout": those, "all") of the assets.

    `views` overrides the split with explicit view indices per asset (e.g. an image subset).
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be train, heldout or all, got {split!r}")
    asset_ids = list(asset_ids if asset_ids is not None else dataset.asset_ids)
    if not asset_ids:
        raise ValueError(f"{dataset.root}: the dataset holds no assets")
    parts: dict[str, list[torch.Tensor]] = {f.name: [] for f in fields(RayTable) if f.name not in ("asset_ids", "image_size")}
    size = dataset.image_size
    for a, asset_id in enumerate(asset_ids):
        v = dataset.load(asset_id)
        if views is not None:
            chosen = np.asarray(views[asset_id], dtype=np.int64)
        else:
            held = holdout_views(asset_id, v.n_views, n_holdout, seed)
            chosen = {"train": np.setdiff1d(np.arange(v.n_views), held), "heldout": held, "all": np.arange(v.n_views)}[split]
        if len(chosen) == 0:
            continue
        rays = camera_rays(v.c2w[chosen], v.intrinsics, size)
        forward = torch.as_tensor(-v.c2w[chosen, :3, 2]).view(-1, 1, 1, 3)  # the cameras' viewing axes
        dirs = rays.directions
        cos = (dirs * forward).sum(-1)  # (V, H, W)
        depth = torch.as_tensor(v.depth[chosen])
        n = dirs.shape[0] * size * size
        parts["origins"].append(rays.origins.reshape(n, 3))
        parts["directions"].append(dirs.reshape(n, 3))
        parts["pixel_area"].append(rays.pixel_area.reshape(n, 1))
        parts["rgb"].append(torch.as_tensor(v.rgb[chosen]).reshape(n, 3))
        parts["alpha"].append(torch.as_tensor((v.alpha[chosen] * 255 + 0.5).astype(np.uint8)).reshape(n))
        parts["surface_t"].append((depth / cos).reshape(n))  # z-depth -> distance along the ray; 0 stays 0
        parts["asset_index"].append(torch.full((n,), a, dtype=torch.int64))
        parts["view_index"].append(torch.as_tensor(chosen, dtype=torch.int16).view(-1, 1).expand(-1, size * size).reshape(n))
    if not parts["origins"]:
        raise ValueError(f"no views selected for split {split!r}")
    return RayTable(**{k: torch.cat(v) for k, v in parts.items()}, asset_ids=asset_ids, image_size=size)


def _check_fraction(foreground_fraction: float | None) -> None:
    if foreground_fraction is not None and not 0.0 <= foreground_fraction <= 1.0:
        raise ValueError(f"foreground fraction must be in [0, 1], got {foreground_fraction}")


class RayBatcher:
    """Random ray batches mixed across assets, from an explicit `torch.Generator`.

    Each epoch is a fresh permutation, so every ray is seen once per epoch. With
    `foreground_fraction`, that share of each batch is drawn from rays that hit an
    asset: on white-background renders most rays are empty, and they teach less.
    """

    def __init__(self, table: RayTable, batch_size: int, generator: torch.Generator, foreground_fraction: float | None = None):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        _check_fraction(foreground_fraction)
        self.table = table
        self.batch_size = batch_size
        self.generator = generator
        self.foreground_fraction = foreground_fraction
        self._pools = [torch.arange(len(table))]
        self._sizes = [batch_size]
        if foreground_fraction is not None:
            fg = table.alpha > 0
            n_fg = int(round(batch_size * foreground_fraction))
            self._pools = [torch.nonzero(fg).squeeze(1), torch.nonzero(~fg).squeeze(1)]
            self._sizes = [n_fg, batch_size - n_fg]
        self._orders = [self._shuffle(p) for p in self._pools]
        self._cursors = [0 for _ in self._pools]

    def _shuffle(self, pool: torch.Tensor) -> torch.Tensor:
        return pool[torch.randperm(len(pool), generator=self.generator)] if len(pool) else pool

    def _take(self, i: int, k: int) -> torch.Tensor:
        out = []
        while k > 0 and len(self._pools[i]):
            if self._cursors[i] >= len(self._orders[i]):
                self._orders[i], self._cursors[i] = self._shuffle(self._pools[i]), 0
            chunk = self._orders[i][self._cursors[i] : self._cursors[i] + k]
            self._cursors[i] += len(chunk)
            k -= len(chunk)
            out.append(chunk)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)

    def state_dict(self) -> dict:
        """Everything needed to continue the exact same sequence after a resume."""
        return {"orders": self._orders, "cursors": list(self._cursors), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._orders = [torch.as_tensor(o) for o in state["orders"]]
        self._cursors = list(state["cursors"])
        self.generator.set_state(state["generator"])

    def next_indices(self) -> torch.Tensor:
        return torch.cat([self._take(i, k) for i, k in enumerate(self._sizes)])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.table.select(self.next_indices())


def to_ray_bundle(batch: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> RayBundle:
    """A nerfstudio `RayBundle` whose metadata carries, per ray (B, 1): the asset index, the
    distance to the surface (0: the pixel centre misses) and whether the pixel is empty."""
    return RayBundle(
        origins=batch["origins"].to(device),
        directions=batch["directions"].to(device),
        pixel_area=batch["pixel_area"].to(device),
        metadata={
            "asset_index": batch["asset_index"].view(-1, 1).to(device),
            "surface_t": batch["surface_t"].view(-1, 1).to(device),
            "empty": (batch["alpha"] == 0).view(-1, 1).to(device),
        },
    )


class AssetBatcher:
    """Batches of `assets_per_batch` assets x `rays_per_asset` rays, from an explicit `torch.Generator`.

    Fields that decode per-asset structures from codes (triplanes) pay per distinct
    asset in a batch, so batches hold few assets with many rays each. Assets are
    visited in epochs of a fresh permutation; rays are drawn with replacement, a
    `foreground_fraction` share from the asset's covered pixels.
    """

    def __init__(self, table: RayTable, assets_per_batch: int, rays_per_asset: int, generator: torch.Generator, foreground_fraction: float | None = None):
        if assets_per_batch < 1 or rays_per_asset < 1:
            raise ValueError(f"batch shape must be positive, got {assets_per_batch} assets x {rays_per_asset} rays")
        _check_fraction(foreground_fraction)
        self.table = table
        self.generator = generator
        self.rays_per_asset = rays_per_asset
        n_assets = len(table.asset_ids)
        self.assets_per_batch = min(assets_per_batch, n_assets)
        counts = torch.bincount(table.asset_index, minlength=n_assets)
        present = torch.nonzero(counts).squeeze(1)
        starts = torch.cumsum(counts, 0) - counts
        fg = table.alpha > 0
        self._pools: dict[int, list[torch.Tensor]] = {}
        for a in present.tolist():
            rows = torch.arange(int(starts[a]), int(starts[a] + counts[a]))  # the table is asset-major
            if foreground_fraction is None:
                self._pools[a] = [rows]
            else:
                self._pools[a] = [rows[fg[rows]], rows[~fg[rows]]]
        self._present = present
        self._fg_n = int(round(rays_per_asset * foreground_fraction)) if foreground_fraction is not None else rays_per_asset
        self._order = self._present[torch.randperm(len(self._present), generator=generator)]
        self._cursor = 0

    def _next_assets(self) -> list[int]:
        out: list[int] = []
        while len(out) < self.assets_per_batch:
            if self._cursor >= len(self._order):
                self._order = self._present[torch.randperm(len(self._present), generator=self.generator)]
                self._cursor = 0
            a = int(self._order[self._cursor])
            self._cursor += 1
            if a not in out:
                out.append(a)
        return out

    def next_indices(self) -> torch.Tensor:
        parts = []
        for a in self._next_assets():
            pools = self._pools[a]
            sizes = [self._fg_n, self.rays_per_asset - self._fg_n] if len(pools) == 2 else [self.rays_per_asset]
            if len(pools) == 2 and (len(pools[0]) == 0 or len(pools[1]) == 0):
                pools, sizes = [torch.cat(pools)], [self.rays_per_asset]
            for pool, k in zip(pools, sizes):
                if k:
                    parts.append(pool[torch.randint(len(pool), (k,), generator=self.generator)])
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {"order": self._order, "cursor": self._cursor, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._order = torch.as_tensor(state["order"])
        self._cursor = int(state["cursor"])
        self.generator.set_state(state["generator"])
