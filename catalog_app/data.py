"""Shared by every page: which catalog, opened once per process and build, and the message when there is none."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from assets2vec import Catalog
from assets2vec.catalog.store import CatalogError
from render_core.artifacts import HEADER_NAME

ENV = "ASSETS2VEC_CATALOG"
DEFAULT = "demo/catalog"


def catalog_path() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT)


@st.cache_resource(show_spinner="Opening the catalog and its indexes...", max_entries=1)
def _open(path: str, build_stamp: int) -> Catalog:
    """`build_stamp` only keys the cache: a build rewrites the catalog's header last, so the app opens
    the new build on its next rerun instead of answering from the vectors it read before."""
    return Catalog.open(path, log=lambda m: None)


def _build_stamp(path: Path) -> int:
    try:
        return (path / HEADER_NAME).stat().st_mtime_ns
    except OSError:
        return 0


def data_version(cat: Catalog) -> tuple[int, int, int]:
    """Differs whenever the catalog's tags or predictions may have changed (a new build, a commit by
    another process, a write by this one): an argument for `st.cache_data` functions that read them."""
    return (_build_stamp(cat.path), *cat.store.change_stamp())


_current: tuple[tuple[str, int], Catalog] | None = None
"""The catalog the last call returned, with its (path, build stamp): while neither changes, calls
return it without Streamlit's cache lookup, which under many concurrent sessions costs more than
the query that follows it (benchmarks/load.py)."""


def catalog() -> Catalog:
    """The catalog, or a clear message on how to build one and a stop."""
    global _current
    path = catalog_path()
    key = (str(path), _build_stamp(path))
    current = _current
    if current is not None and current[0] == key:
        return current[1]
    try:
        cat = _open(*key)
        _current = (key, cat)
        return cat
    except (CatalogError, ValueError) as exc:
        st.error(f"No catalog to show: {exc}")
        st.markdown(
            "Build one with:\n\n"
            "```bash\nmake demo                                   # builds demo/catalog\n"
            "assets2vec catalog build RUN CATALOG        # or from your own trained run\n"
            "assets2vec app CATALOG\n```")
        st.stop()


def thumbnail(cat: Catalog, asset_id: str):
    """PNG bytes of an asset's thumbnail, or a grey tile when the dataset had none."""
    png = cat.thumbnail(asset_id)
    if png is None:
        import numpy as np

        return np.full((64, 64, 3), 200, np.uint8)
    return png


def tag_form(cat: Catalog, ids: list[str], key: str, label: str) -> None:
    """A form that sets one manual tag (name=value) on `ids`; widget keys are `{key}_name`, `{key}_value`."""
    with st.form(key):
        name = st.text_input(f"{label}: tag name", key=f"{key}_name").strip()
        value = st.text_input("value", key=f"{key}_value").strip()
        if st.form_submit_button(label):
            if not name or not value:
                st.error("A tag needs a name and a value.")
            else:
                cat.set_tags(name, {i: value for i in ids})
                st.success(f"Tagged {len(ids)} asset{'s' if len(ids) != 1 else ''} {name}={value}")
