"""Where a downstream model fails, in latent space, and sampling weights that draw more from there.

Error scores come per asset (or per image, spread over the assets visible in it). A k-nearest-
neighbour regression over the latent space carries them to every catalog asset, so assets the
model never saw inherit the error of their neighbours. Weak regions are the neighbourhoods with
the highest predicted error, picked greedily without overlap. New sampling weights are the
prior weights reshaped by relative predicted error, with a uniform share kept so no part of
the library drops out of the next dataset.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assets2vec.catalog.csv_input import first_column, open_csv
from assets2vec.catalog.store import CatalogError


@dataclass
class WeakRegion:
    rank: int
    centre: int  # position of the asset at its centre
    members: np.ndarray  # positions of the assets in it, nearest the centre first
    predicted_error: float  # mean over members
    observed_error: float | None  # mean over members that have a score
    scored: int

    def to_json(self, ids: list[str]) -> dict:
        return {"rank": self.rank, "centre": ids[self.centre], "members": [ids[i] for i in self.members],
                "predicted_error": round(self.predicted_error, 4),
                "observed_error": None if self.observed_error is None else round(self.observed_error, 4),
                "scored_members": self.scored}


def read_errors(path: str | os.PathLike, ids: list[str], scenes: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean error per asset (n,), number of scores per asset (n,)) from a CSV.

    Columns: `asset_id` (or `id`) and `error`, one row per asset, image or crop (rows of one asset
    are averaged); or `image` and `error` with `scenes` (a SCENES folder): an image's error counts
    for every annotated asset in it, weighted by its visible pixels."""
    p = Path(path)
    reader, cols = open_csv(p, "errors file")
    key = first_column(cols, "asset_id", "id", "image")
    if key is None or "error" not in cols:
        raise CatalogError(f"{p}: needs an 'asset_id' (or 'id', or 'image' with --scenes) column and an 'error' column, has {cols}")
    if key == "image" and scenes is None:
        raise CatalogError(f"{p}: per-image errors need the SCENES folder the images came from (--scenes)")
    index = {a: i for i, a in enumerate(ids)}
    total, weight = np.zeros(len(ids)), np.zeros(len(ids))
    unknown: list[str] = []
    for line, row in enumerate(reader, 2):
        name = (row[key] or "").strip()
        try:
            e = float(row["error"])
        except (TypeError, ValueError):
            raise CatalogError(f"{p}:{line}: error {row['error']!r} is not a number") from None
        if not math.isfinite(e):
            raise CatalogError(f"{p}:{line}: error must be finite, got {row['error']!r}")
        if key == "image":
            parts = _image_assets(Path(scenes), name, p, line)
        else:
            parts = [(name, 1.0)]
        for asset, w in parts:
            if asset not in index:
                unknown.append(asset)
                continue
            total[index[asset]] += w * e
            weight[index[asset]] += w
    if unknown:
        raise CatalogError(f"{p}: {len(unknown)} rows name assets not in this catalog (e.g. {unknown[0]!r})")
    if not (weight > 0).any():
        raise CatalogError(f"{p}: no error scores")
    mean = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
    return mean, weight


def _image_assets(scenes: Path, image: str, p: Path, line: int) -> list[tuple[str, float]]:
    from render_core.scenes.folder import has_scene, index_of_image, read_record

    index = index_of_image(image)
    if index is None:
        raise CatalogError(f"{p}:{line}: image {image!r} is not a scene image name like 000012.png")
    if not has_scene(scenes, index):
        raise CatalogError(f"{p}:{line}: image {image!r} is not in {scenes}")
    rec = read_record(scenes, index)
    objs = [o for o in rec["objects"] if o.get("annotated") and o.get("asset_id")]
    total = sum(o["visible_pixels"] for o in objs) or 1
    return [(o["asset_id"], o["visible_pixels"] / total) for o in objs]


def predict_errors(X: np.ndarray, errors: np.ndarray, counts: np.ndarray, k: int = 10) -> np.ndarray:
    """(n,) error predicted for every vector of X (n, d) from the scored ones (counts > 0): the
    inverse-distance-weighted mean over its k nearest scored neighbours (itself excluded), and for
    a scored asset the average of that and its own score, so one noisy score is smoothed."""
    from sklearn.neighbors import NearestNeighbors

    scored = np.flatnonzero(counts > 0)
    if len(scored) == 1:
        return np.full(len(X), float(errors[scored[0]]))
    kk = int(min(k, len(scored) - 1))
    nn = NearestNeighbors(n_neighbors=kk + 1).fit(X[scored])
    dist, idx = nn.kneighbors(X)
    own = np.zeros(len(X), bool)
    own[scored] = True
    # Drop each scored asset's match with itself; others drop their farthest neighbour instead.
    self_hit = scored[idx] == np.arange(len(X))[:, None]
    keep = ~self_hit
    keep[~self_hit.any(1), -1] = False
    dist = dist[keep].reshape(len(X), kk)
    idx = idx[keep].reshape(len(X), kk)
    w = 1.0 / (dist + 1e-9)
    pred = (w * errors[scored][idx]).sum(1) / w.sum(1)
    pred[own] = 0.5 * pred[own] + 0.5 * errors[own]
    return pred


