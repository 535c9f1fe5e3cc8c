"""`build_catalog`: create or update a CATALOG from a trained RUN.

Reads the run's code tables and asset ids, the metadata and thumbnails of each asset from
the dataset it was trained or embedded from, decodes each new asset's geometry and
appearance through the frozen network (`catalog.geometry`, `catalog.appearance`; skipped
with `decoded=False`), writes it all in one database transaction, then rewrites the FAISS
indexes. Rebuilding after
`assets2vec embed` adds only the new assets: old rows, tags and predictions stay. A run
whose network changed (retrained) replaces every latent, since old and new codes live in
different spaces. One build at a time per catalog (a lock file); readers are never blocked.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

from assets2vec.catalog.appearance import appearance_vectors, decode_appearance
from assets2vec.catalog.geometry import PROFILE_KIND, GeometryPCA, decode_profiles
from assets2vec.catalog.index import LatentIndex, gpu_available
from assets2vec.catalog.spaces import DECODED_SPACES, SPACES, TEXTURE_ONLY, SpaceTransform
from assets2vec.catalog.store import DB_NAME, CatalogError, Store
from assets2vec.catalog.texture_only import NeighbourResidual, fit_key
from assets2vec.checkpoint import CheckpointError
from assets2vec.run import Run
from render_core.artifacts import ArtifactError, make_header, read_header, sweep_stale_temps, write_header
from render_core.dataset import RenderedDataset

INDEX_DIR = "index"
LOCK_NAME = ".build.lock"
MAX_THUMBNAIL_BYTES = 1 << 20
OWN_FILES = {LOCK_NAME, INDEX_DIR, DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"}


def index_path(catalog: str | Path, space: str) -> Path:
    return Path(catalog) / INDEX_DIR / f"{space}.faiss"


@contextmanager
def build_lock(catalog: Path, log: Callable[[str], None]) -> Iterator[None]:
    catalog.mkdir(parents=True, exist_ok=True)
    with open(catalog / LOCK_NAME, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"catalog: another build of {catalog} is running; waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_catalog_folder(catalog: Path) -> None:
    if catalog.exists() and not catalog.is_dir():
        raise CatalogError(f"{catalog}: is a file; a catalog is a folder")
    if (catalog / "artifact.json").exists():
        read_header(catalog, "catalog")
    # A first build interrupted before its header leaves only its own files: continue it.
    elif catalog.exists() and any(p for p in catalog.iterdir() if p.name not in OWN_FILES):
        raise CatalogError(f"{catalog}: folder is not empty and is not a catalog; choose an empty or new folder")


def build_catalog(run: str | os.PathLike, catalog: str | os.PathLike, *, use_gpu: bool | None = None, progress: bool = True,
                  decoded: bool = True, log: Callable[[str], None] = print, device="cpu") -> dict[str, Any]:
    """Create or update `catalog` from `run`; returns a summary (added, updated, skipped, decoded, indexes).

    `decoded`: also decode the geometry and appearance of every asset that lacks them (those two spaces), and
    fill in the texture-only space (which needs the geometry); the network decodes on `device`."""
    run, catalog = Path(run), Path(catalog)
    t0 = time.time()
    opened = Run.open(run)
    state, ids, digest = opened.state, opened.asset_ids, opened.digest
    try:
        shape, texture = opened.codes()
    except CheckpointError as exc:
        raise CatalogError(str(exc)) from None
    checkpoint_name = f"{run.resolve()}@step{opened.step}"
    _check_catalog_folder(catalog)
    with build_lock(catalog, log):
        sweep_stale_temps(catalog)  # left by a build killed while writing an index
        store = Store.open(catalog, create=True)
        try:
            summary = _update(store, catalog, run, state, ids, shape, texture, digest, checkpoint_name, progress, log, decoded,
                              device)
            summary["indexes"] = write_indexes(store, catalog, use_gpu=use_gpu)
        finally:
            store.close()
        write_header(catalog, make_header("catalog", producer="assets2vec catalog build", seed=None, run=str(run.resolve())))
    summary["seconds"] = round(time.time() - t0, 2)
    log(f"catalog: {summary['assets']} assets in {catalog} (+{summary['added']} new, {summary['updated']} re-embedded); "
        f"{len(summary['missing_metadata'])} without metadata")
    return summary


def _update(store: Store, catalog: Path, run: Path, state: dict, ids: list[str], shape: np.ndarray, texture: np.ndarray,
            digest: str, checkpoint_name: str, progress: bool, log: Callable[[str], None], decoded: bool,
            device="cpu") -> dict[str, Any]:
    old_digest = store.get_meta("network_digest")
    rows_by_id = store.row_map()
    same_network = old_digest == digest
    if old_digest is not None and not same_network:
        log("catalog: the run's network differs from the one this catalog was built from; re-embedding every asset")
    have_latents = set() if not same_network else store.latent_rows()
    todo = [i for i, a in enumerate(ids) if rows_by_id.get(a) not in have_latents]
    profiles = _new_profiles(store, run, ids, shape, texture, rows_by_id, same_network, progress, device) if decoded else {}
    datasets: dict[str, RenderedDataset | str] = {}
    embedded = state.get("embedded", {})
    missing: dict[str, str] = {}
    with store.write():
        if not same_network or store.get_meta("transform") is None:
            transform = SpaceTransform.fit(shape, texture)
            store.set_meta("transform", transform.to_json())
        if not same_network:
            # Codes of assets the new run lacks live in the old network's space: drop them, keep their tags.
            keep = {rows_by_id[a] for a in ids if a in rows_by_id}
            store.drop_latents(set(rows_by_id.values()) - keep)
        next_row = store.next_row()
        new_rows = []
        for i in tqdm(todo, desc="catalog", unit="asset", disable=not progress):
            asset_id = ids[i]
            row = rows_by_id.get(asset_id)
            if row is None:
                row, next_row = next_row, next_row + 1
            source = str(embedded.get(asset_id, state["dataset"]))
            record, thumb = _metadata(datasets, source, asset_id, missing)
            if record is not None:
                store.upsert_asset(row, asset_id, record.category, record.family, source, record.params,
                                   {k: v for k, v in record.attributes.items() if k != "family"})
            else:
                store.upsert_asset(row, asset_id, None, None, source, {}, {})
            if thumb is not None:
                store.put_thumbnail(row, thumb)
            new_rows.append(row)
        if todo:
            store.put_latents(np.array(new_rows), shape[todo], texture[todo], checkpoint_name)
        if not same_network:
            store.drop_decoded()  # decoded by the old network
            # So is what was fitted on those vectors: a later build (even after a --no-decoded one) fits anew.
            store.drop_meta("geometry_pca", TEXTURE_ONLY)
        row_of = store.row_map()
        if profiles.get("geometry"):
            _store_geometry(store, {row_of[ids[i]]: p for i, p in profiles["geometry"].items()}, same_network, checkpoint_name)
        if profiles.get("appearance"):
            rows = np.array([row_of[ids[i]] for i in profiles["appearance"]], dtype=np.int64)
            prof = np.stack(list(profiles["appearance"].values()))
            store.put_decoded("appearance", rows, prof, appearance_vectors(prof), checkpoint_name)
        n_texture_only = _store_texture_only(store, checkpoint_name) if decoded else 0
        store.set_meta("network_digest", digest)
        store.set_meta("run", str(run.resolve()))
        store.set_meta("checkpoint", checkpoint_name)
        store.set_meta("dims", {"shape": int(shape.shape[1]), "texture": int(texture.shape[1])})
    added = sum(1 for i in todo if ids[i] not in rows_by_id)
    return {"assets": store.count(), "added": added, "updated": len(todo) - added, "skipped_existing": len(ids) - len(todo),
            "decoded": {**{s: len(profiles.get(s, {})) for s in DECODED_SPACES}, TEXTURE_ONLY: n_texture_only},
            "missing_metadata": missing}


def _new_profiles(store: Store, run: Path, ids: list[str], shape: np.ndarray, texture: np.ndarray, rows_by_id: dict[str, int],
                  same_network: bool, progress: bool, device="cpu") -> dict[str, dict[int, np.ndarray]]:
    """{space: {index in `ids`: profile}} for every asset without a current profile (decoded outside the transaction)."""
    need = {}
    current = {"geometry": store.get_meta("geometry_profile") == PROFILE_KIND, "appearance": True}
    for space in DECODED_SPACES:
        have = store.decoded_rows(space) if same_network and current[space] else set()
        need[space] = [i for i, a in enumerate(ids) if rows_by_id.get(a) not in have]
    if not any(need.values()):
        return {}
    model = Run.open(run).model(device)
    out = {}
    if need["geometry"]:
        out["geometry"] = dict(zip(need["geometry"], decode_profiles(model, shape[need["geometry"]], progress=progress)))
    if need["appearance"]:
        sel = need["appearance"]
        out["appearance"] = dict(zip(sel, decode_appearance(model, shape[sel], texture[sel], progress=progress)))
    return out


def _store_geometry(store: Store, new: dict[int, np.ndarray], same_network: bool, checkpoint_name: str) -> None:
    """Write new profiles and their vectors; refit the PCA (and every stored vector) when there is none yet,
    the network or the kind of profile changed, or the catalog has grown `REFIT_GROWTH` times since the fit."""
    rows = np.array(sorted(new), dtype=np.int64)
    fresh = np.stack([new[int(r)] for r in rows])
    same_kind = store.get_meta("geometry_profile") == PROFILE_KIND
    if not same_kind:  # profiles of an older kind cannot share a PCA with these
        store.drop_decoded("geometry")
        store.set_meta("geometry_profile", PROFILE_KIND)
    old = store.get_meta("geometry_pca")
    pca = GeometryPCA.from_json(old) if old is not None and same_network and same_kind else None
    old_rows, old_profiles = store.decoded("geometry", "profile")
    keep = ~np.isin(old_rows, rows)
    n_total = int(keep.sum()) + len(rows)
    if pca is None or pca.stale(n_total):
        pca = GeometryPCA.fit(np.concatenate([old_profiles[keep], fresh]) if keep.any() else fresh)
        store.set_meta("geometry_pca", pca.to_json())
        if keep.any():
            store.set_decoded_vectors("geometry", old_rows[keep], pca.transform(old_profiles[keep]))
    store.put_decoded("geometry", rows, fresh, pca.transform(fresh), checkpoint_name)


def _store_texture_only(store: Store, checkpoint_name: str) -> int:
    """Write the texture-only vector of every asset that lacks one; returns how many were written.

    Needs every asset's geometry vector (a build with decoded=False leaves the space to the next
    build that decodes). A new geometry PCA or code standardisation makes a new fit, and every
    vector is computed again; otherwise new assets go through the stored fit."""
    digest = store.meta_digest("geometry_pca", "transform")
    if digest is None:
        return 0
    key = fit_key(digest)
    old = store.get_meta(TEXTURE_ONLY)
    n_latents = store.latent_count()
    if old is not None and old.get("key") == key and len(store.decoded_rows(TEXTURE_ONLY)) == n_latents:
        return 0  # nothing new: skip reading every vector of a large catalog
    rows, shape, texture = store.latents()
    g_rows, geometry = store.decoded("geometry")
    if len(rows) == 0 or not np.array_equal(rows, g_rows):
        return 0
    fit = NeighbourResidual.from_json(old) if old is not None else None
    if fit is None or fit.key != key or not np.isin(fit.reference_rows, rows).all():
        fit = NeighbourResidual.fit(rows, key)
        store.set_meta(TEXTURE_ONLY, fit.to_json())
        store.drop_decoded(TEXTURE_ONLY)
    todo = ~np.isin(rows, np.fromiter(store.decoded_rows(TEXTURE_ONLY), np.int64))
    if not todo.any():
        return 0
    t = SpaceTransform.from_json(store.get_meta("transform")).vectors("texture", shape, texture)
    v = fit.transform(t[todo], geometry[todo], rows[todo], rows, t, geometry)
    store.put_decoded(TEXTURE_ONLY, rows[todo], np.zeros((int(todo.sum()), 0), np.uint8), v, checkpoint_name)
    return int(todo.sum())


def texture_only_current(store: Store, digest: str | None) -> bool:
    """Whether the stored texture-only fit matches `digest`, the catalog's `meta_digest("geometry_pca", "transform")`."""
    d = store.get_meta(TEXTURE_ONLY)
    return d is not None and digest is not None and d.get("key") == fit_key(digest)


