"""2D maps of a latent space (PCA, or t-SNE for catalogs small enough), and their plot."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

METHODS = ("pca", "tsne")
TSNE_LIMIT = 20_000  # t-SNE is O(n log n) with large constants: above this the map falls back to PCA


def project(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates of vectors x (n, d)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method not in METHODS:
        raise ValueError(f"unknown map method {method!r}; choose one of {', '.join(METHODS)}")
    x = np.asarray(x, np.float32)
    n = len(x)
    if n < 3:
        return np.zeros((n, 2), np.float32) if n < 2 else np.c_[x[:, :1] - x[:, :1].mean(), np.zeros(n)].astype(np.float32)
    if method == "tsne" and n <= TSNE_LIMIT:
        perplexity = float(min(30.0, (n - 1) / 3))
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x).astype(np.float32)
    return PCA(2, random_state=seed).fit_transform(x).astype(np.float32)


def plot_map(coords: np.ndarray, labels: list[str | None], path: str | os.PathLike, *, title: str = "",
             highlights: dict[str, np.ndarray] | None = None) -> Path:
    """Scatter `coords` (n, 2) coloured by `labels` (None = unknown, grey); `highlights` maps a
    legend name to (m, 2) points drawn as large markers (e.g. sparse-region centres). PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    labels = ["unknown" if v is None else str(v) for v in labels]
    names = sorted(set(labels) - {"unknown"}) + (["unknown"] if "unknown" in labels else [])
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    arr = np.array(labels)
    for i, name in enumerate(names):
        sel = arr == name
        colour = "#bbbbbb" if name == "unknown" else cmap(i % cmap.N)
        ax.scatter(coords[sel, 0], coords[sel, 1], s=14, color=colour, label=f"{name} ({sel.sum()})", alpha=0.85, linewidths=0)
    for name, pts in (highlights or {}).items():
        ax.scatter(pts[:, 0], pts[:, 1], s=160, marker="*", color="black", label=name)
        for j, p in enumerate(pts, 1):
            ax.annotate(str(j), p, textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_title(title)
    ax.set_xticks([]), ax.set_yticks([])
    if len(names) <= 25:
        ax.legend(fontsize=7, loc="best", markerscale=1.2, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure as PNG atomically (a reader never sees half a file, and two writers of
    the same path never share a temporary file) and close it."""
    import matplotlib.pyplot as plt

    from render_core.artifacts import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
