"""The catalog's command-line success paths, and API paths the other catalog tests do not take."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from assets2vec import Catalog
from assets2vec.catalog import index as index_module
from assets2vec.catalog.build import index_path
from assets2vec.catalog.index import LatentIndex
from assets2vec.cli.main import main


@pytest.fixture()
def built(run, tmp_path, capsys):
    """A catalog built through the command line, as a user would."""
    cat = tmp_path / "cat"
    assert main(["catalog", "build", str(run), str(cat), "--no-decoded", "--quiet"]) == 0
    capsys.readouterr()
    return cat


def test_catalog_build_cli_writes_a_wal_database_and_the_three_indexes(built):
    conn = sqlite3.connect(built / "catalog.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # readers go on while a build writes
        assert conn.execute("SELECT COUNT(*) FROM latents").fetchone()[0] == 8
    finally:
        conn.close()
    for space in ("shape", "texture", "joint"):
        assert index_path(built, space).is_file()
    assert not index_path(built, "geometry").exists()  # --no-decoded


def test_search_like_cli_filters_by_attribute_and_prints_json(built, capsys):
    with Catalog.open(built) as cat:
        family = dict(zip(cat.ids, cat.values("family")))
    query = next(i for i, f in family.items() if f == "chair")
    assert main(["search", str(built), "--like", query, "--space", "shape", "-k", "8", "--where", "family=chair", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    chairs = [i for i, f in family.items() if f == "chair" and i != query]
    assert sorted(h["id"] for h in hits) == sorted(chairs) and [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    assert main(["search", str(built), "--like", "ghost-id"]) == 2
    assert "ghost-id" in capsys.readouterr().err


def test_tag_cli_with_labels_stores_predictions_and_prints_json(built, tmp_path, capsys):
    with Catalog.open(built) as cat:
        family = dict(zip(cat.ids, cat.values("family")))
    others = [i for i, f in family.items() if f != "chair"]
    labelled = {**{i: "yes" for i, f in family.items() if f == "chair"}, **{i: "no" for i in others[:3]}}
    labels = tmp_path / "labels.csv"
    labels.write_text("id,value\n" + "".join(f"{i},{v}\n" for i, v in labelled.items()))
    assert main(["tag", str(built), "--attribute", "is_chair", "--labels", str(labels), "--space", "shape", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["attribute"] == "is_chair" and 0.0 <= report["cv_accuracy"] <= 1.0 and report["n_predicted"] == 8
    assert report["model"] in report["candidates"] and {s["id"] for s in report["label_next"]} == set(others[3:])
    with Catalog.open(built) as cat:
        predicted = cat.predict("is_chair")
        rows = cat.store.rows_of(list(labelled))
        assert cat.store.tags("is_chair") == {int(r): v for r, v in zip(rows, labelled.values())}  # the labels are kept
    assert set(predicted) == set(family) and all(0.5 <= p["confidence"] <= 1.0 for p in predicted.values())


def test_auto_index_is_exact_up_to_the_limit_and_hnsw_above(monkeypatch):
    monkeypatch.setattr(index_module, "EXACT_LIMIT", 100)
    x = np.random.default_rng(0).normal(size=(101, 8)).astype(np.float32)
    at_limit, above = LatentIndex(8), LatentIndex(8)
    at_limit.add(x[:100])
    above.add(x)
    assert at_limit.built_kind == "flat" and above.built_kind == "hnsw"


def test_sample_in_a_sparse_region_and_render_from_a_camera_pose(built):
    with Catalog.open(built) as cat:
        region = cat.sparse_regions(1, samples=2, propose=False)[0]
        s, t = cat.sample(3, region=region, seed=0)
        again, _ = cat.sample(3, region=region, seed=0)
        assert s.shape == (3, cat.transform.dims["shape"]) and t.shape[0] == 3 and np.array_equal(s, again)
        # The points lie inside the region: nearer its centre than the region's radius.
        pts = cat.transform.vectors("shape", s, t)
        assert (np.linalg.norm(pts - region.center, axis=1) <= region.radius + 1e-4).all()
        with pytest.raises(ValueError, match="near= or region="):
            cat.sample(1, near=cat.ids[0], region=region)
        from assets2vec.latent import orbit_poses

        _, rig, _ = cat.model()
        pose = orbit_poses(20.0, np.array([30.0]), rig.distance)[0]
        by_pose = cat.render(s[0], t[0], c2w=pose, size=24)
        by_angles = cat.render(s[0], t[0], azimuth=30.0, elevation=20.0, size=24)
        assert by_pose.shape == (24, 24, 3) and np.array_equal(by_pose, by_angles)
        assert not np.array_equal(cat.render(s[0], t[0], azimuth=150.0, size=24), by_angles)
        with pytest.raises(ValueError, match="4x4"):
            cat.render(s[0], t[0], c2w=np.eye(3))


def test_rbf_kernel_map_with_a_precomputed_svc_is_sklearns_rbf_svc():
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    from assets2vec.catalog.tagging import RBFKernelMap

    rng = np.random.default_rng(0)
    for classes in (2, 3):
        X = rng.normal(size=(60, 5)) * [1, 2, 3, 0.5, 1]
        y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (classes == 3) * (X[:, 2] > 2)
        test = rng.normal(size=(200, 5)) * [1, 2, 3, 0.5, 1]
        ours = Pipeline([("kernel", RBFKernelMap()), ("svc", SVC(kernel="precomputed", C=10.0))]).fit(X, y)
        theirs = SVC(kernel="rbf", gamma="scale", C=10.0).fit(X, y)
        np.testing.assert_allclose(ours.decision_function(test), theirs.decision_function(test), atol=1e-8)
        assert np.array_equal(ours.predict(test), theirs.predict(test))


def test_attribute_classifier_predicts_in_chunks_as_in_one_piece(monkeypatch):
    from assets2vec.catalog import tagging

    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=40) > 0, "yes", "no")
    test = rng.normal(size=(1000, 4))
    clf = tagging.AttributeClassifier(candidates=("rbf_svm",), random_state=0).fit(X, y)
    whole = clf.predict_proba(test)
    monkeypatch.setattr(tagging, "PREDICT_CHUNK", 97)
    np.testing.assert_allclose(clf.predict_proba(test), whole, atol=1e-12)
    assert whole.shape == (1000, 2) and np.allclose(whole.sum(1), 1)
