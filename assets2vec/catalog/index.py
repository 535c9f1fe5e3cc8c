"""`LatentIndex`: a FAISS index over one space's vectors, exact when small, HNSW when large.

FAISS-style interface: `add(x)` then `search(x, k) -> (D, I)` with float32 C-contiguous
queries, squared L2 distances, and -1 where fewer than k results exist; `I` holds positions
0..n-1 in the order vectors were added (the catalog adds them in row order).

Size policy: exact `IndexFlatL2` up to `EXACT_LIMIT` vectors, above it `IndexHNSWFlat`
(M=32, efConstruction=80, efSearch=64) for unfiltered queries plus a k-means `Partition` for
filtered ones. `restrict(positions)` builds a view once per filter and chooses, from a cost
model of the two (`predicted_cost_us`, constants measured by benchmarks/filtered_search.py),
between a flat scan of the copied subset and an inverted file holding only the subset's
members in their partition lists; per query, a query far from every member is searched
more widely (see `RestrictedIndex`).
Index files are written atomically with a JSON sidecar holding their SHA-256 and the
digest of the vectors they index, so a corrupt, truncated or stale file is detected before
FAISS reads it and the catalog rebuilds it from the database.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from assets2vec.catalog.partition import Partition, restricted_ivf
from assets2vec.cpus import usable_cores
from render_core.artifacts import atomic_write_bytes, atomic_write_json

EXACT_LIMIT = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
# FAISS's GPU k-selection handles k up to 2048 (GPU_MAX_SELECTION_K); larger k is answered on the CPU.
GPU_MAX_K = 2048

# Filtered search (RestrictedIndex). An inverted-file probe scans at least NPROBE_MIN lists and
# enough lists to see about CANDIDATES members: fewer lists lose recall on subsets concentrated in
# a few regions, fewer candidates lose it on sparse random subsets.
NPROBE_MIN = 12
CANDIDATES = 600
# A query whose nearest list holding members lies further (squared distance) than FAR_FACTOR x both the
# subset's median member-to-centroid distance and the query's distance to its own nearest list is
# outside the subset's regions: its true neighbours are spread over many equidistant lists, so it
# is searched with WIDE_NPROBE lists (or exactly, if cheaper).
FAR_FACTOR = 4.0
WIDE_NPROBE = 64
# Single-query costs on one core, in microseconds (fitted by benchmarks/filtered_search.py):
# a flat scan per vector; an inverted-file probe per scanned vector, per probed list and per
# quantizer centroid; and the fixed cost of one FAISS call from Python.
COST_US = {"flat_vector": 0.012, "ivf_vector": 0.035, "ivf_list": 0.3, "centroid": 0.01, "call": 8.0}

# One FAISS GPU resource object per process: each reserves its own scratch memory on the device
# the model shares, and GPU indexes are not thread-safe even for search (Streamlit serves each
# session in its own thread), so their searches are serialised.
_GPU_RESOURCES = None
_GPU_LOCK = threading.Lock()

# Admission control for CPU searches: at most one query per usable core but one runs at a time.
# More concurrent queries than that (the app serves each session in its own thread) would be
# time-sliced by the OS mid-query, and a preempted sub-millisecond query waits a whole scheduler
# slice; queued, it waits a fraction of a millisecond. The core left free runs the Python around
# the queries, which holds the GIL. Slots are handed over in arrival order: with a plain
# semaphore the thread that just released a slot takes it straight back and a waiter can starve.


class FairSlots:
    """A FIFO counting semaphore: `with slots:` runs at most `n` bodies at once, in arrival order."""

    def __init__(self, n: int):
        self._free = n
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()

    def __enter__(self) -> None:
        with self._mutex:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            ticket = threading.Lock()
            ticket.acquire()
            self._waiters.append(ticket)
        ticket.acquire()  # blocks, without the GIL, until a finishing query hands over its slot

    def __exit__(self, *exc) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1


_QUERY_SLOTS = FairSlots(max(1, usable_cores() - 1))


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
        self.partition: Partition | None = None  # HNSW indexes only: the lists filtered search runs on
        self._partition_quantizer: faiss.IndexFlatL2 | None = None

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
        self.partition = Partition.build(self.vectors) if kind == "hnsw" and self.ntotal else None
        self._partition_quantizer = None
        self.index, self.built_kind = self._maybe_gpu(index), kind

    def _maybe_gpu(self, index):
        # FAISS runs flat indexes on the GPU; HNSW stays on the CPU (FAISS has no GPU HNSW).
        self.on_gpu = bool(self.use_gpu and isinstance(index, faiss.IndexFlatL2) and gpu_available())
        self._cpu_index = index if self.on_gpu else None
        return faiss.index_cpu_to_gpu(_gpu_resources(), 0, index) if self.on_gpu else index

    def partition_quantizer(self) -> faiss.IndexFlatL2:
        """A flat index over the partition's centroids (built on first use)."""
        if self._partition_quantizer is None:
            q = faiss.IndexFlatL2(self.dim)
            q.add(self.partition.centroids)
            self._partition_quantizer = q
        return self._partition_quantizer

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, I), each (nq, k): squared L2 distances and positions, nearest first, -1 padded."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        x = _check_queries(x, self.dim)
        if self.ntotal == 0:
            return _pad(np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64), k)
        kk = min(k, self.ntotal)
        if not self.on_gpu or kk > GPU_MAX_K:
            with _QUERY_SLOTS:
                D, I = (self._cpu_index if self.on_gpu else self.index).search(x, kk)
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
        meta = {"kind": self.built_kind, "dim": self.dim, "count": self.ntotal, "sha256": hashlib.sha256(data).hexdigest(),
                "vectors_sha256": vectors_digest(self.vectors)}
        if self.partition is not None:
            lists = self.partition.to_bytes()
            atomic_write_bytes(_partition_path(path), lists)
            meta["partition_sha256"] = hashlib.sha256(lists).hexdigest()
        atomic_write_bytes(path, data)
        # The sidecar goes last: it vouches for both files, so a crash between writes reads as stale.
        atomic_write_json(path.with_suffix(path.suffix + ".json"), meta)

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
            out.partition = _read_partition(path, meta, out.vectors)
        out.index, out.built_kind = out._maybe_gpu(index), meta["kind"]
        return out


