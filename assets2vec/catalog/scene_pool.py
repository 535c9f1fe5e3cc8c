"""From catalog assets to what the scene generator needs: mesh files, classes, sizes, weights.

The catalog stores, per asset, the dataset its views came from; the dataset's header names
the library and its manifest the mesh path and the asset's measured proportions.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from assets2vec.catalog.csv_input import first_column, open_csv
from assets2vec.catalog.filters import effective_values
from assets2vec.catalog.store import CatalogError
from render_core.artifacts import read_header
from render_core.assets.records import read_manifest
from render_core.scenes.compose import SceneAsset

UNLABELLED = "unlabelled"


def _dataset_records(source: str, cache: dict) -> tuple[Path | None, dict]:
    if source not in cache:
        try:
            header = read_header(source, "dataset")
            library = Path(header["source_library"])
            cache[source] = (library, {r.id: r for r in read_manifest(Path(source) / "manifest.jsonl")})
        except (OSError, ValueError, KeyError):
            cache[source] = (None, {})
    return cache[source]


def scene_pool(store, rows: np.ndarray, ids: list[str], semantic_by: str, min_confidence: float = 0.5) -> list[SceneAsset]:
    """SceneAssets for catalog `rows` (with their `ids`); `semantic_by` names the class attribute or tag.
    An asset whose dataset or library is gone still enters the pool: the generator reports it
    when its mesh fails to load, like any other broken file."""
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
    for r, asset_id in zip(rows, ids):
        category, source = meta[int(r)]
        library, records = _dataset_records(source, cache)
        rec = records.get(asset_id)
        path = (library / rec.path) if (library is not None and rec is not None) else Path(source) / "missing" / asset_id
        metric = extent = None
        up = "y"
        if rec is not None:
            m = rec.meta.get("extent_m")
            if isinstance(m, list) and len(m) == 3 and all(isinstance(x, (int, float)) for x in m):
                metric = float(m[1])
            e = (rec.meta.get("normalization") or {}).get("source_extent")
            if isinstance(e, list) and len(e) == 3 and all(isinstance(x, (int, float)) and x > 0 for x in e):
                extent = tuple(float(x) for x in e)
            up = str((rec.meta.get("normalization") or {}).get("up_axis") or "y")
        pool.append(SceneAsset(asset_id, path, category, str(labels.get(int(r), UNLABELLED)), metric, extent, up))
    return pool


def read_weights(source: str | os.PathLike | dict[str, float], ids: list[str], catalog_ids: set[str] | None = None) -> np.ndarray:
    """Weights per id in `ids` (the selection) from a CSV (columns `id`/`asset_id` and `weight`) or
    a dict. Ids missing from the file weigh 0; ids outside `catalog_ids` are an error (a file
    from another catalog); ids in the catalog but outside the selection are ignored."""
    if isinstance(source, dict):
        table = {str(k): v for k, v in source.items()}
        where = "weights"
    else:
        p = Path(source)
        where = str(p)
        reader, cols = open_csv(p, "weights file")
        key = first_column(cols, "id", "asset_id")
        if key is None or "weight" not in cols:
            raise CatalogError(f"{p}: needs an 'id' (or 'asset_id') column and a 'weight' column, has {cols}")
        table = {}
        for line, row in enumerate(reader, 2):
            k = (row[key] or "").strip()
            if k in table:
                raise CatalogError(f"{p}:{line}: {k!r} appears twice")
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