def weak_regions(X: np.ndarray, pred: np.ndarray, errors: np.ndarray, counts: np.ndarray, n: int = 3,
                 size: int = 10) -> list[WeakRegion]:
    """The n neighbourhoods (of `size` assets) with the highest mean predicted error, disjoint."""
    import faiss

    X = np.ascontiguousarray(X, np.float32)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    size = int(min(size, len(X)))
    _, nbrs = index.search(X, size)
    # Score every neighbourhood, then keep the best ones that share no asset.
    score = pred[nbrs].mean(1)
    used = np.zeros(len(X), bool)
    out: list[WeakRegion] = []
    for c in np.argsort(-score, kind="stable"):
        members = nbrs[c]
        if used[members].any():
            continue
        used[members] = True
        s = counts[members] > 0
        out.append(WeakRegion(len(out) + 1, int(c), members, float(pred[members].mean()),
                              float(errors[members][s].mean()) if s.any() else None, int(s.sum())))
        if len(out) == n:
            break
    return out


# Defaults of the reweighting (API, CLI): predicted errors are k-NN averages, so a weak region's is
# only modestly above the mean and only a steep exponent moves the draws. Chosen on a selection batch with
# benchmarks/scene_loop.py among sharpness/keep 2/0.3, 6/0.1 and 12/0.05 (BENCHMARKS.md, "Does
# weighting the next batch toward a model's weak spots help?").
SHARPNESS = 12.0
KEEP_UNIFORM = 0.05


def reweight(pred: np.ndarray, prior: np.ndarray | None = None, sharpness: float = SHARPNESS,
             keep_uniform: float = KEEP_UNIFORM) -> np.ndarray:
    """New sampling weights (sum 1): prior x (relative predicted error)^sharpness, mixed with a
    `keep_uniform` share spread evenly over all assets, so none can drop out."""
    if not 0 <= keep_uniform <= 1:
        raise ValueError(f"keep_uniform must be in [0, 1], got {keep_uniform}")
    if sharpness < 0:
        raise ValueError(f"sharpness must be >= 0, got {sharpness}")
    prior = np.full(len(pred), 1.0 / len(pred)) if prior is None else np.asarray(prior, float) / np.sum(prior)
    pos = np.maximum(np.asarray(pred, float), 0)
    # Relative to the largest error, so a steep exponent cannot overflow; the scale cancels below.
    rel = pos / pos.max() if pos.size and pos.max() > 0 else pos
    boosted = prior * rel**sharpness
    boosted = boosted / boosted.sum() if boosted.sum() > 0 else prior
    return keep_uniform / len(pred) + (1 - keep_uniform) * boosted


def plot_before_after(coords: np.ndarray, before: np.ndarray, after: np.ndarray, regions: list[WeakRegion],
                      path: str | os.PathLike, title: str = "") -> Path:
    """Two latent maps side by side, points sized and coloured by sampling weight, weak regions ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from assets2vec.catalog.latent_map import save_figure

    vmax = float(max(before.max(), after.max())) * len(before)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), dpi=110)
    for ax, w, name in ((axes[0], before, "before"), (axes[1], after, "after")):
        rel = w * len(w)  # 1 = the uniform share
        sc = ax.scatter(coords[:, 0], coords[:, 1], c=rel, s=8 + 30 * rel / vmax, cmap="viridis", vmin=0, vmax=vmax, linewidths=0)
        for r in regions:
            pts = coords[r.members]
            ax.scatter(pts[:, 0], pts[:, 1], s=60, facecolors="none", edgecolors="red", linewidths=0.8)
            ax.annotate(f"weak {r.rank}", coords[r.centre], textcoords="offset points", xytext=(6, 6), color="red", fontsize=9)
        share = sum(float(w[r.members].sum()) for r in regions)
        ax.set_title(f"{name}: weak regions get {share:.1%} of draws")
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(sc, ax=axes, label="draw probability x number of assets (1 = uniform)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
