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
    upload = st.file_uploader("A photo of one object: any camera, any background (with alpha, the alpha is the object)",
                              type=["png", "jpg", "jpeg", "webp"], key="search_upload")
    if upload is not None:
        from assets2vec.images import read_image

        try:
            photo = read_image(upload.getvalue(), upload.name)
            box = None
            if st.toggle("Draw a box around the object (for a cluttered photo)", key="search_box_on"):
                from streamlit_image_coordinates import streamlit_image_coordinates

                shown = min(480, photo.shape[1])
                # keyed by the upload, so a box drawn on one photo is not carried over to the next
                drag = streamlit_image_coordinates(photo[..., :3], width=shown, click_and_drag=True,
                                                   key=f"search_box_{upload.file_id}")
                if drag and drag.get("x1") != drag.get("x2") and drag.get("y1") != drag.get("y2"):
                    f = photo.shape[1] / shown
                    xs, ys = sorted((drag["x1"], drag["x2"])), sorted((drag["y1"], drag["y2"]))
                    box = (xs[0] * f, ys[0] * f, xs[1] * f, ys[1] * f)
                    st.caption(f"box: {', '.join(str(round(v)) for v in box)} (photo pixels)")
            # the fit is the slow part and depends only on the photo and the box: it is kept across reruns
            # (a slider moved, the other tab used) and only the neighbours follow the space, filter and k
            fitted = st.session_state.get("search_fit")
            if fitted is None or fitted[0] != (upload.file_id, box):
                with st.status("Finding the object and fitting codes, camera and colour to it...", expanded=False) as status:
                    fitted = ((upload.file_id, box), cat.search_image(photo, k=k, space=space, where=where, box=box,
                                                                      name=upload.name))
                    status.update(label=f"Fitted in {fitted[1]['seconds']} s", state="complete")
                st.session_state["search_fit"] = fitted
            result = dict(fitted[1])
            result["neighbours"] = cat.search_codes(result["shape_code"], result["texture_code"], k, space, where)
            if result["match"]:
                st.success(f"Match: {result['verdict']}")
            else:
                st.warning(result["verdict"])
            a, b, c = st.columns(3)
            a.image(photo[..., :3], caption=f"photo (object from: {result['mask_source']})", width="stretch")
            b.image(result["overlay"], caption="fitted render over the photo", width="stretch")
            conf = result["confidence"]
            c.metric("Silhouette IoU", f"{conf['iou']:.2f}")
            c.metric("Colour PSNR", f"{conf['psnr']:.1f} dB")
            if conf.get("probability") is not None:
                c.metric("Encoder's probability", f"{conf['probability']:.0%}", help=f"runner-up: {result['runner_up']}")
                if conf.get("familiarity") is not None:
                    c.metric("Familiarity", f"{conf['familiarity']:.2f}",
                             help="how close the photo lies to the asset's own training views (cosine, 1 at most); "
                             "a photo of something the catalog lacks lies far from every asset's")
            else:
                c.metric("Runner-up worse by", "-" if conf["margin"] is None else f"{conf['margin']:.0%}",
                         help=f"runner-up: {result['runner_up']}")
            if result["proposals"]:
                st.caption(f"Compared (the photo encoder's proposals, most probable first): {', '.join(result['proposals'])}")
            else:
                st.caption("Compared: every catalog asset (this run has no photo encoder: `assets2vec photo-encoder RUN` trains one)")
            st.caption(f"Nearest to the fitted codes in {space} space")
            show(result["neighbours"])
        except ValueError as exc:
            st.error(str(exc))