def _metadata(datasets: dict, source: str, asset_id: str, missing: dict[str, str]):
    if source not in datasets:
        try:
            datasets[source] = RenderedDataset(source)
        except (ArtifactError, ValueError, OSError) as exc:
            datasets[source] = str(exc)  # why it is unavailable, said once per asset below
    ds = datasets[source]
    if isinstance(ds, str):
        missing[asset_id] = f"dataset unavailable: {ds}"
        return None, None
    try:
        record = ds.record(asset_id)
    except KeyError:
        missing[asset_id] = f"not in dataset {source}"
        return None, None
    thumb = None
    p = ds.root / "thumbs" / f"{asset_id}.png"
    if p.is_file() and p.stat().st_size <= MAX_THUMBNAIL_BYTES:
        thumb = p.read_bytes()
    return record, thumb


def load_vectors(store: Store, fit_digest: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], SpaceTransform]:
    """(rows (n,), {space: (n, d) vectors}, transform) from the database, in row order. `fit_digest`: the
    caller's `store.meta_digest("geometry_pca", "transform")` when it has one (hashing a PCA's metadata
    is most of the cost of opening a catalog), read here otherwise.

    A decoded space ("geometry", "appearance", "texture_only") is included only when every asset has its
    vector (and texture_only only with a current fit). The tables are read in one snapshot (`Store.read`)."""
    with store.read():
        rows, shape, texture = store.latents()
        t = store.get_meta("transform")
        if t is None or len(rows) == 0:
            raise CatalogError(f"{store.path.parent}: catalog is empty; build it with 'assets2vec catalog build RUN {store.path.parent}'")
        transform = SpaceTransform.from_json(t)
        vectors = {s: transform.vectors(s, shape, texture) for s in SPACES}
        for space in DECODED_SPACES + (TEXTURE_ONLY,):
            if space == TEXTURE_ONLY and not texture_only_current(store, fit_digest or store.meta_digest("geometry_pca", "transform")):
                continue
            d_rows, d = store.decoded(space)
            if len(d_rows) == len(rows) and np.array_equal(d_rows, rows):
                vectors[space] = np.ascontiguousarray(d, dtype=np.float32)
    return rows, vectors, transform


def write_indexes(store: Store, catalog: Path, use_gpu: bool | None = None) -> dict[str, str]:
    """Rebuild the index files (one per space the catalog has); `use_gpu` None builds flat indexes on the GPU when FAISS has one."""
    use_gpu = gpu_available() if use_gpu is None else use_gpu
    _, vectors, _ = load_vectors(store)
    kinds = {}
    for space, x in vectors.items():
        index = LatentIndex(x.shape[1], use_gpu=use_gpu)
        index.add(x)
        index.write(index_path(catalog, space))
        kinds[space] = index.built_kind
    return kinds
