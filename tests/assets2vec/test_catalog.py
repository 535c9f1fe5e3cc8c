"""The catalog: build and update, search, filters, tagging, map, sparse regions, proposals, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from PIL import Image

from assets2vec import Catalog
from assets2vec.catalog.build import build_catalog, index_path
from assets2vec.catalog.store import CatalogError, Store
from assets2vec.cli.main import main
from assets2vec.configs import preset
from assets2vec.train import fit
from render_core.artifacts import make_header, write_header
from render_core.dataset import RenderedDataset


def quiet(_msg):
    """Log sink for the library calls under test: their messages are not what is checked."""


def test_build_stores_assets_metadata_latents_and_indexes(catalog, small_dataset):
    ds = RenderedDataset(small_dataset)
    with Catalog.open(catalog) as cat:
        assert sorted(cat.ids) == sorted(ds.asset_ids)
        a = cat.asset(ds.asset_ids[0])
        assert a["family"] == ds.record(ds.asset_ids[0]).family
        assert a["attributes"]["colour"] == ds.record(ds.asset_ids[0]).attributes["colour"]
        assert cat.thumbnail(ds.asset_ids[0]).startswith(b"\x89PNG")
        assert cat.vectors("shape").shape == (8, 8) and cat.vectors("joint").shape[1] == cat.transform.dims["joint"]
        for space in ("shape", "texture", "joint"):
            assert index_path(catalog, space).is_file()
            assert cat.index(space).built_kind == "flat"


def test_similar_matches_brute_force_and_filters(catalog):
    with Catalog.open(catalog) as cat:
        q = cat.ids[0]
        for space in ("shape", "texture", "joint"):
            X = cat.vectors(space)
            d = np.linalg.norm(X - X[0], axis=1)
            order = [cat.ids[i] for i in np.argsort(d) if cat.ids[i] != q][:4]
            hits = cat.similar(q, k=4, space=space)
            assert [h["id"] for h in hits] == order
            assert [h["rank"] for h in hits] == [1, 2, 3, 4]
            assert np.allclose([h["distance"] for h in hits], np.sort(d)[1:5], atol=1e-3)
        family = cat.asset(q)["family"]
        hits = cat.similar(q, k=10, space="shape", where=f"family={family}")
        assert hits and all(cat.asset(h["id"])["family"] == family for h in hits)
        assert all(cat.asset(h["id"])["family"] != "chair" for h in cat.similar(q, k=10, where="family!=chair"))


def test_bad_queries_are_clear_errors(catalog):
    with Catalog.open(catalog) as cat:
        with pytest.raises(CatalogError, match="unknown asset id 'nope'"):
            cat.similar("nope")
        with pytest.raises(ValueError, match="shape code has 3 dimensions"):
            cat.search_codes(np.zeros(3), np.zeros(cat.transform.dims["texture"]))
        with pytest.raises(ValueError, match="8-dimensional"):
            cat.index("shape").search(np.zeros((1, 5), np.float32), 3)
        with pytest.raises(CatalogError, match="no attribute or tag named 'nonsense'"):
            cat.similar(cat.ids[0], where="nonsense=1")
        with pytest.raises(CatalogError, match="cannot read"):
            cat.similar(cat.ids[0], where="legs>4")
        with pytest.raises(ValueError, match="unknown space"):
            cat.similar(cat.ids[0], space="colour")


def test_missing_or_empty_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogError, match="build one with"):
        Catalog.open(tmp_path / "nothing")
    empty = tmp_path / "empty"
    Store.open(empty, create=True).close()
    write_header(empty, make_header("catalog", producer="test", seed=None))
    with pytest.raises(CatalogError, match="catalog is empty"):
        Catalog.open(empty)
    assert main(["search", str(empty), "--like", "x"]) == 2


def test_corrupt_or_missing_index_is_rebuilt(catalog):
    with Catalog.open(catalog) as cat:
        want = cat.similar(cat.ids[2], k=5, space="texture")
    p = index_path(catalog, "texture")
    p.write_bytes(p.read_bytes()[:40] + b"garbage")
    index_path(catalog, "shape").unlink()
    msgs = []
    with Catalog.open(catalog, log=msgs.append) as cat:
        assert cat.similar(cat.ids[2], k=5, space="texture") == want
        cat.index("shape")
    assert any("checksum mismatch" in m for m in msgs) and any("missing" in m for m in msgs)
    with Catalog.open(catalog, log=msgs.append) as cat:  # repaired on disk
        n = len(msgs)
        cat.index("texture"), cat.index("shape")
        assert len(msgs) == n


def test_rebuild_after_embed_adds_only_new_assets(run, catalog, tmp_path):
    import shutil

    from assets2vec.embed import EMBED_CONFIG, embed
    from dataclasses import replace
    from render_core.assets.library import open_library
    from render_core.assets.procedural.generate import generate_library
    from render_core.multiview import RenderConfig, render_library
    from render_core.rig import RigConfig

    grown = tmp_path / "grown"
    shutil.copytree(run, grown)
    generate_library(tmp_path / "lib10", 10, 0, progress=False)  # the same 8 assets plus 2 new
    render_library(open_library(tmp_path / "lib10"), tmp_path / "ds10",
                   RenderConfig(image_size=32, rig=RigConfig(n_views=6, elevations=(10.0, 40.0), floor_views=0)), progress=False)
    with Catalog.open(catalog) as cat:
        cat.set_tags("favourite", {cat.ids[0]: "yes"})
        before = cat.vectors("joint").copy()
    reader = Catalog.open(catalog, log=quiet)  # opened before the build, its index not loaded yet
    embed(grown, tmp_path / "ds10", config=replace(EMBED_CONFIG, steps=5), progress=False, log=quiet)
    s = build_catalog(grown, catalog, progress=False, log=quiet)
    assert (s["added"], s["skipped_existing"], s["updated"], s["assets"]) == (2, 8, 0, 10)
    # The early reader answers from what it read, and leaves the build's new index file alone.
    assert len(reader.similar(reader.ids[0], k=20)) == 7
    new_id = next(a for a in Catalog.open(catalog, log=quiet).ids if a not in reader.ids)
    with pytest.raises(CatalogError, match="added after this catalog was opened; open it again"):
        reader.similar(new_id)
    with pytest.raises(CatalogError, match="no-such-asset"):
        reader.similar("no-such-asset")
    reader.close()
    msgs = []
    with Catalog.open(catalog, log=msgs.append) as cat:
        assert len(cat) == 10 and np.array_equal(cat.vectors("joint")[:8], before)
        assert cat.asset(cat.ids[0])["tags"] == {"favourite": "yes"}
        assert cat.index("joint").ntotal == 10
    assert not msgs, msgs


def test_tagging_predicts_every_asset_and_suggests_what_to_label(catalog, tmp_path):
    with Catalog.open(catalog) as cat:
        truth = dict(zip(cat.ids, cat.values("family")))
        chairs = [i for i in cat.ids if truth[i] == "chair"]
        others = [i for i in cat.ids if truth[i] != "chair"]
        labels = {**{i: "yes" for i in chairs}, **{i: "no" for i in others[:3]}}
        csv = tmp_path / "labels.csv"
        csv.write_text("id,value\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))
        rep = cat.tag("is_chair", csv, space="shape")
        assert 0.0 <= rep["cv_accuracy"] <= 1.0 and rep["model"] in rep["candidates"]
        assert rep["n_labels"] == len(labels) and rep["n_predicted"] == 8
        assert {s["id"] for s in rep["label_next"]} <= set(others[3:])
        preds = cat.predict("is_chair")
        assert set(preds) == set(cat.ids) and all(0.5 <= p["confidence"] <= 1 for p in preds.values())
        again = cat.tag("is_chair", csv, space="shape")  # the same tagging again (a rerun after a crash): nothing new stored
        assert cat.predict("is_chair") == preds and again["cv_accuracy"] == rep["cv_accuracy"]
        assert again["classifier_id"] == rep["classifier_id"]
        other = cat.tag("is_chair", space="shape", seed=1)  # other folds: a new classifier
        assert other["classifier_id"] == rep["classifier_id"] + 1
        # Predictions are usable as filters; a manual label overrides the prediction.
        hits = cat.similar(cat.ids[0], k=8, where="is_chair=yes", min_confidence=0.0)
        effective = {i: labels.get(i, preds[i]["value"]) for i in cat.ids}
        assert hits and all(effective[h["id"]] == "yes" for h in hits)
        assert len(hits) == sum(v == "yes" for i, v in effective.items() if i != cat.ids[0])


def test_bad_labels_are_clear_errors_and_write_nothing(catalog, tmp_path):
    with Catalog.open(catalog) as cat:
        with pytest.raises(CatalogError, match="unknown asset id 'ghost'"):
            cat.tag("swivel", {cat.ids[0]: "yes", "ghost": "no"})
        assert cat.store.tags("swivel") == {}
        with pytest.raises(ValueError, match="single class"):
            cat.tag("swivel", {cat.ids[0]: "yes", cat.ids[1]: "yes"})
        with pytest.raises(ValueError, match="at least 2 labels"):
            cat.tag("swivel2", {cat.ids[0]: "yes", cat.ids[1]: "yes", cat.ids[2]: "no"})
    bad = tmp_path / "bad.csv"
    bad.write_text("asset,label\nx,y\n")
    assert main(["tag", str(catalog), "--attribute", "a", "--labels", str(bad)]) == 2


def test_attribute_classifier_is_a_sklearn_estimator():
    from sklearn.base import clone

    from assets2vec.catalog.tagging import AttributeClassifier, uncertainty_order

    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (20, 5)), rng.normal(4, 1, (20, 5))]
    y = np.array(["a"] * 20 + ["b"] * 20)
    clf = clone(AttributeClassifier(random_state=0)).fit(X, y)
    assert clf.cv_accuracy_ == 1.0 and (clf.predict(X) == y).mean() == 1.0
    p = clf.predict_proba(np.r_[X[:1], [[2.0] * 5]])
    assert np.allclose(p.sum(1), 1) and uncertainty_order(p)[0] == 1


def test_attribute_classifier_chooses_shrinkage_lda_when_a_class_is_a_small_offset_under_a_shared_nuisance():
    # What an armrest's thickness looks like in the geometry space: every dimension moves with the asset's
    # size (one strong shared nuisance) and the class is a small offset of one of them. A pooled, shrunk
    # covariance sees through the shared part; the other candidates, fitted on 20 labels per class, less so.
    from assets2vec.catalog.tagging import CANDIDATES, AttributeClassifier

    def draw(rng, per_class):
        y = np.repeat(["none", "thin", "thick"], per_class)
        X = rng.normal(0, 3, (len(y), 1)) + rng.normal(0, 0.3, (len(y), 40))
        X[:, 0] += np.select([y == "thin", y == "thick"], [1.0, 2.0], 0.0)
        return X, y

    rng = np.random.default_rng(0)
    (X, y), (Xt, yt) = draw(rng, 20), draw(rng, 100)
    chosen = AttributeClassifier(random_state=0).fit(X, y)
    others = AttributeClassifier(candidates=tuple(c for c in CANDIDATES if c != "lda"), random_state=0).fit(X, y)
    assert chosen.model_name_ == "lda" and set(chosen.cv_results_) == set(CANDIDATES)
    assert (chosen.predict(Xt) == yt).mean() > (others.predict(Xt) == yt).mean() + 0.03
    assert np.allclose(chosen.predict_proba(Xt).sum(1), 1)


def test_the_lda_is_kept_within_one_standard_error_of_the_best_mean_and_only_then():
    from assets2vec.catalog.tagging import AttributeClassifier, choose_candidate

    assert choose_candidate({"logistic": (0.95, 0.02), "knn": (0.90, 0.03), "lda": (0.935, 0.01)}) == "lda"
    assert choose_candidate({"logistic": (0.95, 0.02), "knn": (0.90, 0.03), "lda": (0.925, 0.01)}) == "logistic"
    assert choose_candidate({"logistic": (0.95, 0.02), "knn": (0.95, 0.03)}) == "logistic"  # ties: the earlier
    assert choose_candidate({"logistic": (0.90, 0.0), "lda": (0.90, 0.0)}) == "lda"
    # Rings (class = distance from the origin): no linear model separates them, so the LDA is far below the best.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = np.where(np.hypot(X[:, 0], X[:, 1]) > 1.1, "out", "in")
    clf = AttributeClassifier(random_state=0).fit(X, y)
    assert clf.model_name_ in ("rbf_svm", "knn") and clf.cv_results_["lda"] < clf.cv_accuracy_ - clf.cv_standard_errors_[clf.model_name_]
    assert set(clf.cv_standard_errors_) == set(clf.cv_results_) and all(0 <= s < 0.2 for s in clf.cv_standard_errors_.values())


def test_attribute_classifier_leaves_out_the_lda_when_a_fold_has_no_more_labels_than_classes():
    from assets2vec.catalog.tagging import AttributeClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 4)) + np.repeat(np.eye(3, 4) * 5, 2, axis=0), np.repeat(["a", "b", "c"], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing failed quietly inside the cross-validation
        clf = AttributeClassifier(random_state=0).fit(X, y)  # two folds: 3 training labels for 3 classes
    assert "lda" not in clf.cv_results_ and (clf.predict(X) == y).all()
    with pytest.raises(ValueError, match="needs more labels than classes"):
        AttributeClassifier(candidates=("lda",)).fit(X, y)


def test_index_modes_agree_with_exact_search():
    from assets2vec.catalog.index import LatentIndex

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    q = rng.normal(size=(20, 16)).astype(np.float32)
    exact = LatentIndex(16, "flat")
    exact.add(X)
    hnsw = LatentIndex(16, "hnsw")
    hnsw.add(X)
    _, Ie = exact.search(q, 10)
    _, Ih = hnsw.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(Ie, Ih)])
    assert recall > 0.9
    subset = np.flatnonzero(rng.random(3000) < 0.3)
    for index in (exact, hnsw):
        r = index.restrict(subset)
        _, I = r.search(q, 10)
        assert np.isin(I, subset).all()
        d = ((X[subset][None] - q[:, None]) ** 2).sum(-1)
        truth = subset[np.argsort(d, axis=1)[:, :10]]
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, I)]) > 0.9
    D, I = exact.restrict(subset[:3]).search(q[:1], 5)
    assert list(I[0, 3:]) == [-1, -1] and np.isinf(D[0, 3:]).all()


def test_index_files_detect_stale_vectors(tmp_path):
    from assets2vec.catalog.index import IndexFileError, LatentIndex

    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    idx = LatentIndex(4)
    idx.add(X)
    idx.write(tmp_path / "i.faiss")
    assert LatentIndex.read(tmp_path / "i.faiss", X).ntotal == 50
    with pytest.raises(IndexFileError, match="stale"):
        LatentIndex.read(tmp_path / "i.faiss", X + 1)


def test_gpu_flat_index_routing_with_a_stand_in_gpu(tmp_path, monkeypatch):
    """No GPU here: a stand-in for FAISS's GPU flat index (which refuses k > 2048, as the real one
    does) checks what the catalog sends to it, what goes to the CPU twin, and what is written."""
    import faiss

    from assets2vec.catalog import index as index_mod

    class StandInGpuFlat:
        def __init__(self, cpu):
            self.cpu, self.calls = cpu, []

        def search(self, x, k):
            if k > 2048:
                raise RuntimeError("GPU index only supports k <= 2048")
            self.calls.append(k)
            return self.cpu.search(x, k)

    made = []
    monkeypatch.setattr(index_mod, "gpu_available", lambda: True)
    monkeypatch.setattr(index_mod, "_GPU_RESOURCES", None)
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: made.append(1) or object(), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda res, dev, cpu: StandInGpuFlat(cpu), raising=False)
    X = np.random.default_rng(0).normal(size=(3000, 8)).astype(np.float32)
    idx = index_mod.LatentIndex(8, "flat", use_gpu=True)
    idx.add(X)
    other = index_mod.LatentIndex(8, "flat", use_gpu=True)
    other.add(X[:10])
    assert idx.on_gpu and len(made) == 1  # one GPU resource object per process
    _, I_small = idx.search(X[:3], 5)
    _, I_big = idx.search(X[:3], 2500)  # beyond the GPU's k: answered by the CPU twin
    assert idx.index.calls == [5]
    assert list(I_small[:, 0]) == [0, 1, 2] and I_big.shape == (3, 2500) and list(I_big[:, 0]) == [0, 1, 2]
    idx.write(tmp_path / "g.faiss")  # writes the CPU twin, readable anywhere
    monkeypatch.setattr(index_mod, "gpu_available", lambda: False)
    back = index_mod.LatentIndex.read(tmp_path / "g.faiss", X, use_gpu=True)
    assert not back.on_gpu and back.search(X[:3], 5)[1].tolist() == I_small.tolist()


def test_sparse_regions_find_a_known_hole():
    from assets2vec.catalog.density import sample_in_region, sparse_regions

    g = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    hole = np.linalg.norm(g - [4.5, 4.5], axis=1) < 2.2
    X = g[~hole].astype(np.float32)
    r = sparse_regions(X, 2, seed=0)
    assert np.linalg.norm(r[0].center - [4.5, 4.5]) < 1.0
    assert r[0].score > 1.5 and r[0].score >= r[1].score
    assert np.linalg.norm(X[r[0].border[0]] - r[0].center) == pytest.approx(r[0].radius, rel=1e-4)
    pts = sample_in_region(r[0], 50, seed=1)
    assert np.linalg.norm(pts - r[0].center, axis=1).max() < 2 * r[0].radius


def test_sparse_regions_within_groups_find_the_hole_inside_a_group_not_the_gap_between_groups():
    from assets2vec.catalog.density import sparse_regions, sparse_regions_within

    g = np.stack(np.meshgrid(np.arange(8.0), np.arange(8.0)), -1).reshape(-1, 2)
    chairs = g[np.linalg.norm(g - [3.5, 3.5], axis=1) >= 1.6]  # a grid of chairs with a hole in the middle
    lamps = g[:20] + [0.0, 14.0]  # lamps, a wide empty band away from the chairs
    X = np.vstack([chairs, lamps]).astype(np.float32)
    family = ["chair"] * len(chairs) + ["lamp"] * len(lamps)
    anywhere = sparse_regions(X, 1, seed=0)[0]
    assert anywhere.center[1] > 8  # the band between the families is the emptiest place overall
    r = sparse_regions_within(X, family, 2, seed=0)
    assert r[0].extra["group"] == "chair" and np.linalg.norm(r[0].center - [3.5, 3.5]) < 1.0 and r[0].score > 1.5
    assert all(family[i] == "chair" for i in r[0].border) and [x.rank for x in r] == [1, 2]
    with pytest.raises(ValueError, match="got 3 group labels for"):
        sparse_regions_within(X, family[:3], 1)


def test_sparse_cli_previews_and_proposals_generate_assets(catalog, tmp_path, capsys):
    from render_core.assets.records import read_manifest

    rc = main(["sparse", str(catalog), "-n", "2", "--samples", "2", "--previews", str(tmp_path / "prev"),
               "--proposals", str(tmp_path / "p.json"), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["regions"]) == 2 and Image.open(out["regions"][0]["preview"]).size[0] > 0
    proposed = json.loads((tmp_path / "p.json").read_text())["assets"]
    assert len(proposed) == 4
    assert main(["assets", "generate", str(tmp_path / "newlib"), "--from-proposals", str(tmp_path / "p.json"), "--quiet"]) == 0
    recs = read_manifest(tmp_path / "newlib" / "manifest.jsonl")
    assert [r.family for r in recs] == [p["family"] for p in proposed]
    for r, p in zip(recs, proposed):
        assert all(r.params[k] == pytest.approx(v) for k, v in p["params"].items() if k != "pattern_scale")
    (tmp_path / "bad.json").write_text('{"kind": "proposals", "assets": [{"family": "chair", "params": {}}]}')
    assert main(["assets", "generate", str(tmp_path / "lib2"), "--from-proposals", str(tmp_path / "bad.json")]) == 2


def test_map_and_sampling(catalog, tmp_path):
    with Catalog.open(catalog) as cat:
        m = cat.map("texture", "tsne", color_by="colour", path=tmp_path / "m.png")
        assert m["coords"].shape == (8, 2) and Image.open(tmp_path / "m.png").size[0] > 100
        s, t = cat.sample(3, near=cat.ids[0], seed=0)
        s2, _ = cat.sample(3, near=cat.ids[0], seed=0)
        assert s.shape == (3, cat.transform.dims["shape"]) and np.array_equal(s, s2)
        img = cat.render(s[0], t[0])
        assert img.dtype == np.uint8 and img.shape[2] == 3
        assert cat.swap(cat.ids[0], cat.ids[1]).shape == img.shape
    assert main(["catalog", "map", str(catalog), str(tmp_path / "m2.png"), "--sparse", "2", "--method", "pca"]) == 0


def test_search_by_image_cli(catalog, small_dataset, tmp_path, capsys):
    ds = RenderedDataset(small_dataset)
    v = ds.load(ds.asset_ids[3])
    Image.fromarray(v.rgb[1]).save(tmp_path / "photo.png")
    assert main(["search", str(catalog), "--image", str(tmp_path / "photo.png"), "-k", "3", "--json",
                 "--overlay", str(tmp_path / "fit.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 3 and out["confidence"]["psnr"] > 10 and out["asset"] in ds.asset_ids
    assert out["match"] in (None, out["asset"]) and out["mask_source"] == "plain background"
    assert np.asarray(out["camera"]["K"]).shape == (3, 3) and out["camera"]["photo_size"] == [32, 32]
    assert Image.open(tmp_path / "fit.png").size == (32, 32)  # the overlay is in the photo's own pixels
    assert main(["search", str(catalog), "--like", ds.asset_ids[0], "--box", "1,2,3,4"]) == 2  # --box goes with --image
    # In the geometry space the fitted shape code is decoded at query time and lands among the stored vectors.
    assert main(["search", str(catalog), "--image", str(tmp_path / "photo.png"), "-k", "8", "--space", "geometry", "--json"]) == 0
    geo = json.loads(capsys.readouterr().out)
    assert geo["space"] == "geometry" and sorted(h["id"] for h in geo["results"]) == sorted(ds.asset_ids)
    (tmp_path / "not.png").write_bytes(b"not an image")
    assert main(["search", str(catalog), "--image", str(tmp_path / "not.png")]) == 2


READER = textwrap.dedent("""
    import sys, time
    from assets2vec import Catalog
    path, n = sys.argv[1], int(sys.argv[2])
    ok = 0
    for _ in range(n):
        with Catalog.open(path, log=lambda m: None) as cat:
            hits = cat.similar(cat.ids[0], k=3, space="joint")
            assert len(hits) == 3 and all(h["id"] in cat.ids for h in hits)
            ok += 1
    print(ok)
