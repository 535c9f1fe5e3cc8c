"""Where the library is thin: per-asset isolation and ranked sparse regions of a latent space.

A sparse region is a hole *inside* the library's spread, not a point far outside it: we
draw candidate points between each asset and its neighbours (random points on the segments
and triangles they span, neighbours up to rank 64 so a segment can cross a hole), keep
candidates that are surrounded by assets (the mean of their 8 nearest assets lies close to
them, relative to how far those assets are; a point beyond the edge of the library has all
its neighbours on one side), measure each one's distance to the nearest asset, and greedily
keep the emptiest as region centres, suppressing candidates inside a region already kept. A region's score is its empty radius in units of the library's
median nearest-neighbour spacing, so a score of 2 means "twice as empty as usual here".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np


@dataclass
class SparseRegion:
    rank: int
    center: np.ndarray  # (d,) in the space's vector coordinates
    radius: float  # distance from the centre to the nearest asset
    score: float  # radius / median nearest-neighbour spacing
    border: np.ndarray  # (k,) positions of the assets around it, nearest first
    border_distances: np.ndarray  # (k,)
    extra: dict = field(default_factory=dict)

    def to_json(self, ids: list[str] | None = None) -> dict:
        border = [ids[i] for i in self.border] if ids is not None else self.border.tolist()
        return {"rank": self.rank, "score": round(self.score, 4), "radius": round(self.radius, 4), "border": border,
                "border_distances": [round(float(d), 4) for d in self.border_distances],
                **{k: v for k, v in self.extra.items() if k != "samples"}}  # samples are arrays: use .extra


def _neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    D, I = index.search(x, k + 1)  # the first hit is the point itself
    return np.sqrt(np.maximum(D[:, 1:], 0)), I[:, 1:]


def isolation(x: np.ndarray, k: int = 5) -> np.ndarray:
    """(n,) mean distance from each vector of x (n, d) to its k nearest others: high = sparse."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) < 2:
        return np.zeros(len(x), np.float32)
    D, _ = _neighbours(x, min(k, len(x) - 1))
    return D.mean(1)


def sparse_regions(x: np.ndarray, n_regions: int = 5, *, k_border: int = 6, neighbours: int = 64,
                   n_candidates: int = 20_000, surround: float = 0.5, seed: int = 0) -> list[SparseRegion]:
    """The `n_regions` emptiest regions among vectors x (n, d), emptiest first."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n < 3:
        raise ValueError(f"sparse regions need at least 3 assets, the catalog has {n}")
    if n_regions < 1:
        raise ValueError(f"n_regions must be at least 1, got {n_regions}")
    rng = np.random.default_rng(seed)
    k = min(neighbours, n - 1)
    D, I = _neighbours(x, k)
    spacing = float(np.median(D[:, 0])) or 1e-6  # median nearest-neighbour distance
    a = rng.integers(0, n, n_candidates)
    b = I[a, rng.integers(0, k, n_candidates)]
    c = I[a, rng.integers(0, k, n_candidates)]
    w = rng.dirichlet((1.0, 1.0, 1.0), n_candidates).astype(np.float32)
    half = n_candidates // 2
    w[:half, 2] = 0  # half on segments between neighbours, half inside their triangles
    w[:half] /= w[:half].sum(1, keepdims=True)
    cand = w[:, :1] * x[a] + w[:, 1:2] * x[b] + w[:, 2:] * x[c]
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    ks = min(8, n)
    dn, In = index.search(np.ascontiguousarray(cand), ks)
    empty = np.sqrt(np.maximum(dn[:, 0], 0))
    offset = np.linalg.norm(x[In].mean(1) - cand, axis=1)
    ratio = offset / np.maximum(np.sqrt(np.maximum(dn, 0)).mean(1), 1e-12)
    inside = ratio < surround
    if inside.any():
        cand, empty = cand[inside], empty[inside]
        n_candidates = len(cand)
    order = np.argsort(-empty, kind="stable")
    alive = np.ones(n_candidates, dtype=bool)
    regions: list[SparseRegion] = []
    for i in order:
        if not alive[i]:
            continue
        center, radius = cand[i], float(empty[i])
        bd, bi = index.search(center[None], min(k_border, n))
        regions.append(SparseRegion(len(regions) + 1, center.copy(), radius, radius / spacing, bi[0],
                                    np.sqrt(np.maximum(bd[0], 0))))
        alive &= np.linalg.norm(cand - center, axis=1) > radius  # inside the kept empty ball = the same hole
        if len(regions) == n_regions or not alive.any():
            break
    return regions


def sparse_regions_within(x: np.ndarray, groups, n_regions: int = 5, *, seed: int = 0, **kwargs) -> list[SparseRegion]:
    """The `n_regions` emptiest regions of x (n, d) found inside each group of assets separately (for
    example each family): candidates lie between assets of one group and a region's emptiness, border
    and score are measured against that group alone, in units of the group's own median spacing. A
    point halfway between a lamp and a sofa is empty, but no lamp or sofa belongs there; a gap among
    the chairs is one a chair can fill. Groups of fewer than 3 assets are skipped; each region's group
    is in `extra["group"]`."""
    groups = np.asarray([str(g) for g in groups])
    if len(groups) != len(x):
        raise ValueError(f"got {len(groups)} group labels for {len(x)} vectors")
    found: list[SparseRegion] = []
    for g in sorted(set(groups.tolist())):
        rows = np.flatnonzero(groups == g)
        if len(rows) < 3:
            continue
        for r in sparse_regions(x[rows], n_regions, seed=seed, **kwargs):
            r.border = rows[r.border]
            r.extra["group"] = g
            found.append(r)
    if not found:
        raise ValueError("sparse regions within groups need a group of at least 3 assets")
    found.sort(key=lambda r: -r.score)
    for rank, r in enumerate(found[:n_regions], 1):
        r.rank = rank
    return found[:n_regions]


def sample_in_region(region: SparseRegion, n: int, seed: int = 0) -> np.ndarray:
    """(n, d) points around a region's centre, spread over about half its empty radius."""
    rng = np.random.default_rng(seed)
    d = len(region.center)
    return (region.center + rng.normal(0, region.radius / (2 * np.sqrt(d)), (n, d))).astype(np.float32)
