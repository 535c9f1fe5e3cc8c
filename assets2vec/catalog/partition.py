"""`Partition`: k-means lists over a large index's vectors, the structure filtered search runs on.

A filter ("family = chair and legs = 4") keeps a subset whose members are usually
concentrated in a few regions of latent space. A graph index searched with the filter as a
bitmap walks through non-members and loses recall when the subset is small or correlated
with the latent space; a flat scan of a large subset is slow. Instead every vector is assigned
once, at build time, to one of `nlist` k-means lists; a filter then builds an inverted-file
index holding only its members (`restricted_ivf`), in the lists they already belong to, and
probes the lists nearest to the query. Its cost is bounded by the lists probed, so the latency
tail is as narrow as the median.

The partition stores, per vector, its list and squared distance to the list's centroid: the
latter gives each subset a scale, so a query far from every member (a chair query filtered to
tables) is recognised and searched more widely (see `RestrictedIndex`).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import faiss
import numpy as np

KMEANS_ITERATIONS = 20
# k-means samples at most this many training points per centroid: enough for stable lists,
# and it keeps the build of a million-vector partition under a minute on two cores.
POINTS_PER_CENTROID = 64


def list_count(n: int) -> int:
    """About 2·sqrt(n) lists, a power of two between 64 and 4096."""
    return int(np.clip(2 ** round(np.log2(max(2 * np.sqrt(max(n, 1)), 1))), 64, 4096))


@dataclass
class Partition:
    centroids: np.ndarray  # (nlist, d) float32
    lists: np.ndarray  # (n,) int32: the list of each vector
    residuals: np.ndarray  # (n,) float32: squared distance of each vector to its list's centroid

    @classmethod
    def build(cls, x: np.ndarray, seed: int = 0) -> "Partition":
        n, d = x.shape
        # FAISS k-means wants at least 39 points per centroid; tiny indexes get fewer lists.
        nlist = max(1, min(list_count(n), n // 39))
        rng = np.random.default_rng(seed)
        sample = x if n <= nlist * POINTS_PER_CENTROID else x[np.sort(rng.choice(n, nlist * POINTS_PER_CENTROID, replace=False))]
        km = faiss.Kmeans(d, nlist, niter=KMEANS_ITERATIONS, seed=seed, max_points_per_centroid=POINTS_PER_CENTROID)
        km.train(np.ascontiguousarray(sample, dtype=np.float32))
        D, I = km.index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
        return cls(np.ascontiguousarray(km.centroids, np.float32), I[:, 0].astype(np.int32), D[:, 0].astype(np.float32))

    @property
    def nlist(self) -> int:
        return len(self.centroids)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, centroids=self.centroids, lists=self.lists, residuals=self.residuals)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, n: int, d: int) -> "Partition":
        """Parse `to_bytes` output for n vectors of dimension d; anything else is ValueError."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            c, lists, res = z["centroids"], z["lists"], z["residuals"]
        if c.ndim != 2 or c.shape[1] != d or lists.shape != (n,) or res.shape != (n,):
            raise ValueError("partition arrays do not match the index's vectors")
        if len(lists) and (lists.min() < 0 or lists.max() >= len(c)):
            raise ValueError("partition list numbers out of range")
        return cls(c.astype(np.float32), lists.astype(np.int32), res.astype(np.float32))

    def digest(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()


def restricted_ivf(partition: Partition, vectors: np.ndarray, positions: np.ndarray) -> tuple[faiss.IndexIVFFlat, np.ndarray]:
    """An `IndexIVFFlat` holding only `positions` (ids = positions), over the lists they occupy.

    Returns the index and the member count of each of its lists. The quantizer holds only the
    occupied lists' centroids, so every probe lands on a list with members in it.
    """
    d = vectors.shape[1]
    occupied, counts = np.unique(partition.lists[positions], return_counts=True)
    quantizer = faiss.IndexFlatL2(d)
    quantizer.add(partition.centroids[occupied])
    ivf = faiss.IndexIVFFlat(quantizer, d, len(occupied))
    ivf.referenced_objects = [quantizer]  # the Python wrapper must keep the quantizer alive
    ivf.is_trained = True
    remap = np.full(partition.nlist, -1, np.int64)
    remap[occupied] = np.arange(len(occupied))
    local = remap[partition.lists[positions]]
    order = np.argsort(local, kind="stable")
    # Named arrays: FAISS copies from raw pointers, which must outlive the calls.
    ids = np.ascontiguousarray(positions[order], dtype=np.int64)
    codes = np.ascontiguousarray(vectors[ids], dtype=np.float32)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for j in range(len(occupied)):
        lo, hi = int(bounds[j]), int(bounds[j + 1])
        ivf.invlists.add_entries(j, hi - lo, faiss.swig_ptr(ids[lo:hi]), faiss.swig_ptr(codes[lo:hi].view(np.uint8)))
    ivf.ntotal = len(ids)
    return ivf, counts
