"""`LatentIndex`: a FAISS index over one space's vectors, exact when small, HNSW when large.

FAISS-style interface: `add(x)` then `search(x, k) -> (D, I)` with float32 C-contiguous
queries, squared L2 distances, and -1 where fewer than k results exist; `I` holds positions
0..n-1 in the order vectors were added (the catalog adds them in row order).

Size policy (measured in benchmarks/search_scale.py): exact `IndexFlatL2` up to
`EXACT_LIMIT` vectors, above it `IndexHNSWFlat` (M=32, efConstruction=80, efSearch=64).
Filtered search goes through `restrict(positions)`, which chooses per filter: a subset up
to `SUBSET_EXACT_LIMIT` vectors is copied once into its own exact index; a larger subset
searches the HNSW graph with a bitmap selector and an efSearch raised as the subset shrinks
(efSearch = 64 / fraction^0.25).
Index files are written atomically with a JSON sidecar holding their SHA-256 and the
digest of the vectors they index, so a corrupt, truncated or stale file is detected before
FAISS reads it and the catalog rebuilds it from the database.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from render_core.artifacts import atomic_write_bytes, atomic_write_json

EXACT_LIMIT = 50_000
SUBSET_EXACT_LIMIT = 30_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
# FAISS's GPU k-selection handles k up to 2048 (GPU_MAX_SELECTION_K); larger k is answered on the CPU.
GPU_MAX_K = 2048

# One FAISS GPU resource object per process: each reserves its own scratch memory on the device
# the model shares, and GPU indexes are not thread-safe even for search (Streamlit serves each
# session in its own thread), so their searches are serialised.
_GPU_RESOURCES = None
_GPU_LOCK = threading.Lock()


def _gpu_resources():
    global _GPU_RESOURCES
    with _GPU_LOCK:
        if _GPU_RESOURCES is None:
            _GPU_RESOURCES = faiss.StandardGpuResources()
        return _GPU_RESOURCES


class IndexFileError(ValueError):
    """An index file is missing, corrupt or does not match the catalog's vectors."""


def vectors_digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _check_queries(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"query vectors have shape {tuple(x.shape)}; this index holds {dim}-dimensional vectors")
    if not np.isfinite(x).all():
        raise ValueError("query vectors contain NaN or infinite values")
    return np.ascontiguousarray(x)


