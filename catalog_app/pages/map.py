"""Map: the 2D latent map of a space, coloured by any attribute; select points (lasso, box or ranges) and tag them."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import streamlit as st

from catalog_app.data import catalog, data_version, tag_form

cat = catalog()
st.title("Latent map")
c1, c2, c3 = st.columns(3)
space = c1.selectbox("Space", cat.spaces, key="map_space")
method = c2.selectbox("Projection", ("pca", "tsne"), key="map_method")
names = cat.store.attribute_names()
color_by = c3.selectbox("Colour by", names, index=names.index("family") if "family" in names else 0, key="map_color")


@st.cache_data(show_spinner="Projecting...")
def project(path: str, space: str, method: str, n: int, build: int):
    return cat.map(space, method)["coords"]


# Apart from the projection: tagging changes the colours, and must not cost a new t-SNE.
@st.cache_data(show_spinner=False, max_entries=16)
def colours(path: str, color_by: str, version: tuple[int, int, int]):
    return [v or "unknown" for v in cat.values(color_by)]


version = data_version(cat)
coords = project(str(cat.path), space, method, len(cat), version[0])
labels = colours(str(cat.path), color_by, version)
fig = px.scatter(x=coords[:, 0], y=coords[:, 1], color=labels, hover_name=cat.ids, labels={"color": color_by},
                 height=520)
fig.update_layout(dragmode="lasso", xaxis_title="", yaxis_title="")
event = st.plotly_chart(fig, on_select="rerun", selection_mode=("lasso", "box"), key="map_chart")
# Point indices in plotly events are per colour trace; the hover name is the asset id.
points = event.selection.points if event and event.selection else []
selected = [p["hovertext"] for p in points if "hovertext" in p]

with st.expander("Select by ranges instead (keyboard-friendly)"):
    lo, hi = coords.min(0), coords.max(0)
    xr = st.slider("x range", float(lo[0]), float(hi[0]), (float(lo[0]), float(hi[0])), key="map_x")
    yr = st.slider("y range", float(lo[1]), float(hi[1]), (float(lo[1]), float(hi[1])), key="map_y")
    use_ranges = st.checkbox("Use these ranges as the selection", key="map_use_ranges")
if use_ranges:
    inside = (coords[:, 0] >= xr[0]) & (coords[:, 0] <= xr[1]) & (coords[:, 1] >= yr[0]) & (coords[:, 1] <= yr[1])
    selected = [cat.ids[i] for i in np.flatnonzero(inside)]

st.caption(f"{len(selected)} selected")
if selected:
    st.session_state["map_selection"] = selected  # the Scenes page can compose scenes from it
    st.dataframe({"id": selected, color_by: [labels[cat.ids.index(i)] for i in selected]}, hide_index=True)
    tag_form(cat, selected, "map_tag", "Tag selected assets")
