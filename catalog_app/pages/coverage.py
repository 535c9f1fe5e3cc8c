"""Coverage: the sparsest regions of a space, the assets around them, rendered samples, proposals and weights."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from assets2vec.catalog.spaces import SPARSE_SPACES
from catalog_app.data import catalog, thumbnail

cat = catalog()
st.title("Coverage")
c1, c2 = st.columns(2)
space = c1.selectbox("Space", [s for s in SPARSE_SPACES if s in cat.spaces], key="cov_space",
                     help="geometry: the decoded shapes; there a new asset lands where its shape puts it, and there are no "
                     "latent samples to render, only the assets around each gap")
n = c2.slider("Regions", 1, 10, 3, key="cov_n")
within = "family" if st.checkbox("Holes within each family", key="cov_within",
                                 help="a gap among the chairs rather than between a chair and a lamp; proposals keep the family") else None


@st.cache_data(show_spinner="Looking for sparse regions...")
def regions(path: str, space: str, n: int, count: int, within: str | None):
    out = []
    for r in cat.sparse_regions(n, space, samples=3, within=within):
        out.append({**r.to_json(cat.ids), "samples": r.extra.get("samples")})
    return out


try:
    found = regions(str(cat.path), space, n, len(cat), within)
except ValueError as exc:  # e.g. no family with the 3 assets a hole needs
    st.warning(f"No sparse regions: {exc}")
    st.stop()
for r in found:
    st.subheader(f"Region {r['rank']}" + (f" among the {r['group']}s" if r.get("group") else "") + f": score {r['score']:.2f}")
    st.caption("score = empty radius / median nearest-neighbour distance; assets around it:")
    cols = st.columns(6)
    for i, a in enumerate(r["border"][:6]):
        cols[i].image(thumbnail(cat, a), caption=a, width="stretch")
    if r["samples"] is not None:
        s, t = r["samples"]["shape"], r["samples"]["texture"]
        st.image(np.concatenate([cat.render(s[i], t[i], size=64) for i in range(len(s))], 1), caption="samples inside the region",
                 width=240)
    if r.get("proposals"):
        st.json(r["proposals"][0], expanded=False)

proposals = {"kind": "proposals", "space": space, "seed": 0, "assets": [p for r in found for p in r.get("proposals", [])]}
st.download_button("Proposals for 'assets2vec assets generate --from-proposals'", json.dumps(proposals), "proposals.json",
                   key="cov_proposals")
weights = cat.coverage_weights(space)
csv = "id,weight\n" + "".join(f"{i},{w:.8f}\n" for i, w in weights.items())
st.download_button("Sampling weights for the scene generator (sparser assets drawn more often)", csv, "weights.csv",
                   key="cov_weights")
if st.button("Send these weights to the Scenes page", key="cov_send"):
    st.session_state["scene_weights"] = {"source": f"coverage of the {space} space",
                                         "weights": weights}
    st.success("Weights sent: open Scenes and choose 'Coverage weights'.")
