"""Mix: the shape x texture swap grid for chosen assets, interpolation between two, principal-component sliders."""

from __future__ import annotations

import numpy as np
import streamlit as st

from catalog_app.data import catalog

cat = catalog()
st.title("Mix shape and texture")
chosen = st.multiselect("Assets (row i = shape of i, column j = texture of j)", cat.ids, default=cat.ids[:3], max_selections=5,
                        key="mix_assets")
size = 64
if chosen:
    grid = np.concatenate([np.concatenate([cat.swap(a, b, size=size) for b in chosen], 1) for a in chosen], 0)
    st.image(grid, caption="swap grid", width=min(110 * len(chosen), 600))

st.subheader("Interpolate")
c1, c2 = st.columns(2)
a = c1.selectbox("From", cat.ids, index=0, key="mix_from")
b = c2.selectbox("To", cat.ids, index=min(1, len(cat) - 1), key="mix_to")
w = st.slider("Blend", 0.0, 1.0, 0.5, 0.1, key="mix_blend")
sa, ta = cat.codes([a])
sb, tb = cat.codes([b])
st.image(cat.render((1 - w) * sa[0] + w * sb[0], (1 - w) * ta[0] + w * tb[0], size=96), caption=f"{1 - w:.1f} x {a} + {w:.1f} x {b}", width=160)

st.subheader("Principal components")
half = st.radio("Half", ("shape", "texture"), horizontal=True, key="mix_half")
X = cat.vectors(half)
mean = X.mean(0)
_, sv, vt = np.linalg.svd(X - mean, full_matrices=False)
sd = sv / np.sqrt(max(len(X) - 1, 1))
n = min(3, len(vt))
offsets = [st.slider(f"PC {i + 1} (in standard deviations)", -3.0, 3.0, 0.0, 0.5, key=f"mix_pc{i}") for i in range(n)]
v = mean + sum(o * sd[i] * vt[i] for i, o in enumerate(offsets))
base_s, base_t = cat.transform.codes("joint", cat.vectors("joint").mean(0)[None])
s, t = cat.transform.codes(half, v[None])
st.image(cat.render((s if s is not None else base_s)[0], (t if t is not None else base_t)[0], size=96),
         caption="mean code moved along the principal components", width=160)
