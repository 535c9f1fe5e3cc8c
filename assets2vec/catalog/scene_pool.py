"""From catalog assets to what the scene generator needs: mesh files, classes, sizes, weights.

The catalog stores, per asset, the dataset its views came from; the dataset's header names
the library and its manifest the mesh path and the asset's measured proportions.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from assets2vec.catalog.csv_input import first_column, open_csv, read_csv_bytes
from assets2vec.catalog.filters import effective_values
from assets2vec.catalog.store import CatalogError
from render_core.artifacts import HEADER_NAME, read_header
from render_core.assets.records import manifest_entry_problem, read_manifest
from render_core.multiview import MANIFEST
from render_core.scenes.compose import SceneAsset

UNLABELLED = "unlabelled"


def _dataset_records(source: str, cache: dict) -> tuple[Path | None, dict, str | None]:
    """(library, {asset id: record}, None) of dataset `source`, or (None, {}, why it cannot be read)."""
    if source not in cache:
        try:  # the errors of both readers name the file and what is wrong with it
            header = read_header(source, "dataset")
            library = header.get("source_library")
            if not isinstance(library, str) or not library:
                raise ValueError(f"{Path(source) / HEADER_NAME}: names no source_library (the library it was rendered from)")
            cache[source] = (Path(library), {r.id: r for r in read_manifest(Path(source) / MANIFEST)}, None)
        except (OSError, ValueError) as exc:
            cache[source] = (None, {}, f"dataset unavailable: {exc}")
    return cache[source]


def scene_asset(rec, library: Path, category: str | None, label: str) -> SceneAsset:
    """The scene generator's view of manifest record `rec` of a dataset rendered from `library`: its
    mesh file, and the real height, proportions and up axis the record measured, where it did."""
    metric = extent = None
    info = rec.meta if isinstance(rec.meta, dict) else {}
    m = info.get("extent_m")
    if isinstance(m, list) and len(m) == 3 and all(isinstance(x, (int, float)) for x in m):
        metric = float(m[1])
    norm = info.get("normalization") if isinstance(info.get("normalization"), dict) else {}
    e = norm.get("source_extent")
    if isinstance(e, list) and len(e) == 3 and all(isinstance(x, (int, float)) and x > 0 for x in e):
        extent = tuple(float(x) for x in e)
    up = str(norm.get("up_axis") or "y")
    return SceneAsset(rec.id, library / rec.path, category, label, metric, extent, up)


def scene_pool(store, rows: np.ndarray, ids: list[str], semantic_by: str, min_confidence: float = 0.5,
               unavailable: dict[str, str] | None = None) -> list[SceneAsset]:
    """SceneAssets for catalog `rows` (with their `ids`); `semantic_by` names the class attribute or tag.

    An asset whose mesh cannot even be named (its dataset's header or manifest unreadable, the asset
    missing from the manifest, or a manifest path leaving the library) is left out and, with the
    reason, put in `unavailable` ({asset id: why}). An asset whose library or mesh file is gone
    still enters the pool: the generator reports it when its mesh fails to load, like any other
    broken file."""
    known = set(store.attribute_names()) | {"family", "category"}
    if semantic_by not in known:
        raise CatalogError(f"semantic_by: no attribute or tag named {semantic_by!r}; this catalog has "
                           f"{', '.join(sorted(known))}")
    if semantic_by in ("family", "category"):
        labels = {r: v for r, (v,) in store.asset_columns(semantic_by).items() if v}
        labels.update(effective_values(store, semantic_by, min_confidence))
    else:
        labels = effective_values(store, semantic_by, min_confidence)
    meta = store.asset_columns("category", "source")
    cache: dict = {}
    pool = []
    unavailable = {} if unavailable is None else unavailable
    for r, asset_id in zip(rows, ids):
        category, source = meta[int(r)]
        library, records, why = _dataset_records(source, cache)
        rec = records.get(asset_id)
        if why is None and rec is None:
            why = f"not in {Path(source) / MANIFEST}"
        if why is None:
            why = manifest_entry_problem(Path(source) / MANIFEST, rec)
        if why is not None:
            unavailable[asset_id] = why
            continue
        pool.append(scene_asset(rec, library, category, str(labels.get(int(r), UNLABELLED))))
    return pool


def read_weights(source: str | os.PathLike | bytes | dict[str, float], ids: list[str], catalog_ids: set[str] | None = None,
                 name: str | None = None) -> np.ndarray:
    """Weights per id in `ids` (the selection) from a CSV (columns `id`/`asset_id` and `weight`: a path,
    or the file's bytes, e.g. an upload) or a dict. `name`: what errors call bytes or a dict. Ids missing
    from the file weigh 0; ids outside `catalog_ids` are an error (a file from another catalog); ids in
    the catalog but outside the selection are ignored."""
    if isinstance(source, dict):
        table = {str(k): v for k, v in source.items()}
        where = name or "weights"
    else:
        if isinstance(source, (bytes, bytearray)):
            where = name or "weights file"
            reader, cols = read_csv_bytes(bytes(source), where, "weights file")
        else:
            where = str(source)
            reader, cols = open_csv(source, "weights file")
        key = first_column(cols, "id", "asset_id")
        if key is None or "weight" not in cols:
            raise CatalogError(f"{where}: needs an 'id' (or 'asset_id') column and a 'weight' column, has {cols}")
        table = {}
        for line, row in enumerate(reader, 2):
            k = (row[key] or "").strip()
            if k in table:
                raise CatalogError(f"{where}:{line}: {k!r} appears twice")
            table[k] = row["weight"]
    index = {a: i for i, a in enumerate(ids)}
    w = np.zeros(len(ids))
    for k, v in table.items():
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise CatalogError(f"{where}: weight of {k!r} is not a number: {v!r}") from None
        if not math.isfinite(x) or x < 0:
            raise CatalogError(f"{where}: weight of {k!r} must be a finite number >= 0, got {v!r}")
        if k in index:
            w[index[k]] = x
    if catalog_ids is not None:
        unknown = [k for k in table if k not in catalog_ids]
        if unknown:
            raise CatalogError(f"{where}: {len(unknown)} ids are not in this catalog (e.g. {unknown[0]!r}); "
                               "weights from another catalog?")
    return w
