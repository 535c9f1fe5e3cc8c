"""Browse: a thumbnail grid with filters on family and attributes, paged."""

from __future__ import annotations

import streamlit as st

from catalog_app.data import catalog, thumbnail

PAGE_SIZE = 24
COLUMNS = 6

cat = catalog()
st.title("Browse")
families = sorted({f for f in cat.values("family") if f})
chosen = st.multiselect("Family", families, key="browse_family")
where = st.text_input("Filter (attributes, tags or predictions)", placeholder="legs=4, colour!=red", key="browse_where")
clauses = [where] if where.strip() else []
if chosen:
    clauses.append("family=" + "|".join(chosen))
try:
    ids = cat.filter(", ".join(clauses)) if clauses else list(cat.ids)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
pages = max(1, -(-len(ids) // PAGE_SIZE))
page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="browse_page")
st.caption(f"{len(ids)} of {len(cat)} assets")
shown = ids[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
cols = st.columns(COLUMNS)
for n, asset_id in enumerate(shown):
    with cols[n % COLUMNS]:
        st.image(thumbnail(cat, asset_id), caption=asset_id, width="stretch")
        if st.button("open", key=f"open_{asset_id}"):
            st.session_state["asset"] = asset_id
            st.switch_page("pages/asset.py")
