"""assets2vec catalog app: `assets2vec app [CATALOG]` (or `streamlit run catalog_app/app.py` from the
repository root, which reads .streamlit/config.toml: this machine only, uploads up to 32 MB).

Pages call only the `assets2vec.Catalog` API; the catalog and its indexes load once per
process and build (`st.cache_resource`, keyed by the time the last build finished). The catalog comes from $ASSETS2VEC_CATALOG (default demo/catalog).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="assets2vec catalog", layout="wide")
page = st.navigation([
    st.Page(HERE / "pages" / "browse.py", title="Browse", default=True),
    st.Page(HERE / "pages" / "asset.py", title="Asset"),
    st.Page(HERE / "pages" / "search.py", title="Search"),
    st.Page(HERE / "pages" / "map.py", title="Map"),
    st.Page(HERE / "pages" / "mix.py", title="Mix"),
    st.Page(HERE / "pages" / "tagging.py", title="Tagging"),
    st.Page(HERE / "pages" / "coverage.py", title="Coverage"),
    st.Page(HERE / "pages" / "scenes.py", title="Scenes"),
])
page.run()
