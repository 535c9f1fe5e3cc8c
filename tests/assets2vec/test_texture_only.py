"""The texture-only space: texture vectors less the mean texture of the assets nearest in the geometry space."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import cross_val_score

from assets2vec import Catalog
from assets2vec.catalog import texture_only
from assets2vec.catalog.build import _store_geometry, _store_texture_only, build_catalog, index_path
from assets2vec.catalog.spaces import SpaceTransform
from assets2vec.catalog.store import CatalogError, Store
from assets2vec.catalog.texture_only import NeighbourResidual, residual
from assets2vec.cli.main import main


def quiet(_msg):
    """Log sink for the library calls under test: their messages are not what is checked."""


def test_residual_is_the_texture_less_the_mean_of_its_nearest_others_by_geometry():
    rng = np.random.default_rng(0)
    geometry = rng.normal(size=(30, 5)).astype(np.float32)
    texture = rng.normal(size=(30, 4)).astype(np.float32)
    out = residual(texture, geometry, texture, geometry, np.arange(30), neighbours=3)
    d = ((geometry[:, None] - geometry[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)  # each asset leaves itself out
    near = np.argsort(d, axis=1)[:, :3]
    np.testing.assert_allclose(out, texture - texture[near].mean(1), atol=1e-5)
    # A query that is not a reference keeps all its nearest references, itself included if it sits on one.
    q = residual(texture[:2], geometry[:2], texture, geometry, None, neighbours=3)
    d0 = ((geometry[:2, None] - geometry[None]) ** 2).sum(-1)
    np.testing.assert_allclose(q, texture[:2] - texture[np.argsort(d0, 1)[:, :3]].mean(1), atol=1e-5)
    # Identical geometries (ties at distance 0) never let an asset count itself.
    twins = residual(texture[:3], np.zeros((3, 5), np.float32), texture[:3], np.zeros((3, 5), np.float32), np.arange(3), neighbours=2)
    np.testing.assert_allclose(twins[0], texture[0] - texture[[1, 2]].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="reference set is empty"):
        residual(texture, geometry, texture[:0], geometry[:0])


def test_shape_carried_by_the_texture_is_removed_and_the_texture_signal_kept():
    # Texture vectors = colour signal + a shift that depends on the shape class (the leak); geometry tells the class.
    rng = np.random.default_rng(3)
    n = 600
    shape_class, colour = rng.integers(0, 3, n), rng.integers(0, 4, n)
    geometry = (np.eye(3)[shape_class] * 4 + rng.normal(size=(n, 3)) * 0.5).astype(np.float32)
    texture = (np.eye(4)[colour] * 3 + rng.normal(size=(n, 4))).astype(np.float32)
    leak = rng.normal(size=(3, 4)).astype(np.float32) * 2
    texture += leak[shape_class]
    out = residual(texture, geometry, texture, geometry, np.arange(n))

    def acc(X, y):
        return cross_val_score(LinearDiscriminantAnalysis(), X, y, cv=5).mean()

    assert acc(texture, shape_class) > 0.8  # the leak, readable before
    assert acc(out, shape_class) < 1 / 3 + 0.1  # at chance after
    assert acc(out, colour) > 0.85 * acc(texture, colour)  # the colour survives


def test_reference_set_is_capped_seeded_and_keyed(monkeypatch):
    monkeypatch.setattr(texture_only, "MAX_REFERENCE", 5)
    rows = np.arange(100, 120)
    a, b = NeighbourResidual.fit(rows, "k"), NeighbourResidual.fit(rows, "k")
    assert len(a.reference_rows) == 5 and np.array_equal(a.reference_rows, b.reference_rows)
    assert np.all(np.diff(a.reference_rows) > 0) and set(a.reference_rows) <= set(rows)
    assert not np.array_equal(a.reference_rows, NeighbourResidual.fit(rows, "k", seed=1).reference_rows)
    back = NeighbourResidual.from_json(json.loads(json.dumps(a.to_json())))
    assert np.array_equal(back.reference_rows, a.reference_rows) and back.key == "k"
    assert texture_only.fit_key("a") == texture_only.fit_key("a") != texture_only.fit_key("b")
    with pytest.raises(ValueError, match="not among the catalog vectors"):
        a.transform(np.zeros((1, 2)), np.zeros((1, 3)), np.array([-1]), rows[:3], np.zeros((3, 2)), np.zeros((3, 3)))


def _store_with(tmp_path, n, rng):
    store = Store.open(tmp_path / "cat", create=True)
    shape, texture = rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)
    profiles = rng.integers(0, 255, (n, 144), dtype=np.uint8)
    with store.write():
        store.set_meta("transform", SpaceTransform.fit(shape, texture).to_json())
        for r in range(n):
            store.upsert_asset(r, f"a{r}", None, None, "x", {}, {})
    return store, shape, texture, profiles


def test_new_assets_go_through_the_stored_fit_until_the_geometry_is_refit(tmp_path):
    rng = np.random.default_rng(2)
    store, shape, texture, profiles = _store_with(tmp_path, 60, rng)
    with store.write():
        store.put_latents(np.arange(25), shape[:25], texture[:25], "ck")
        assert _store_texture_only(store, "ck") == 0  # no geometry yet: nothing to take out
        _store_geometry(store, {r: profiles[r] for r in range(25)}, True, "ck")
        assert _store_texture_only(store, "ck") == 25
    first = NeighbourResidual.from_json(store.get_meta("texture_only"))
    assert list(first.reference_rows) == list(range(25))
    _, before = store.decoded("texture_only")
    with store.write():  # 20 more: under twice the PCA's assets, so the same PCA and the same fit
        store.put_latents(np.arange(25, 45), shape[25:45], texture[25:45], "ck")
        _store_geometry(store, {r: profiles[r] for r in range(25, 45)}, True, "ck")
        assert _store_texture_only(store, "ck") == 20
    rows, after = store.decoded("texture_only")
    assert list(rows) == list(range(45)) and np.array_equal(after[:25], before)
    assert list(NeighbourResidual.from_json(store.get_meta("texture_only")).reference_rows) == list(range(25))
    t = SpaceTransform.from_json(store.get_meta("transform")).vectors("texture", shape, texture)
    _, g = store.decoded("geometry")
    # The newcomers are not references: each is compared with its 20 nearest among the first 25.
    np.testing.assert_allclose(after[25:], residual(t[25:45], g[25:45], t[:25], g[:25]), atol=1e-5)
    with store.write():  # 60 >= 2 x 25: the PCA is refit, so the fit is redone over every asset
        store.put_latents(np.arange(45, 60), shape[45:], texture[45:], "ck")
        _store_geometry(store, {r: profiles[r] for r in range(45, 60)}, True, "ck")
        assert _store_texture_only(store, "ck") == 60
    assert list(NeighbourResidual.from_json(store.get_meta("texture_only")).reference_rows) == list(range(60))
    _, g = store.decoded("geometry")
    _, v = store.decoded("texture_only")
    np.testing.assert_allclose(v, residual(t, g, t, g, np.arange(60)), atol=1e-5)
    store.close()


def test_catalog_searches_and_tags_in_texture_only_space(run, tmp_path, capsys, monkeypatch):
    # 3 neighbours among 8 assets, so which ones the geometry picks matters (20 would be everyone else).
    monkeypatch.setattr(texture_only, "NEIGHBOURS", 3)
    cat_dir = tmp_path / "cat"
    build_catalog(run, cat_dir, progress=False, log=quiet)
    assert index_path(cat_dir, "texture_only").is_file()
    with Catalog.open(cat_dir) as cat:
        T, G = cat.vectors("texture"), cat.vectors("geometry")
        n = len(cat)
        np.testing.assert_allclose(cat.vectors("texture_only"), residual(T, G, T, G, np.arange(n), neighbours=3), atol=1e-5)
        # ... which is not what every other asset's mean (a residual blind to the geometry) gives.
        assert not np.allclose(cat.vectors("texture_only"), residual(T, G, T, G, np.arange(n), neighbours=n - 1), atol=1e-3)
        # New codes (here an asset's own, as an image search would fit them) are not references.
        sc, tc = cat.codes(cat.ids[:1])
        q = cat.code_vectors("texture_only", sc, tc)
        g0 = cat.code_vectors("geometry", sc, tc)
        np.testing.assert_allclose(q, residual(T[:1], g0, T, G, neighbours=3), atol=1e-4)
        a = cat.ids[2]
        V = cat.vectors("texture_only")
        brute = np.argsort(((V - V[2]) ** 2).sum(1))[1:4]
        assert [h["id"] for h in cat.similar(a, k=3, space="texture_only")] == [cat.ids[i] for i in brute]
        fam = dict(zip(cat.ids, cat.values("family")))
        rep = cat.tag("is_chair", {i: "yes" if fam[i] == "chair" else "no" for i in cat.ids[:6]}, space="texture_only")
        assert rep["space"] == "texture_only" and len(cat.predict("is_chair")) == n
        with pytest.raises(ValueError, match="unknown space 'texture_only'"):
            cat.sparse_regions(1, space="texture_only")
    assert main(["search", str(cat_dir), "--like", a, "--space", "texture_only", "-k", "2", "--json"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)["results"]] == [cat.ids[i] for i in brute[:2]]


def test_a_reader_opened_before_a_refit_says_to_open_the_catalog_again(run, tmp_path, monkeypatch):
    cat_dir = tmp_path / "cat"
    build_catalog(run, cat_dir, progress=False, log=quiet)
    with Catalog.open(cat_dir) as cat:
        sc, tc = cat.codes(cat.ids[:1])
        hashed = []
        real_digest = cat.store.meta_digest
        monkeypatch.setattr(cat.store, "meta_digest", lambda *keys: hashed.append(keys) or real_digest(*keys))
        before = cat.code_vectors("texture_only", sc, tc)
        assert hashed == []  # nobody has committed since the catalog opened: the megabytes are not hashed again
        writer = Store.open(cat_dir)
        with writer.write():  # a commit that leaves the fit alone is hashed once, then trusted
            writer.set_meta("note", "tagged elsewhere")
        writer.close()
        cat.code_vectors("geometry", sc, tc)
        cat.code_vectors("geometry", sc, tc)
        assert len(hashed) == 1
        writer = Store.open(cat_dir)
        with writer.write():  # what a build that refits the geometry PCA leaves behind
            pca = writer.get_meta("geometry_pca")
            writer.set_meta("geometry_pca", {**pca, "n_fit": pca["n_fit"] + 1})
        writer.close()
        for space in ("texture_only", "geometry"):
            with pytest.raises(CatalogError, match="rebuilt.*since it was opened; open it again"):
                cat.code_vectors(space, sc, tc)
        assert cat.similar(cat.ids[0], k=2, space="texture_only")  # stored vectors still answer
    with Catalog.open(cat_dir) as cat:  # the stored fit no longer matches the PCA: left out until the next build
        assert "texture_only" not in cat.spaces
    assert build_catalog(run, cat_dir, progress=False, log=quiet)["decoded"]["texture_only"] == 8
    with Catalog.open(cat_dir) as cat:
        assert cat.code_vectors("texture_only", sc, tc).shape == before.shape


def test_a_catalog_without_the_space_says_to_rebuild_and_the_next_build_adds_it(run, tmp_path):
    cat_dir = tmp_path / "cat"
    build_catalog(run, cat_dir, progress=False, log=quiet)
    store = Store.open(cat_dir)
    with store.write():  # what a catalog built before the space existed holds
        store.conn.execute("DELETE FROM meta WHERE key=?", ("texture_only",))
        store.drop_decoded("texture_only")
    store.close()
    with Catalog.open(cat_dir) as cat:
        assert "texture_only" not in cat.spaces
        with pytest.raises(CatalogError, match="no texture_only vectors.*catalog build"):
            cat.similar(cat.ids[0], space="texture_only")
    s = build_catalog(run, cat_dir, progress=False, log=quiet)
    assert s["decoded"]["texture_only"] == 8
    with Catalog.open(cat_dir) as cat:
        assert cat.vectors("texture_only").shape == cat.vectors("texture").shape


def test_a_new_network_drops_the_fits_made_on_the_old_ones_vectors_even_in_a_no_decoded_build(run, small_catalog, tmp_path):
    other_run = small_catalog.parent / "run"  # the same assets, another (shorter) training: another network
    cat_dir = tmp_path / "cat"
    build_catalog(run, cat_dir, progress=False, log=quiet)
    build_catalog(other_run, cat_dir, progress=False, decoded=False, log=quiet)
    store = Store.open(cat_dir)
    assert store.get_meta("geometry_pca") is None and store.get_meta("texture_only") is None
    assert store.decoded_rows("geometry") == set() and store.decoded_rows("texture_only") == set()
    store.close()
    s = build_catalog(other_run, cat_dir, progress=False, log=quiet)
    assert s["decoded"] == {"geometry": 8, "appearance": 8, "texture_only": 8}
    with Catalog.open(cat_dir) as cat:
        T, G = cat.vectors("texture"), cat.vectors("geometry")
        np.testing.assert_allclose(cat.vectors("texture_only"), residual(T, G, T, G, np.arange(len(cat))), atol=1e-5)
