"""Asset: rendered views, the NeRF render from its code, neighbours in each space, tags (editable)."""

from __future__ import annotations

import streamlit as st

from catalog_app.data import catalog, tag_form, thumbnail

cat = catalog()
st.title("Asset")
default = st.session_state.get("asset", cat.ids[0])
asset_id = st.selectbox("Asset", cat.ids, index=cat.ids.index(default) if default in cat.ids else 0, key="asset_pick")
st.session_state["asset"] = asset_id
info = cat.asset(asset_id)

left, right = st.columns([1, 2])
with left:
    st.image(thumbnail(cat, asset_id), caption="rendered view", width=160)
    azimuth = st.slider("NeRF view azimuth", 0, 360, 30, 15, key="asset_azimuth")
    try:
        s, t = cat.codes([asset_id])
        st.image(cat.render(s[0], t[0], azimuth=float(azimuth), size=96), caption=f"from its code, azimuth {azimuth}°", width=160)
    except ValueError as exc:
        st.info(f"NeRF render unavailable: {exc}")
with right:
    st.markdown(f"**{asset_id}** · family `{info['family']}` · from `{info['source']}`")
    st.dataframe({"name": list(info["attributes"]), "value": list(info["attributes"].values())}, hide_index=True)
    if info["predictions"]:
        st.markdown("Predicted tags")
        st.dataframe({"tag": list(info["predictions"]), "value": [p["value"] for p in info["predictions"].values()],
                      "confidence": [round(p["confidence"], 3) for p in info["predictions"].values()]}, hide_index=True)

st.subheader("Nearest neighbours")
k = st.slider("How many", 1, 12, 4, key="asset_k")
for space, col in zip(("shape", "texture", "joint"), st.columns(3)):
    with col:
        st.markdown(f"**by {space}**")
        for h in cat.similar(asset_id, k=k, space=space):
            st.image(thumbnail(cat, h["id"]), caption=f"{h['id']} · {h['distance']:.2f}", width=96)

st.subheader("Tags")
if info["tags"]:
    st.dataframe({"tag": list(info["tags"]), "value": list(info["tags"].values())}, hide_index=True)
tag_form(cat, [asset_id], "tag", "Save tag")
