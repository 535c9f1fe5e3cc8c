"""Search: by example asset, or by an uploaded photo (inverted through the NeRF), with filters."""

from __future__ import annotations

import streamlit as st

from catalog_app.data import catalog, thumbnail

cat = catalog()
st.title("Search")
c1, c2, c3 = st.columns(3)
space = c1.selectbox("Space", cat.spaces, index=cat.spaces.index("joint"), key="search_space")
k = c2.slider("Results", 1, 24, 6, key="search_k")
where = c3.text_input("Filter", placeholder="family=chair", key="search_where") or None


def show(hits):
    cols = st.columns(6)
    for n, h in enumerate(hits):
        with cols[n % 6]:
            st.image(thumbnail(cat, h["id"]), caption=f"{h['rank']}. {h['id']} · {h['distance']:.2f}", width="stretch")


by_example, by_image = st.tabs(["By example", "By image"])
with by_example:
    query = st.selectbox("Assets like", cat.ids, key="search_like")
    try:
        hits = cat.similar(query, k=k, space=space, where=where)
        st.caption(f"{len(hits)} nearest to {query} in {space} space")
        show(hits)
    except ValueError as exc:
        st.error(str(exc))
with by_image:
    upload = st.file_uploader("A photo of the object (on white, or with alpha)", type=["png", "jpg", "jpeg", "webp"], key="search_upload")
    if upload is not None:
        from assets2vec.images import decode_image

        try:
            _, _, size = cat.model()
            image = decode_image(upload.getvalue(), size, upload.name)
            with st.status("Inverting the photo through the NeRF (camera unknown)...", expanded=False) as status:
                result = cat.search_image(image, k=k, space=space, where=where)
                status.update(label=f"Fitted in {result['seconds']} s, fit PSNR {result['fit_psnr']} dB", state="complete")
            a, b = st.columns(2)
            a.image(upload.getvalue(), caption="upload", width=160)
            b.image(result["render"], caption="fitted render", width=160)
            show(result["neighbours"])
        except ValueError as exc:
            st.error(str(exc))
