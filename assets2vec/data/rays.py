"""Rays of many assets in one table, each carrying its asset index, and a seeded batch sampler.

Rays come from nerfstudio's `Cameras.generate_rays` built straight from the dataset's
stored cameras, so they follow nerfstudio's conventions exactly. Synthetic data gives
more than photos do, and the table keeps it: per-ray coverage (alpha) and the
distance along the ray to the true surface (0 where the ray misses the asset).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from functools import cached_property
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


def _select(parts: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """A batch as float tensors: rgb and alpha in [0, 1]."""
    return {
        "origins": parts["origins"][idx],
        "directions": parts["directions"][idx],
        "pixel_area": parts["pixel_area"][idx],
        "rgb": parts["rgb"][idx].float() / 255.0,
        "alpha": parts["alpha"][idx].float() / 255.0,
        "surface_t": parts["surface_t"][idx],
        "asset_index": parts["asset_index"][idx],
    }


EDGE_RADIUS = 2  # pixels: how near a covered pixel an empty one must be to count as an edge ray


def _pools(rows: torch.Tensor, alpha: torch.Tensor, split_foreground: bool, size: int | None = None) -> list[torch.Tensor]:
    """An asset's rows to draw from: all of them, or [covered, empty], or with `size` (the image
    side; rows are whole views of it) [covered, empty near the object, empty far from it].

    Why the near-empty pool: thin gaps (under a sofa, between chair legs) are a few background
    pixels against tens of thousands elsewhere, so a uniform draw of empty rays almost never asks
    the network to keep them empty."""
    if not split_foreground:
        return [rows]
    fg = alpha > 0
    if size is None:
        return [rows[fg], rows[~fg]]
    k = 2 * EDGE_RADIUS + 1
    near = torch.nn.functional.max_pool2d(fg.view(-1, 1, size, size).float(), k, stride=1, padding=EDGE_RADIUS).view(-1) > 0
    return [rows[fg], rows[near & ~fg], rows[~near]]


@dataclass
class RayTable:
    """R rays, flattened over (asset, view, row, col), all in memory."""

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
        return _select(self.__dict__, idx)

    def assets_of(self, idx: torch.Tensor) -> torch.Tensor:
        """(B,) asset rows of table rows `idx`."""
        return self.asset_index[idx]

    def present_assets(self) -> torch.Tensor:
        """Asset rows that have at least one ray."""
        return torch.nonzero(self._asset_counts).squeeze(1)

    def asset_pools(self, a: int, split_foreground: bool, edges: bool = False) -> list[torch.Tensor]:
        """Table rows of asset `a`: all, or [covered, empty] with `split_foreground`, or
        [covered, empty near the object, empty far] with `edges` too."""
        key = (a, split_foreground, edges)
        if key not in self._pool_cache:
            start = int(self._asset_counts[:a].sum())
            rows = torch.arange(start, start + int(self._asset_counts[a]))  # the table is asset-major, view by view
            self._pool_cache[key] = _pools(rows, self.alpha[rows], split_foreground, self.image_size if edges else None)
        return self._pool_cache[key]

    @cached_property
    def _asset_counts(self) -> torch.Tensor:
        return torch.bincount(self.asset_index, minlength=len(self.asset_ids))

    @cached_property
    def _pool_cache(self) -> dict[tuple[int, bool, bool], list[torch.Tensor]]:
        return {}


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
    _check_split(split)
    asset_ids = list(asset_ids if asset_ids is not None else dataset.asset_ids)
    if not asset_ids:
        raise ValueError(f"{dataset.root}: the dataset holds no assets")
    parts: dict[str, list[torch.Tensor]] = {f.name: [] for f in fields(RayTable) if f.name not in ("asset_ids", "image_size")}
    view_rays = _ViewRays()
    for a, asset_id in enumerate(asset_ids):
        v = dataset.load(asset_id)
        chosen = _chosen_views(v.n_views, asset_id, split, n_holdout, seed, views)
        if len(chosen) == 0:
            continue
        for k, t in _asset_rays(v, chosen, dataset.image_size, a, view_rays).items():
            parts[k].append(t)
    if not parts["origins"]:
        raise ValueError(f"no views selected for split {split!r}")
    return RayTable(**{k: torch.cat(v) for k, v in parts.items()}, asset_ids=asset_ids, image_size=dataset.image_size)


def _check_split(split: str) -> None:
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be train, heldout or all, got {split!r}")


def _chosen_views(n_views: int, asset_id: str, split: str, n_holdout: int, seed: int,
                  views: dict[str, Sequence[int]] | None) -> np.ndarray:
    if views is not None:
        return np.asarray(views[asset_id], dtype=np.int64)
    held = holdout_views(asset_id, n_views, n_holdout, seed)
    return {"train": np.setdiff1d(np.arange(n_views), held), "heldout": held, "all": np.arange(n_views)}[split]


class _ViewRays:
    """nerfstudio rays of single views, cached by camera: a library rendered on one rig repeats that
    rig's few poses for every asset, and generating rays costs far more than reading an asset."""

    def __init__(self, max_views: int = 256):
        self.max_views = max_views
        self._cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()

    def __call__(self, c2w: np.ndarray, K: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """origins, directions (V, S, S, 3) and pixel areas (V, S, S, 1) of views c2w (V, 4, 4)."""
        parts = []
        for view in np.asarray(c2w, np.float32):
            key = view.tobytes() + np.asarray(K, np.float32).tobytes() + size.to_bytes(4, "little")
            if key not in self._cache:
                r = camera_rays(view[None], K, size)
                self._cache[key] = (r.origins[0], r.directions[0], r.pixel_area[0])
                if len(self._cache) > self.max_views:
                    self._cache.popitem(last=False)
            parts.append(self._cache[key])
        return tuple(torch.stack(x) for x in zip(*parts))  # type: ignore[return-value]


def _asset_rays(v, chosen: np.ndarray, size: int, a: int, view_rays: _ViewRays) -> dict[str, torch.Tensor]:
    """The rays of views `chosen` of one loaded asset `v` (row `a`), flattened over (view, row, col)."""
    origins, dirs, area = view_rays(v.c2w[chosen], v.intrinsics, size)
    forward = torch.as_tensor(-v.c2w[chosen, :3, 2]).view(-1, 1, 1, 3)  # the cameras' viewing axes
    cos = (dirs * forward).sum(-1)  # (V, H, W)
    depth = torch.as_tensor(v.depth[chosen])
    n = dirs.shape[0] * size * size
    return {
        "origins": origins.reshape(n, 3),
        "directions": dirs.reshape(n, 3),
        "pixel_area": area.reshape(n, 1),
        "rgb": torch.as_tensor(v.rgb[chosen]).reshape(n, 3),
        "alpha": torch.as_tensor((v.alpha[chosen] * 255 + 0.5).astype(np.uint8)).reshape(n),
        "surface_t": (depth / cos).reshape(n),  # z-depth -> distance along the ray; 0 stays 0
        "asset_index": torch.full((n,), a, dtype=torch.int64),
        "view_index": torch.as_tensor(chosen, dtype=torch.int16).view(-1, 1).expand(-1, size * size).reshape(n),
    }


BYTES_PER_RAY = 46  # what a RayTable holds per ray (origins, directions, area, rgb, alpha, surface, asset, view)


class StreamedRayTable:
    """The rays of a RayTable, read from the dataset asset by asset when a batch needs them.

    A RayTable of 1M assets would need 3 TB (46 bytes per ray, 16 views of 64²); this one holds
    only the `cache_assets` most recently used assets. Row numbers, batches and values are
    exactly those of the in-memory table (same views, same ray computation), so a run trains
    identically either way. Every asset must have the same number of views: its rows are then
    `a * rays_per_asset + local`, and no per-ray index is kept.
    """

    def __init__(self, dataset: RenderedDataset, asset_ids: Sequence[str] | None = None, split: str = "train",
                 n_holdout: int = 2, seed: int = 0, views: dict[str, Sequence[int]] | None = None, cache_assets: int = 64):
        _check_split(split)
        self.asset_ids = list(asset_ids if asset_ids is not None else dataset.asset_ids)
        if not self.asset_ids:
            raise ValueError(f"{dataset.root}: the dataset holds no assets")
        if cache_assets < 1:
            raise ValueError(f"the ray cache must hold at least one asset, got {cache_assets}")
        known = set(dataset.asset_ids)
        missing = [a for a in self.asset_ids if a not in known]
        if missing:
            raise KeyError(f"assets {missing[:3]} are not in dataset {dataset.root}")
        self.dataset, self.image_size = dataset, dataset.image_size
        self._choose = lambda asset_id: _chosen_views(dataset.n_views, asset_id, split, n_holdout, seed, views)
        counts = {len(self._choose(a)) for a in self.asset_ids}
        if len(counts) != 1 or 0 in counts:
            raise ValueError(f"streamed rays need the same (non-zero) number of views for every asset, got {sorted(counts)}")
        self.views_per_asset = counts.pop()
        self.rays_per_asset = self.views_per_asset * self.image_size**2
        self.cache_assets = cache_assets
        self._cache: OrderedDict[int, tuple[dict[str, torch.Tensor], dict[tuple[bool, bool], list[torch.Tensor]]]] = OrderedDict()
        self._view_rays = _ViewRays()
        self.loads = 0  # assets read from disk so far

    def __len__(self) -> int:
        return len(self.asset_ids) * self.rays_per_asset

    def _entry(self, a: int):
        if a in self._cache:
            self._cache.move_to_end(a)
            return self._cache[a]
        asset_id = self.asset_ids[a]
        entry = (_asset_rays(self.dataset.load(asset_id), self._choose(asset_id), self.image_size, a, self._view_rays), {})
        self.loads += 1
        self._cache[a] = entry
        while len(self._cache) > self.cache_assets:
            self._cache.popitem(last=False)
        return entry

    def assets_of(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.div(idx, self.rays_per_asset, rounding_mode="floor")

    def present_assets(self) -> torch.Tensor:
        return torch.arange(len(self.asset_ids))

    def asset_pools(self, a: int, split_foreground: bool, edges: bool = False) -> list[torch.Tensor]:
        parts, pools = self._entry(a)
        if (split_foreground, edges) not in pools:
            start = a * self.rays_per_asset
            pools[split_foreground, edges] = _pools(torch.arange(start, start + self.rays_per_asset), parts["alpha"],
                                                    split_foreground, self.image_size if edges else None)
        return pools[split_foreground, edges]

    def select(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The same batch `RayTable.select` returns for these rows."""
        assets = self.assets_of(idx)
        local = idx - assets * self.rays_per_asset
        out: dict[str, torch.Tensor] | None = None
        for a in torch.unique(assets).tolist():
            where = torch.nonzero(assets == a).squeeze(1)
            part = _select(self._entry(a)[0], local[where])
            if out is None:
                out = {k: torch.empty((len(idx),) + v.shape[1:], dtype=v.dtype) for k, v in part.items()}
            for k, v in part.items():
                out[k][where] = v
        if out is None:
            raise ValueError("an empty batch")
        return out


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

    def next_indices(self, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Rows [lo, hi) of the next batch of exactly `batch_size` table rows (all of it by default)."""
        sizes = self._sizes
        if len(sizes) == 2 and min(len(p) for p in self._pools) == 0:  # no covered (or no empty) rays at all
            sizes = [self.batch_size, 0] if len(self._pools[0]) else [0, self.batch_size]
        full = torch.cat([self._take(i, k) for i, k in enumerate(sizes) if k])
        self._batch_assets = torch.unique(self.table.assets_of(full))
        return full[lo:hi]

    def batch_assets(self) -> torch.Tensor:
        """Sorted asset indices of the whole last batch (all workers' rows)."""
        return self._batch_assets

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.table.select(self.next_indices())


def covered_pixels(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,) pixels wholly on the asset: the centre hits the surface and coverage is full. Depth is
    supervised, and with `texture_rays="covered"` texture codes trained, only there."""
    return (batch["surface_t"] > 0) & (batch["alpha"] > 0.99)


def to_ray_bundle(batch: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> RayBundle:
    """A nerfstudio `RayBundle` whose metadata carries, per ray (B, 1): the asset index, the
    distance to the surface (0: the pixel centre misses), whether the pixel is empty and whether it is
    wholly on the asset (covered)."""
    return RayBundle(
        origins=batch["origins"].to(device),
        directions=batch["directions"].to(device),
        pixel_area=batch["pixel_area"].to(device),
        metadata={
            "asset_index": batch["asset_index"].view(-1, 1).to(device),
            "surface_t": batch["surface_t"].view(-1, 1).to(device),
            "empty": (batch["alpha"] == 0).view(-1, 1).to(device),
            "covered": covered_pixels(batch).view(-1, 1).to(device),
        },
    )


class AssetBatcher:
    """Batches of `assets_per_batch` assets x `rays_per_asset` rays, from an explicit `torch.Generator`.

    Fields that decode per-asset structures from codes (triplanes) pay per distinct
    asset in a batch, so batches hold few assets with many rays each. Assets are
    visited in epochs of a fresh permutation; rays are drawn with replacement, a
    `foreground_fraction` share from the asset's covered pixels.
    """

    def __init__(self, table: RayTable | StreamedRayTable, assets_per_batch: int, rays_per_asset: int, generator: torch.Generator,
                 foreground_fraction: float | None = None, edge_fraction: float | None = None):
        if assets_per_batch < 1 or rays_per_asset < 1:
            raise ValueError(f"batch shape must be positive, got {assets_per_batch} assets x {rays_per_asset} rays")
        _check_fraction(foreground_fraction)
        if edge_fraction is not None:
            if foreground_fraction is None:
                raise ValueError("an edge fraction needs a foreground fraction (edge rays are the empty rays near the object)")
            if not 0.0 <= edge_fraction <= 1.0 - foreground_fraction:
                raise ValueError(f"edge fraction must be in [0, 1 - foreground fraction = {1 - foreground_fraction:g}], got {edge_fraction}")
        self._edge_n = int(round(rays_per_asset * edge_fraction)) if edge_fraction else 0
        self.table = table
        self.generator = generator
        self.rays_per_asset = rays_per_asset
        self.assets_per_batch = min(assets_per_batch, len(table.asset_ids))
        self._split = foreground_fraction is not None
        self._present = table.present_assets()
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

    @property
    def batch_size(self) -> int:
        return self.assets_per_batch * self.rays_per_asset

    def next_indices(self, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Rows [lo, hi) of the next batch (all of it by default): `rays_per_asset` rows per asset, asset after asset.

        Each asset's rays come from a generator seeded by one draw of the shared generator, so a
        data-parallel worker draws (and a streamed table reads) only the assets in its rows, and the
        workers' slices still join into the batch one process would draw."""
        hi = self.batch_size if hi is None else hi
        assets = self._next_assets()
        self._batch_assets = torch.tensor(sorted(assets), dtype=torch.int64)
        seeds = torch.randint(0, 2**62, (len(assets),), generator=self.generator).tolist()
        r, parts = self.rays_per_asset, []
        for j, (a, seed) in enumerate(zip(assets, seeds)):
            start = j * r
            if start + r > lo and start < hi:
                parts.append(self._draw(a, seed)[max(lo - start, 0) : hi - start])
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)

    def batch_assets(self) -> torch.Tensor:
        """Sorted asset indices of the whole last batch (all workers' rows)."""
        return self._batch_assets

    def _draw(self, a: int, seed: int) -> torch.Tensor:
        """`rays_per_asset` table rows of asset `a`, a `foreground_fraction` share from its covered
        pixels and an `edge_fraction` share from the empty pixels near them."""
        gen = torch.Generator().manual_seed(seed)
        pools = self.table.asset_pools(a, self._split, self._edge_n > 0)  # the table keeps them (a streamed one, while cached)
        if len(pools) == 3:
            sizes = [self._fg_n, self._edge_n, self.rays_per_asset - self._fg_n - self._edge_n]
            if len(pools[1]) == 0:  # nothing near the object is empty: the edge share goes to the far pool
                pools, sizes = [pools[0], pools[2]], [sizes[0], sizes[1] + sizes[2]]
        else:
            sizes = [self._fg_n, self.rays_per_asset - self._fg_n] if len(pools) == 2 else [self.rays_per_asset]
        if len(pools) >= 2 and any(len(p) == 0 for p in pools):
            pools, sizes = [torch.cat(pools)], [self.rays_per_asset]
        return torch.cat([pool[torch.randint(len(pool), (k,), generator=gen)] for pool, k in zip(pools, sizes) if k])

    def state_dict(self) -> dict:
        return {"order": self._order, "cursor": self._cursor, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._order = torch.as_tensor(state["order"])
        self._cursor = int(state["cursor"])
        self.generator.set_state(state["generator"])
