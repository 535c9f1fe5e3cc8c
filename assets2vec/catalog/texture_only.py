"""The texture-only space: what is particular to an asset's texture among assets shaped like it.

The texture codes carry a little shape (armrests read from them 9-13 points over chance;
BENCHMARKS.md, "Shape left in the texture codes"). For search and tagging by texture alone, each
asset's vector here is its standardised texture vector less the mean texture vector of its
`NEIGHBOURS` nearest assets in the geometry space (`catalog.geometry`), taken from a reference
set: the catalog's assets when the fit was made, at most `MAX_REFERENCE` of them drawn with a
fixed seed. A reference asset leaves itself out. A linear fit on the geometry coordinates was
tried first and did not hold on a training it was not chosen on
(`benchmarks/texture_residual.py`); the neighbour mean also removes non-linear traces.

The fit is only the list of reference rows: their texture and geometry vectors are the
catalog's own. It is keyed to the geometry PCA and the code standardisation it was made with,
so it is redone (with every stored vector) exactly when one of them changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import faiss
import numpy as np

NEIGHBOURS = 20
# Enough assets that each one's 20 neighbours are shaped like it; small enough that the fit
# (a list of rows in the catalog's metadata) and a brute-force neighbour search stay cheap.
MAX_REFERENCE = 8000
_CHUNK = 16384  # query rows per neighbour search: bounds the gathered (chunk, neighbours, dt) reference textures


def fit_key(meta_digest: str) -> str:
    """Key of a fit made with the stored geometry PCA and code standardisation whose digest is `meta_digest`
    (`Store.meta_digest("geometry_pca", "transform")`)."""
    return hashlib.sha256(f"{meta_digest}:{NEIGHBOURS}".encode()).hexdigest()


@dataclass
class NeighbourResidual:
    reference_rows: np.ndarray  # (r,) int64 catalog rows, sorted
    key: str

    @classmethod
    def fit(cls, rows: np.ndarray, key: str, seed: int = 0) -> "NeighbourResidual":
        """Reference set from the catalog rows (n,): all of them, or `MAX_REFERENCE` drawn with `seed`."""
        rows = np.asarray(rows, np.int64)
        if len(rows) > MAX_REFERENCE:
            rows = np.random.default_rng(seed).choice(rows, MAX_REFERENCE, replace=False)
        return cls(np.sort(rows), key)

    def to_json(self) -> dict:
        return {"reference_rows": self.reference_rows.tolist(), "key": self.key, "neighbours": NEIGHBOURS}

    @classmethod
    def from_json(cls, d: dict) -> "NeighbourResidual":
        return cls(np.asarray(d["reference_rows"], np.int64), str(d["key"]))

    def transform(self, texture: np.ndarray, geometry: np.ndarray, rows: np.ndarray, catalog_rows: np.ndarray,
                  catalog_texture: np.ndarray, catalog_geometry: np.ndarray) -> np.ndarray:
        """(n, dt) texture-only vectors for texture (n, dt) and geometry (n, dg) vectors.

        `rows` (n,): the catalog row each query is (-1: not in the catalog), so a reference asset
        leaves itself out. The reference vectors are looked up in the catalog's own: rows (N,) sorted,
        texture (N, dt), geometry (N, dg)."""
        pos = np.searchsorted(catalog_rows, self.reference_rows)
        if (pos >= len(catalog_rows)).any() or not np.array_equal(catalog_rows[np.minimum(pos, len(catalog_rows) - 1)], self.reference_rows):
            raise ValueError("texture-only space: some reference assets are not among the catalog vectors given "
                             "(read before a build that refitted the space?)")
        rows = np.asarray(rows, np.int64)
        at = np.minimum(np.searchsorted(self.reference_rows, rows), len(self.reference_rows) - 1)
        self_ref = np.where(self.reference_rows[at] == rows, at, -1)
        return residual(texture, geometry, catalog_texture[pos], catalog_geometry[pos], self_ref)


def residual(texture: np.ndarray, geometry: np.ndarray, ref_texture: np.ndarray, ref_geometry: np.ndarray,
             self_ref: np.ndarray | None = None, neighbours: int | None = None) -> np.ndarray:
    """(n, dt) texture (n, dt) less the mean of `ref_texture` (r, dt) over each query's `neighbours` (default
    `NEIGHBOURS`) nearest references in geometry (n, dg) vs `ref_geometry` (r, dg). `self_ref` (n,): the
    reference index each query is (-1: none), left out of its own neighbours."""
    texture = np.asarray(texture, np.float32)
    n, r = len(texture), len(ref_texture)
    if r == 0:
        raise ValueError("texture-only space: the reference set is empty")
    self_ref = np.full(n, -1, np.int64) if self_ref is None else np.asarray(self_ref, np.int64)
    m = min(NEIGHBOURS if neighbours is None else neighbours, r - 1 if (self_ref >= 0).any() else r)
    if m < 1:
        return np.zeros_like(texture)  # one asset alone: nothing is shaped like it
    index = faiss.IndexFlatL2(ref_geometry.shape[1])
    index.add(np.ascontiguousarray(ref_geometry, np.float32))
    out = np.empty_like(texture)
    for a in range(0, n, _CHUNK):
        sl = slice(a, a + _CHUNK)
        # One extra neighbour, so a query that is itself a reference still has m others.
        _, idx = index.search(np.ascontiguousarray(geometry[sl], np.float32), min(m + 1, r))
        own = idx == self_ref[sl, None]
        # Keep the first m that are not the query itself (exact ties do not let it slip back in).
        keep = np.cumsum(~own, axis=1) <= m
        keep &= ~own
        w = keep.astype(np.float32)
        out[sl] = texture[sl] - np.einsum("qk,qkd->qd", w, ref_texture[idx]) / w.sum(1, keepdims=True)
    return out
