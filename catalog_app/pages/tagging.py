"""Tagging: label a few assets, train, see cross-validated accuracy, review predictions by uncertainty."""

from __future__ import annotations

import streamlit as st

from catalog_app.data import catalog, thumbnail

cat = catalog()
st.title("Few-shot tagging")
attribute = st.text_input("Attribute to tag", value="swivel", key="tag_attribute")
space = st.selectbox("Space", cat.spaces, key="tag_space",
                     help="geometry (the decoded shape) is best for fine shape attributes such as legs or armrests; appearance for colour; texture_only for texture attributes that must not follow the shape")
where = st.text_input("Predict only for", placeholder="family=chair", key="tag_where") or None
known = cat.store.tags(attribute.strip()) if attribute.strip() else {}
rows = {int(r): i for i, r in enumerate(cat.rows)}
start = [{"id": cat.ids[rows[r]], "value": v} for r, v in known.items() if r in rows] or [{"id": cat.ids[0], "value": ""}]
st.caption("Labels (add rows; ids must be catalog assets)")
labels = st.data_editor(start, num_rows="dynamic", key="tag_labels", column_config={"id": st.column_config.SelectboxColumn(options=cat.ids)})
if st.button("Train and tag every asset", key="tag_train"):
    given = {r["id"]: str(r["value"]).strip() for r in labels if r.get("id") and str(r.get("value") or "").strip()}
    try:
        with st.spinner("Cross-validating candidates..."):
            rep = cat.tag(attribute.strip(), given, space=space, where=where)
        st.session_state["tag_report"] = rep
    except ValueError as exc:
        st.error(str(exc))
rep = st.session_state.get("tag_report")
if rep and rep["attribute"] == attribute.strip():
    st.metric("cross-validated accuracy", f"{rep['cv_accuracy']:.3f}", help=f"chosen model: {rep['model']}")
    st.write({"candidates": rep["candidates"], "predicted": rep["predicted_counts"]})
    st.subheader("Least certain first: label these next")
    cols = st.columns(5)
    for n, s in enumerate(rep["label_next"]):
        with cols[n % 5]:
            st.image(thumbnail(cat, s["id"]), caption=f"{s['id']} · {s['predicted']} ({s['confidence']:.2f})", width="stretch")