""")


def test_readers_keep_working_while_a_build_writes(run, catalog, small_dataset, tmp_path):
    cfg = preset("tiny")
    cfg.steps, cfg.seed = 5, 1
    other = tmp_path / "other"
    fit(small_dataset, other, cfg, progress=False, log=quiet)  # another network: a rebuild rewrites every latent
    script = tmp_path / "reader.py"
    script.write_text(READER)
    readers = [subprocess.Popen([sys.executable, str(script), str(catalog), "25"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for r in (other, run, other):
        s = build_catalog(r, catalog, progress=False, log=quiet)
        assert s["assets"] == 8
    for p in readers:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "25"
    with Catalog.open(catalog) as cat:
        assert cat.store.get_meta("run") == str(other.resolve())


def test_build_refuses_what_is_not_a_run_or_a_catalog(run, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(CatalogError, match="not empty and is not a catalog"):
        build_catalog(run, mine, progress=False, log=quiet)
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt"]
    with pytest.raises(ValueError, match="is a run"):
        build_catalog(run, run, progress=False, log=quiet)
    with pytest.raises(ValueError):
        build_catalog(mine, tmp_path / "new", progress=False, log=quiet)
    assert main(["catalog", "build", str(mine), str(tmp_path / "new2")]) == 2


def test_rgb_photos_keep_their_white_background_as_the_mask(tmp_path):
    from assets2vec.images import decode_image, load_image
    from assets2vec.invert import image_to_rgb_mask

    a = np.full((40, 60, 3), 255, np.uint8)
    a[10:30, 20:40] = (200, 30, 30)
    Image.fromarray(a).save(tmp_path / "rgb.png")
    im = load_image(tmp_path / "rgb.png", 32)
    assert im.shape == (32, 32, 3) and (im[0, 0] == 255).all()  # padded with white, not transparent
    _, mask = image_to_rgb_mask(im)
    assert 0.05 < mask.mean() < 0.5  # the red square, not the whole frame
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 5:15] = (10, 200, 10, 255)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    im = decode_image((tmp_path / "rgba.png").read_bytes(), 20)
    assert im.shape == (20, 20, 4) and image_to_rgb_mask(im)[1].mean() == pytest.approx(0.25, abs=0.05)
    with pytest.raises(ValueError, match="not a readable image"):
        decode_image(b"\x89PNG garbage", 20)


def test_build_goes_on_when_the_dataset_has_moved(small_dataset, tmp_path):
    import shutil

    moved = tmp_path / "ds"
    shutil.copytree(small_dataset, moved)
    cfg = preset("tiny")
    cfg.steps = 3
    fit(moved, tmp_path / "run", cfg, progress=False, log=quiet)
    shutil.rmtree(moved)
    s = build_catalog(tmp_path / "run", tmp_path / "cat", progress=False, log=quiet)
    assert s["assets"] == 8 and len(s["missing_metadata"]) == 8
    assert all(v.startswith("dataset unavailable:") for v in s["missing_metadata"].values())
    with Catalog.open(tmp_path / "cat") as cat:
        assert len(cat.similar(cat.ids[0], k=3)) == 3 and cat.asset(cat.ids[0])["family"] is None


def _families(n: int, d: int, families: int, seed: int):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (families, d)).astype(np.float32)
    fam = rng.integers(0, families, n)
    return (centers[fam] + rng.normal(0, 1, (n, d))).astype(np.float32), fam


def _recall(X, q, subset, I):
    d = ((X[subset][None] - q[:, None]) ** 2).sum(-1)
    truth = subset[np.argsort(d, axis=1)[:, :10]]
    return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, I)])


def test_filtered_search_on_partition_lists_keeps_recall_for_random_and_family_filters(monkeypatch):
    """Filters on an HNSW-sized index search an inverted file of the subset's members; a query far
    from every member (another family) is searched again widely, so its answer stays right."""
    from assets2vec.catalog import index as index_module
    from assets2vec.catalog.index import LatentIndex

    X, fam = _families(8000, 16, 20, seed=0)
    q, qfam = X[:40] + 0.1, fam[:40]
    index = LatentIndex(16, "hnsw")
    index.add(X)
    assert index.partition is not None and index.partition.nlist == 128
    # Make a flat scan look expensive so the inverted file is chosen at this small size.
    monkeypatch.setitem(index_module.COST_US, "flat_vector", 1.0)
    rng = np.random.default_rng(1)
    for subset in (np.flatnonzero(rng.random(8000) < 0.2), np.flatnonzero(np.isin(fam, [3, 7]))):
        view = index.restrict(subset)
        assert view.mode == "partition" and not view.far_exact
        D, I = view.search(q, 10)
        assert np.isin(I, subset).all() and np.all(np.diff(D, axis=1) >= 0)
        assert _recall(X, q, subset, I) >= 0.95
    cross = ~np.isin(qfam, [3, 7])
    assert cross.sum() > 30  # most queries come from other families: they take the wide search
    assert view.outside(q[cross], view.ivf.quantizer.search(q[cross], 1)[0][:, 0]).all()


def test_filter_chooses_flat_scan_when_it_is_predicted_cheaper():
    from assets2vec.catalog.index import LatentIndex, predicted_cost_us

    X, _ = _families(8000, 16, 20, seed=2)
    index = LatentIndex(16, "hnsw")
    index.add(X)
    small = index.restrict(np.arange(0, 8000, 50))  # 160 vectors: a flat scan beats any probe
    assert small.mode == "exact"
    D, I = small.search(X[:3], 10)
    assert _recall(X, X[:3], np.arange(0, 8000, 50), I) == 1.0
    cost = predicted_cost_us(400_000, 2048, 12, 200.0)
    assert cost["partition"] < cost["exact"]


def test_partition_file_is_checked_like_the_index(tmp_path):
    from assets2vec.catalog.index import IndexFileError, LatentIndex
    from assets2vec.catalog.partition import Partition

    X, _ = _families(3000, 8, 5, seed=3)
    idx = LatentIndex(8, "hnsw")
    idx.add(X)
    idx.write(tmp_path / "i.faiss")
    back = LatentIndex.read(tmp_path / "i.faiss", X)
    assert np.array_equal(back.partition.lists, idx.partition.lists)
    assert np.array_equal(back.restrict(np.arange(100, 900)).search(X[:5], 5)[1], idx.restrict(np.arange(100, 900)).search(X[:5], 5)[1])
    lists = tmp_path / "i.faiss.lists"
    data = lists.read_bytes()
    lists.write_bytes(data[:-10])
    with pytest.raises(IndexFileError, match="checksum"):
        LatentIndex.read(tmp_path / "i.faiss", X)
    lists.unlink()
    with pytest.raises(IndexFileError, match="missing"):
        LatentIndex.read(tmp_path / "i.faiss", X)
    with pytest.raises(ValueError, match="do not match"):
        Partition.from_bytes(data, 2999, 8)


def test_a_database_the_machine_will_not_write_is_a_storage_error(catalog):
    """SQLite's "readonly" / "disk is full" reach the CLI as the OSError they are (exit 3, the file
    named), not as "not a readable catalog"; the transaction is rolled back."""
    import errno
    import sqlite3

    path = catalog / "catalog.sqlite"
    ro = Store(path, sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None))
    with pytest.raises(OSError) as info:
        with ro.write():
            ro.set_meta("note", "x")
    assert info.value.errno == errno.EROFS and info.value.filename == str(path)
    assert not ro.conn.in_transaction
    ro.close()
    with Catalog.open(catalog) as cat:
        assert cat.store.get_meta("note") is None
