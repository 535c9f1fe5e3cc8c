"""Every page of the catalog app, driven through streamlit's AppTest on a small catalog."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from render_core.dataset import RenderedDataset

def captions(at) -> list[str]:
    return [c for im in at.image for c in im.captions]


APP = str(Path(__file__).resolve().parents[2] / "catalog_app" / "app.py")
TIMEOUT = 120


@pytest.fixture(scope="module")
def catalog(small_catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("app") / "cat"
    shutil.copytree(small_catalog, out)  # the pages write tags: keep the shared catalog untouched
    return out


@pytest.fixture()
def app(catalog, monkeypatch):
    monkeypatch.setenv("ASSETS2VEC_CATALOG", str(catalog))
    from catalog_app import data

    data._open.clear()
    monkeypatch.setattr(data, "_current", None)  # each test opens the catalog afresh
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def test_missing_catalog_shows_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSETS2VEC_CATALOG", str(tmp_path / "none"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "No catalog to show" in at.error[0].value and "assets2vec catalog build" in at.markdown[0].value


def test_the_app_opens_a_catalog_once_per_build(catalog, monkeypatch):
    import os

    from catalog_app import data
    from catalog_app.data import _open, catalog as app_catalog

    monkeypatch.setenv("ASSETS2VEC_CATALOG", str(catalog))
    _open.clear()
    monkeypatch.setattr(data, "_current", None)
    first = app_catalog()
    assert app_catalog() is first  # reruns reuse the open catalog and its indexes
    header = catalog / "artifact.json"
    st = header.stat()
    os.utime(header, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # what a build leaves: its header written last
    assert app_catalog() is not first and len(app_catalog()) == len(first)


def test_browse_filters_by_family(app):
    at = app.run()
    assert not at.exception
    assert at.caption[0].value == "8 of 8 assets"
    at.multiselect(key="browse_family").set_value(["chair"]).run()
    assert at.caption[0].value == "2 of 8 assets"
    assert len(captions(at)) == 2 and all("chair" in c for c in captions(at))
    at.text_input(key="browse_where").set_value("bogus=1").run()
    assert "no attribute or tag named 'bogus'" in at.error[0].value


def test_asset_page_shows_neighbours_and_saves_a_tag(app, catalog):
    at = app
    at.switch_page("pages/asset.py").run()
    assert not at.exception
    first = at.selectbox(key="asset_pick").value
    caps = captions(at)
    assert "rendered view" in caps and any(c.startswith("from its code") for c in caps)
    assert sum(" · " in c for c in caps) == 3 * 4  # 4 neighbours in each of 3 spaces
    at.slider(key="asset_k").set_value(2).run()
    assert sum(" · " in c for c in captions(at)) == 3 * 2
    at.text_input(key="tag_name").set_value("favourite")
    at.text_input(key="tag_value").set_value("yes")
    at.button[-1].click().run()
    assert "Tagged 1 asset favourite=yes" in at.success[0].value
    from assets2vec import Catalog

    with Catalog.open(catalog) as cat:
        assert cat.asset(first)["tags"]["favourite"] == "yes"


def test_search_by_example_and_by_uploaded_image(app, small_dataset):
    at = app
    at.switch_page("pages/search.py").run()
    assert not at.exception
    at.slider(key="search_k").set_value(3).run()
    assert at.caption[0].value.startswith("3 nearest to")
    at.selectbox(key="search_space").set_value("shape").run()
    assert "in shape space" in at.caption[0].value
    ds = RenderedDataset(small_dataset)
    buf = io.BytesIO()
    Image.fromarray(ds.load(ds.asset_ids[2]).rgb[0]).save(buf, format="PNG")
    at.file_uploader(key="search_upload").set_value(("photo.png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    caps = captions(at)
    assert "fitted render over the photo" in caps and "photo (object from: plain background)" in caps
    assert [m.label for m in at.metric] == ["Silhouette IoU", "Colour PSNR", "Runner-up worse by"]
    # a verdict either way, naming the asset that explained the photo best
    verdict = (at.success or at.warning)[0].value
    assert any(i in verdict for i in ds.asset_ids)
    assert sum(". " in c and " · " in c for c in caps) >= 3


def test_map_selects_by_ranges_and_tags_the_selection(app, catalog):
    at = app
    at.switch_page("pages/map.py").run()
    assert not at.exception
    at.selectbox(key="map_color").set_value("colour").run()
    assert at.caption[0].value == "0 selected"
    at.checkbox(key="map_use_ranges").check().run()
    assert at.caption[0].value == "8 selected"
    lo, hi = at.slider(key="map_x").value
    at.slider(key="map_x").set_value((lo, (lo + hi) / 2)).run()
    n = int(at.caption[0].value.split()[0])
    assert 0 < n < 8
    at.text_input(key="map_tag_name").set_value("left")
    at.text_input(key="map_tag_value").set_value("yes")
    at.button[-1].click().run()
    assert f"Tagged {n} assets" in at.success[0].value
    from assets2vec import Catalog

    with Catalog.open(catalog) as cat:
        assert len(cat.store.tags("left")) == n


def test_mix_renders_grid_interpolation_and_components(app):
    at = app
    at.switch_page("pages/mix.py").run()
    assert not at.exception
    assert "swap grid" in captions(at)
    at.slider(key="mix_blend").set_value(1.0).run()
    assert any(c.startswith("0.0 x") for c in captions(at))
    before = at.image[-1].value
    at.slider(key="mix_pc0").set_value(2.0).run()
    assert not at.exception and at.image[-1].value != before


def test_tagging_trains_and_lists_uncertain_assets(app, catalog):
    from assets2vec import Catalog

    with Catalog.open(catalog) as cat:
        fam = dict(zip(cat.ids, cat.values("family")))
        labels = {i: ("yes" if fam[i] == "chair" else "no") for i in cat.ids[:6]}
        cat.set_tags("is_chair", labels)
    at = app
    at.switch_page("pages/tagging.py").run()
    at.text_input(key="tag_attribute").set_value("is_chair").run()
    at.selectbox(key="tag_space").set_value("shape")
    at.button(key="tag_train").click().run()
    assert not at.exception and not at.error
    assert at.metric[0].label == "cross-validated accuracy"
    assert 0.0 <= float(at.metric[0].value) <= 1.0
    assert len(captions(at)) == 2  # the two unlabelled assets, least certain first


def test_coverage_lists_regions_with_samples_and_downloads(app):
    at = app
    at.switch_page("pages/coverage.py").run()
    assert not at.exception
    at.slider(key="cov_n").set_value(2).run()
    assert [h.value for h in at.subheader][:1] and at.subheader[0].value.startswith("Region 1")
    assert captions(at).count("samples inside the region") == len(at.subheader)
    at.selectbox(key="cov_space").set_value("geometry").run()  # decoded shapes: regions, but no latent samples to render
    assert not at.exception and at.subheader[0].value.startswith("Region 1")
    assert "samples inside the region" not in captions(at)
    at.checkbox(key="cov_within").check().run()  # two assets per family here: too few for a hole, said so
    assert not at.exception and "at least 3 assets" in at.warning[0].value


def test_scenes_generates_from_filter_and_from_coverage_weights(app, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the page's preview batches go
    batches = lambda: sorted(tmp_path.glob("assets2vec-scenes-*"))  # noqa: E731
    at = app
    at.switch_page("pages/scenes.py").run()
    assert not at.exception
    at.radio(key="scenes_source").set_value("Filter").run()
    at.text_input(key="scenes_where").set_value("family=table").run()
    at.slider(key="scenes_n").set_value(2)
    at.select_slider(key="scenes_size").set_value(96)
    at.button(key="scenes_go").click().run()
    assert not at.exception and "2 scenes in" in at.success[0].value
    caps = [c for c in captions(at) if c.startswith("scene ")]
    assert len(caps) == 2 and all("table" in c for c in caps) and not any("chair" in c for c in caps)
    at.toggle(key="scenes_overlay").set_value(False).run()
    assert not at.exception
    first = batches()
    assert len(first) == 1 and len(list(first[0].iterdir())) > 0
    at.text_input(key="scenes_where").set_value("nope=1").run()
    at.button(key="scenes_go").click().run()
    assert "no attribute or tag named 'nope'" in at.error[0].value
    assert batches() == first  # a failed batch leaves no empty folder behind

    at.switch_page("pages/coverage.py").run()
    at.button(key="cov_send").click().run()
    assert "Weights sent" in at.success[0].value
    at.switch_page("pages/scenes.py").run()
    at.radio(key="scenes_source").set_value("Coverage weights").run()
    assert "weights from coverage of the shape space" in [c.value for c in at.caption]
    at.button(key="scenes_go").click().run()
    assert not at.exception and "scenes in" in at.success[0].value
    # the session's new batch replaces its previous one in the temporary folder
    assert len(batches()) == 1 and batches() != first



def test_map_colours_follow_new_tags(app):
    """Tagging changes the colours on the next rerun: the cached colours are keyed on the database's version."""
    at = app
    at.switch_page("pages/map.py").run()
    at.checkbox(key="map_use_ranges").check().run()
    for value in ("dark", "light"):
        at.text_input(key="map_tag_name").set_value("shade_review")
        at.text_input(key="map_tag_value").set_value(value)
        at.button[-1].click().run()
        assert not at.exception and "Tagged 8 assets" in at.success[0].value
        at.run()  # the page as the next rerun draws it: the new tag among the names
        at.selectbox(key="map_color").set_value("shade_review").run()
        assert set(at.dataframe[0].value["shade_review"]) == {value}


def test_scenes_reads_uploaded_weights_as_the_cli_does(app):
    at = app
    at.switch_page("pages/scenes.py").run()
    at.radio(key="scenes_source").set_value("Uploaded weights").run()
    for data, message in ((b"id,weight\nchair-s0-00000,1\nchair-s0-00000,2\n", "weights.csv:3: 'chair-s0-00000' appears twice"),
                          (b"id,score\nchair-s0-00000,1\n", "weights.csv: needs an 'id' (or 'asset_id') column and a 'weight' column"),
                          (b"id,weight\nnot-an-asset,1\n", "weights.csv: 1 ids are not in this catalog")):
        at.file_uploader(key="scenes_upload").set_value(("weights.csv", data, "text/csv")).run()
        assert not at.exception and message in at.error[0].value
    at.file_uploader(key="scenes_upload").set_value(("weights.csv", b"id,weight\nchair-s0-00000,1\n", "text/csv")).run()
    assert not at.exception and not at.error and at.button(key="scenes_go")