def _pad(D: np.ndarray, I: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if I.shape[1] >= k:
        return D, I
    n = k - I.shape[1]
    return (np.hstack([D, np.full((len(D), n), np.inf, np.float32)]), np.hstack([I, np.full((len(I), n), -1, np.int64)]))


@dataclass
class LatentIndex:
    dim: int
    kind: str = "auto"  # "flat", "hnsw" or "auto" (by size at add time)
    use_gpu: bool = False

    def __post_init__(self):
        if self.kind not in ("auto", "flat", "hnsw"):
            raise ValueError(f"unknown index kind {self.kind!r}; choose auto, flat or hnsw")
        self.vectors = np.zeros((0, self.dim), np.float32)
        self.index: faiss.Index | None = None
        self.built_kind: str | None = None
        self.on_gpu = False
        self._cpu_index: faiss.Index | None = None  # the CPU twin of a GPU index: for k > GPU_MAX_K and for writing

    @property
    def ntotal(self) -> int:
        return len(self.vectors)

    def add(self, x: np.ndarray) -> None:
        """Add vectors (n, dim); the index is rebuilt, since HNSW graphs are built in one pass here."""
        x = _check_queries(x, self.dim)
        self.vectors = np.ascontiguousarray(np.vstack([self.vectors, x]))
        self._build()

    def _build(self) -> None:
        kind = self.kind
        if kind == "auto":
            kind = "flat" if self.ntotal <= EXACT_LIMIT else "hnsw"
        if kind == "flat":
            index = faiss.IndexFlatL2(self.dim)
        else:
            index = faiss.IndexHNSWFlat(self.dim, HNSW_M)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        if self.ntotal:
            index.add(self.vectors)
        self.index, self.built_kind = self._maybe_gpu(index), kind

    def _maybe_gpu(self, index):
        # FAISS runs flat indexes on the GPU; HNSW stays on the CPU (FAISS has no GPU HNSW).
        self.on_gpu = bool(self.use_gpu and isinstance(index, faiss.IndexFlatL2) and gpu_available())
        self._cpu_index = index if self.on_gpu else None
        return faiss.index_cpu_to_gpu(_gpu_resources(), 0, index) if self.on_gpu else index

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, I), each (nq, k): squared L2 distances and positions, nearest first, -1 padded."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        x = _check_queries(x, self.dim)
        if self.ntotal == 0:
            return _pad(np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64), k)
        kk = min(k, self.ntotal)
        if not self.on_gpu:
            D, I = self.index.search(x, kk)
        elif kk > GPU_MAX_K:
            D, I = self._cpu_index.search(x, kk)
        else:
            with _GPU_LOCK:
                D, I = self.index.search(x, kk)
        return _pad(D, I, k)

    def restrict(self, positions: np.ndarray) -> "RestrictedIndex":
        """A searchable view holding only `positions`; build once per filter, query many times."""
        positions = np.unique(np.asarray(positions, dtype=np.int64))
        if len(positions) and (positions[0] < 0 or positions[-1] >= self.ntotal):
            raise ValueError(f"positions must lie in [0, {self.ntotal})")
        return RestrictedIndex(self, positions)

    # -- files ------------------------------------------------------------------------------------
    def write(self, path: str | Path) -> None:
        """Write `path` (FAISS bytes) and `path.json` (sidecar) atomically."""
        path = Path(path)
        cpu = self._cpu_index if self.on_gpu else self.index
        data = faiss.serialize_index(cpu).tobytes()
        atomic_write_bytes(path, data)
        atomic_write_json(path.with_suffix(path.suffix + ".json"), {
            "kind": self.built_kind, "dim": self.dim, "count": self.ntotal, "sha256": hashlib.sha256(data).hexdigest(),
            "vectors_sha256": vectors_digest(self.vectors)})

    @classmethod
    def read(cls, path: str | Path, vectors: np.ndarray, use_gpu: bool = False) -> "LatentIndex":
        """Load an index written by `write` for exactly these `vectors` (n, d); anything else is `IndexFileError`."""
        path = Path(path)
        side = path.with_suffix(path.suffix + ".json")
        try:
            meta = json.loads(side.read_text("utf-8"))
            data = path.read_bytes()
        except (OSError, ValueError) as exc:
            raise IndexFileError(f"{path}: missing or unreadable ({exc})") from exc
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise IndexFileError(f"{path}: checksum mismatch (file corrupt or partly written)")
        if meta.get("count") != len(vectors) or meta.get("vectors_sha256") != vectors_digest(vectors):
            raise IndexFileError(f"{path}: indexes other vectors than the catalog holds (stale)")
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFileError(f"{path}: FAISS cannot read it ({str(exc).splitlines()[0]})") from exc
        out = cls(int(meta["dim"]), meta["kind"], use_gpu)
        out.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if meta["kind"] == "hnsw":
            index.hnsw.efSearch = HNSW_EF_SEARCH
        out.index, out.built_kind = out._maybe_gpu(index), meta["kind"]
        return out


class RestrictedIndex:
    """Search within a subset of a `LatentIndex`; `I` holds positions of the full index."""

    def __init__(self, parent: LatentIndex, positions: np.ndarray):
        self.parent = parent
        self.positions = positions
        self.fraction = len(positions) / max(parent.ntotal, 1)
        if parent.built_kind == "flat" or len(positions) <= SUBSET_EXACT_LIMIT:
            self.mode = "exact"
            self.sub = faiss.IndexFlatL2(parent.dim)
            if len(positions):
                self.sub.add(np.ascontiguousarray(parent.vectors[positions]))
        else:
            self.mode = "hnsw-filtered"
            mask = np.zeros(parent.ntotal, dtype=bool)
            mask[positions] = True
            self._bitmap = np.packbits(mask, bitorder="little")  # kept alive: FAISS holds a raw pointer
            self._selector = faiss.IDSelectorBitmap(parent.ntotal, faiss.swig_ptr(self._bitmap))
            # A sparse subset leaves fewer admissible nodes per hop; widen the beam to keep recall.
            # Measured on 1M clustered 64-d latents: fraction^-0.25 keeps recall@10 >= 0.98 from 5 % up
            # (a 1/sqrt rule reached 202 at 10 % and doubled p99 for no recall gain).
            self.ef_search = int(min(1024, np.ceil(HNSW_EF_SEARCH * max(self.fraction, 1e-3) ** -0.25)))
            self.params = faiss.SearchParametersHNSW(sel=self._selector, efSearch=self.ef_search)

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        x = _check_queries(x, self.parent.dim)
        n = len(self.positions)
        if n == 0:
            return _pad(np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64), k)
        if self.mode == "exact":
            D, I = self.sub.search(x, min(k, n))
            I = np.where(I >= 0, self.positions[np.maximum(I, 0)], -1)
            return _pad(D, I, k)
        D, I = self.parent.index.search(x, min(k, n), params=self.params)
        return _pad(D, I, k)
