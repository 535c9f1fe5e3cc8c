"""Scenes: generate a small labelled batch from a selection or weights, preview masks and boxes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from assets2vec.api import load_scene
from assets2vec.catalog.scene_pool import read_weights
from assets2vec.catalog.store import CatalogError
from catalog_app.data import catalog
from render_core.scenes import SceneConfigError, config_from_dict

MAX_WEIGHTS_UPLOAD = 8 << 20

cat = catalog()
st.title("Scenes")
st.caption("Compose catalog assets into randomized scenes with depth, instance and semantic masks, boxes and COCO labels.")

sources = ["All assets", "Filter", "Similar to an asset", "Map selection", "Coverage weights", "Uploaded weights"]
source = st.radio("Draw assets from", sources, horizontal=True, key="scenes_source")
where = like = ids = weights = None
k = 20
if source == "Filter":
    where = st.text_input("Filter", placeholder="family=chair|sofa, base=swivel", key="scenes_where").strip() or None
elif source == "Similar to an asset":
    c1, c2 = st.columns(2)
    like = c1.selectbox("Asset", cat.ids, key="scenes_like")
    k = c2.slider("How many similar assets", 2, min(100, max(2, len(cat))), min(20, max(2, len(cat))), key="scenes_k")
elif source == "Map selection":
    ids = st.session_state.get("map_selection")
    if not ids:
        st.info("Select assets with the lasso on the Map page first.")
        st.stop()
    st.caption(f"{len(ids)} assets selected on the Map page")
elif source == "Coverage weights":
    sent = st.session_state.get("scene_weights")
    if not sent:
        st.info("Send weights from the Coverage page first.")
        st.stop()
    weights = sent["weights"]
    st.caption(f"weights from {sent['source']}")
elif source == "Uploaded weights":
    up = st.file_uploader("weights.csv (id,weight), e.g. from 'assets2vec weak-spots'", type=["csv"], key="scenes_upload")
    if up is None:
        st.stop()
    if up.size > MAX_WEIGHTS_UPLOAD:
        st.error(f"{up.name}: larger than {MAX_WEIGHTS_UPLOAD >> 20} MB")
        st.stop()
    try:  # read as the CLI reads --weights: one message per problem, naming the file and line
        weights = dict(zip(cat.ids, read_weights(up.getvalue(), cat.ids, set(cat.ids), name=up.name).tolist()))
    except CatalogError as exc:
        st.error(str(exc))
        st.stop()

c1, c2, c3, c4 = st.columns(4)
n = c1.slider("Scenes", 1, 16, 4, key="scenes_n")
seed = int(c2.number_input("Seed", 0, 2**31 - 1, 0, key="scenes_seed"))
size = c3.select_slider("Image size", [96, 128, 192, 256], 128, key="scenes_size")
labels = sorted(set(cat.store.attribute_names()) | {"family"})
semantic_by = c4.selectbox("Classes by", labels, index=labels.index("family"), key="scenes_semantic")

if st.button("Generate scenes", type="primary", key="scenes_go"):
    out = Path(tempfile.mkdtemp(prefix="assets2vec-scenes-"))
    bar = st.progress(0.0, text="composing and rendering...")
    try:
        cfg = config_from_dict({"image_size": int(size), "semantic_by": semantic_by})
        report = cat.generate_scenes(out, n, seed, cfg, where=where, like=like, k=k, ids=ids, weights=weights,
                                     progress=False, on_scene=lambda i, total: bar.progress(i / total, text=f"scene {i} of {total}"))
    except (CatalogError, SceneConfigError, ValueError) as exc:
        shutil.rmtree(out, ignore_errors=True)
        bar.empty()
        st.error(str(exc))
        st.stop()
    except BaseException:  # any other failure, or the server stopping, leaves no half-written batch either
        shutil.rmtree(out, ignore_errors=True)
        raise
    bar.empty()
    # A server runs for weeks: each session keeps one preview batch in the temporary folder, not one per click.
    previous = st.session_state.get("scenes_out")
    if previous is not None and Path(previous[0]).name.startswith("assets2vec-scenes-"):
        shutil.rmtree(previous[0], ignore_errors=True)
    st.session_state["scenes_out"] = (str(out), report)

if "scenes_out" in st.session_state:
    out, report = st.session_state["scenes_out"]
    st.success(f"{report['made']} scenes in {out} ({report['scenes_per_second']} scenes/s)")
    st.caption("A preview batch in a temporary folder: the next one replaces it. "
               "`assets2vec scenes generate` writes a batch to a folder you choose.")
    for f in report["failed_assets"]:
        st.warning(f"skipped asset {f['asset_id']}: {f['error']}")
    show_masks = st.toggle("Mask and box overlays", True, key="scenes_overlay")
    cols = st.columns(4)
    from render_core.scenes.folder import done_indices

    done = done_indices(out)  # a failed scene leaves a gap
    for n_shown, i in enumerate(done):
        scene = load_scene(out, i)
        objs = [o for o in scene["record"]["objects"] if o.get("annotated") and o["asset_id"]]
        cols[n_shown % 4].image(scene["overlay"] if show_masks else scene["rgb"], width="stretch",
                          caption=f"scene {i}: " + ", ".join(f"{o['label']} ({o['visible_fraction']:.0%})" for o in objs))
    with open(Path(out) / "coco.json", "rb") as f:
        st.download_button("COCO annotations (coco.json)", f.read(), "coco.json", key="scenes_coco")