def _partition_path(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".lists")


def _read_partition(path: Path, meta: dict, vectors: np.ndarray) -> Partition:
    p = _partition_path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise IndexFileError(f"{p}: missing or unreadable ({exc})") from exc
    if hashlib.sha256(data).hexdigest() != meta.get("partition_sha256"):
        raise IndexFileError(f"{p}: checksum mismatch (file corrupt, partly written or from an older version)")
    try:
        return Partition.from_bytes(data, len(vectors), vectors.shape[1])
    except (ValueError, KeyError, OSError) as exc:
        raise IndexFileError(f"{p}: not a partition of these vectors ({exc})") from exc


def predicted_cost_us(kept: int, occupied_lists: int, nprobe: int, per_list: float) -> dict[str, float]:
    """Predicted single-query latency (µs) of a flat scan of `kept` vectors and of an inverted-file
    probe of `nprobe` of `occupied_lists` lists holding `per_list` members on average."""
    c = COST_US
    return {"exact": c["call"] + c["flat_vector"] * kept,
            "partition": c["call"] + c["centroid"] * occupied_lists + nprobe * (c["ivf_list"] + c["ivf_vector"] * per_list)}


class RestrictedIndex:
    """Search within a subset of a `LatentIndex`; `I` holds positions of the full index.

    `mode` is "exact" (a flat copy of the subset) or "partition" (an inverted file of the subset's
    members in the parent's k-means lists), whichever `predicted_cost_us` says is cheaper for
    this subset. In "partition" mode each query probes `nprobe` lists; a query whose nearest
    list holding members is far (see FAR_FACTOR), or that found fewer than k members, is
    searched again with `wide_nprobe` lists, or exactly when that is predicted cheaper; one that
    still found fewer than k members (a subset thinly spread over more lists than that) is
    searched exactly, so a filter never answers fewer than min(k, subset size) assets.
    """

    def __init__(self, parent: LatentIndex, positions: np.ndarray):
        self.parent = parent
        self.positions = positions
        self.fraction = len(positions) / max(parent.ntotal, 1)
        self.mode = "exact"
        self.far_exact = False  # partition mode: queries outside the subset go to the flat copy
        self._exact: faiss.Index | None = None
        part = parent.partition
        if parent.built_kind == "hnsw" and part is not None and len(positions):
            occupied = len(np.unique(part.lists[positions]))
            per_list = len(positions) / occupied
            self.nprobe = int(min(occupied, max(NPROBE_MIN, np.ceil(CANDIDATES / per_list))))
            self.wide_nprobe = int(min(occupied, max(WIDE_NPROBE, 4 * self.nprobe)))
            self.cost_us = predicted_cost_us(len(positions), occupied, self.nprobe, per_list)
            wide = predicted_cost_us(len(positions), occupied, self.wide_nprobe, per_list)
            if self.cost_us["partition"] < self.cost_us["exact"]:
                self.mode = "partition"
                self.ivf, _ = restricted_ivf(part, parent.vectors, positions)
                self.ivf.nprobe = self.nprobe  # fixed for the view's life: searches never change it
                self.wide_params = faiss.SearchParametersIVF(nprobe=self.wide_nprobe)
                # A subset in every list has no outside: only a sparse corner, which the first probe covers.
                self.far_d2 = FAR_FACTOR * float(np.median(part.residuals[positions])) if occupied < part.nlist else None
                self.far_exact = wide["exact"] < wide["partition"]
        if self.mode == "exact" or self.far_exact:
            self._exact = faiss.IndexFlatL2(parent.dim)
            if len(positions):
                self._exact.add(np.ascontiguousarray(parent.vectors[positions]))

    def _search_exact(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._exact is None:  # partition mode: built by the first query the probes leave short
            exact = faiss.IndexFlatL2(self.parent.dim)
            exact.add(np.ascontiguousarray(self.parent.vectors[self.positions]))
            self._exact = exact
        with _QUERY_SLOTS:
            D, I = self._exact.search(x, k)
        return D, np.where(I >= 0, self.positions[np.maximum(I, 0)], -1)

    def outside(self, x: np.ndarray, nearest_member_list_d2: np.ndarray) -> np.ndarray:
        """Which queries lie outside the subset's regions: far from every list holding members, and
        much further than from their own nearest list (a sparse corner of the subset is not outside)."""
        wide = np.zeros(len(x), bool)
        if self.far_d2 is None:
            return wide
        cand = np.flatnonzero(nearest_member_list_d2 > self.far_d2)
        if len(cand):
            own = self.parent.partition_quantizer().search(np.ascontiguousarray(x[cand]), 1)[0][:, 0]
            wide[cand] = nearest_member_list_d2[cand] > FAR_FACTOR * own
        return wide

    def _search_partition(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(x)
        D, I = np.empty((n, k), np.float32), np.empty((n, k), np.int64)
        with _QUERY_SLOTS:
            Dq, Iq = self.ivf.quantizer.search(x, self.nprobe)
            wide = self.outside(x, Dq[:, 0])
            near = np.flatnonzero(~wide)
            if len(near):
                # Named arrays: FAISS reads raw pointers, which must outlive the call.
                xn, Iqn, Dqn = (np.ascontiguousarray(a[near]) for a in (x, Iq, Dq))
                Dn, In = np.empty((len(near), k), np.float32), np.empty((len(near), k), np.int64)
                self.ivf.search_preassigned_c(len(near), faiss.swig_ptr(xn), k, faiss.swig_ptr(Iqn), faiss.swig_ptr(Dqn),
                                              faiss.swig_ptr(Dn), faiss.swig_ptr(In), False)
                D[near], I[near] = Dn, In
                wide[near[In[:, -1] < 0]] = True  # found fewer than k members in the probed lists
        if wide.any():
            xw = np.ascontiguousarray(x[wide])
            if self.far_exact:
                D[wide], I[wide] = self._search_exact(xw, k)
            else:
                with _QUERY_SLOTS:
                    D[wide], I[wide] = self.ivf.search(xw, k, params=self.wide_params)
                short = np.flatnonzero(I[:, -1] < 0)  # k <= subset size here: these missed members
                if len(short):
                    D[short], I[short] = self._search_exact(np.ascontiguousarray(x[short]), k)
        return D, I

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        x = _check_queries(x, self.parent.dim)
        n = len(self.positions)
        if n == 0:
            return _pad(np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64), k)
        kk = min(k, n)
        if self.mode == "exact":
            return _pad(*self._search_exact(x, kk), k)
        return _pad(*self._search_partition(x, kk), k)
