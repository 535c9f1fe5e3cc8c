"""The decoded spaces: geometry profiles and their frozen PCA, appearance histograms, and the catalog's use of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.feature import hog

from assets2vec import Catalog
from assets2vec.catalog.appearance import BINS, appearance_vectors, decode_appearance
from assets2vec.catalog.build import _store_geometry, build_catalog, index_path
from assets2vec.catalog.geometry import (BOX_OPACITY, GEOMETRY_DIM, HOG_BLOCK, HOG_CELLS, GeometryPCA, box_profile, decode_profiles, depth_maps,
                                         object_box, profile_parts)
from assets2vec.catalog.store import CatalogError, Store
from assets2vec.cli.main import main
from assets2vec.train import load_run


def quiet(_msg):
    """Log sink for the library calls under test: their messages are not what is checked."""


def test_profiles_are_the_max_projected_opacity_of_the_decoded_density_in_its_own_box(run):
    model, _, _ = load_run(run)
    shape, _ = model.codes(torch.arange(2))
    r, s = 12, 6
    prof = decode_profiles(model, shape.detach().numpy(), resolution=r, size=s)
    assert prof.shape == (2, 9 * s * s) and prof.dtype == np.uint8
    # The same numbers computed by hand for the second code, along the vertical (y) axis.
    h = model.grid_sampler.half_size
    axis = (torch.arange(r) + 0.5) / r * 2 * h - h
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        sigma = model.density_at(pts, shape[1].detach().expand(len(pts), -1)).view(r, r, r)
    opacity = (1 - torch.exp(-sigma.clamp(min=0) * 2 * h / r)).numpy()
    box = []
    for a in range(3):
        hit = np.flatnonzero(opacity.max(axis=tuple(b for b in range(3) if b != a)) >= BOX_OPACITY)
        box.append(slice(hit[0], hit[-1] + 1) if len(hit) else slice(0, r))
    cube = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(opacity[tuple(box)]))[None, None],
                                           size=(s, s, s), mode="trilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(prof[1, s * s:2 * s * s] / 255.0, cube.amax(1).reshape(-1).numpy(), atol=1 / 255 + 1e-6)
    np.testing.assert_allclose(prof[1, 3 * s * s:] / 255.0, depth_maps(cube).reshape(-1).numpy(), atol=1 / 255 + 1e-6)
    assert not np.array_equal(prof[0], prof[1])
    with pytest.raises(ValueError, match="dimensions; the network takes"):
        decode_profiles(model, np.zeros((1, shape.shape[1] + 1), np.float32))


def test_box_profiles_do_not_depend_on_where_or_how_big_the_object_is():
    # A seat slab on one corner leg, filling a cube of side 4k, placed at two spots and two scales in a 32^3 box.
    def grid(offset, k):
        g = torch.zeros(32, 32, 32)
        o = offset
        g[o:o + 4 * k, o + 2 * k:o + 4 * k, o:o + 4 * k] = 1.0  # seat
        g[o:o + k, o:o + 2 * k, o:o + k] = 1.0  # leg under one corner
        return g

    small, moved, big = (box_profile(grid(o, k), size=8) for o, k in ((2, 2), (20, 2), (5, 4)))
    assert small.shape == (9 * 8 * 8,)
    torch.testing.assert_close(small, moved)
    torch.testing.assert_close(small, big)
    images = small.view(9, 8, 8)
    side = images[0]  # projected along x: (y, z)
    assert side[0, :2].min() == 1 and side[0, 2:].max() == 0  # bottom row: the leg, then open floor
    below = images[3 + 2]  # depth seen from -y: (x, z)
    torch.testing.assert_close(below[:2, :2], torch.full((2, 2), 0.5 / 8))  # the leg stands on the floor
    torch.testing.assert_close(below[2:, 2:], torch.full((6, 6), 4.5 / 8))  # the seat's underside, half-way up the box
    # A faint floater does not stretch the box; an empty decode keeps the whole scene box.
    g = grid(5, 4)
    g[0, 0, 0] = BOX_OPACITY / 2
    assert object_box(g) == (slice(5, 21),) * 3
    assert object_box(torch.zeros(4, 4, 4)) == (slice(0, 4),) * 3


def test_pca_keeps_its_dimension_scale_and_is_deterministic():
    rng = np.random.default_rng(0)
    basis = rng.random((3, 900))
    profiles = np.clip(rng.random((50, 3)) @ basis * 80, 0, 255).astype(np.uint8)  # nine 10 x 10 images each
    pca = GeometryPCA.fit(profiles)
    v = pca.transform(profiles)
    assert v.shape == (50, GEOMETRY_DIM) and v.dtype == np.float32
    assert np.isclose((v ** 2).sum(1).mean(), 1.0, rtol=1e-4)
    # The descriptor by hand: the pixels and skimage's HOG of the three silhouettes, then of the six depth maps,
    # each of the four parts scaled to a mean norm of 1.
    pixels = profiles / np.float32(255)
    cell = max(1, 10 // HOG_CELLS)
    hogs = np.stack([[hog(im, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(HOG_BLOCK, HOG_BLOCK))
                      for im in row.reshape(9, 10, 10)] for row in pixels])  # (n, 9, H)
    parts = [pixels[:, :300], hogs[:, :3].reshape(50, -1), pixels[:, 300:], hogs[:, 3:].reshape(50, -1)]
    desc = np.concatenate([p / np.linalg.norm(p, axis=1).mean() for p in parts], 1)
    np.testing.assert_allclose(pca.mean, desc.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(v, (desc - desc.mean(0)) @ pca.components.T * pca.scale, rtol=1e-3, atol=1e-5)
    real = pca.components[:49]  # 50 profiles span 49 directions; the rest of the 64 are zero padding
    np.testing.assert_allclose(real @ real.T, np.eye(49), atol=1e-4)
    assert not pca.components[49:].any()
    again = GeometryPCA.from_json(pca.to_json())
    np.testing.assert_array_equal(again.transform(profiles), v)
    few = GeometryPCA.fit(profiles[:2])  # two assets: one real direction, the rest padded
    assert few.transform(profiles[:2]).shape == (2, GEOMETRY_DIM)
    with pytest.raises(ValueError, match="profiles have 10 values"):
        pca.transform(np.zeros((1, 10), np.uint8))
    with pytest.raises(ValueError, match="profiles have 144 values"):  # nine images, of another size
        pca.transform(np.zeros((1, 144), np.uint8))
    assert not pca.stale(99) and pca.stale(100)


def test_large_fits_use_a_randomized_svd_that_keeps_the_same_geometry(monkeypatch):
    import assets2vec.catalog.geometry as geometry

    rng = np.random.default_rng(2)
    profiles = np.clip(rng.random((120, 4)) @ rng.random((4, 900)) * 60, 0, 255).astype(np.uint8)
    exact = GeometryPCA.fit(profiles)
    monkeypatch.setattr(geometry, "EXACT_SVD_MAX", 100)  # 120 profiles: the randomized path
    fast = GeometryPCA.fit(profiles)
    a, b = exact.transform(profiles), fast.transform(profiles)
    np.testing.assert_allclose(fast.components @ fast.components.T, np.eye(GEOMETRY_DIM), atol=1e-4)
    dist = lambda v: np.linalg.norm(v[:, None] - v[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(dist(b), dist(a), atol=0.05)  # the same distances (scale: about 1.4), up to the tail directions
    np.testing.assert_array_equal(GeometryPCA.fit(profiles).transform(profiles), b)  # seeded


def test_hog_describes_a_part_the_same_when_it_sits_a_pixel_higher():
    # A chair's side silhouette with an armrest bar on two posts, and the same with the arm one pixel higher:
    # the pixels change in many places, the HOG's pooled edge histograms less (0.30 against 0.52, measured).
    def side(lift):
        g = np.zeros((32, 32), np.float32)
        g[4:6, 4:28] = 1.0  # seat
        g[6:20, 4:6] = 1.0  # back
        g[14 + lift:16 + lift, 8:26] = 1.0  # arm bar
        g[6:14 + lift, 9:10] = g[6:14 + lift, 24:25] = 1.0  # its posts
        return (np.tile(g.reshape(-1), 9) * 255).astype(np.uint8)

    (p0, h0, _, _), (p1, h1, _, _) = (profile_parts(side(k)[None]) for k in (0, 1))
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(a)  # noqa: E731
    assert rel(h0, h1) < 0.7 * rel(p0, p1)
    with pytest.raises(ValueError, match="3 silhouettes and 6 depth maps"):
        profile_parts(np.zeros((2, 10), np.uint8))


def test_depth_maps_are_the_expected_distance_a_ray_travels_before_the_opacity_stops_it():
    cube = torch.zeros(4, 4, 4)
    cube[1, 2, 3] = 1.0  # one opaque cell
    cube[:, 0, 0] = 0.5  # a half-opaque row along x
    d = depth_maps(cube)
    assert d.shape == (6, 4, 4)
    assert d[0, 2, 3] == 1.5 / 4 and d[1, 2, 3] == 2.5 / 4  # from -x it is the second cell in, from +x the third
    assert d[2, 1, 3] == 2.5 / 4 and d[3, 1, 3] == 1.5 / 4 and d[4, 1, 2] == 3.5 / 4 and d[5, 1, 2] == 0.5 / 4
    assert d[0, 1, 1] == 1.0  # nothing on that line: the ray passes through
    # Half the rays stop in the first cell, a quarter in the second, ...; 1/16 pass through.
    expected = sum(0.5 ** (i + 1) * (i + 0.5) / 4 for i in range(4)) + 0.5 ** 4
    assert torch.isclose(d[0, 0, 0], torch.tensor(expected)) and torch.isclose(d[1, 0, 0], torch.tensor(expected))


def test_pca_is_refit_when_the_catalog_doubles(tmp_path):
    rng = np.random.default_rng(1)
    store = Store.open(tmp_path / "cat", create=True)
    for r in range(8):
        store.upsert_asset(r, f"a{r}", None, None, "x", {}, {})
    profiles = rng.integers(0, 255, (8, 144), dtype=np.uint8)
    with store.write():
        _store_geometry(store, {r: profiles[r] for r in range(4)}, True, "ck")
    first = GeometryPCA.from_json(store.get_meta("geometry_pca"))
    with store.write():
        _store_geometry(store, {4: profiles[4]}, True, "ck")  # 5 < 2 x 4: same PCA
    assert GeometryPCA.from_json(store.get_meta("geometry_pca")).n_fit == 4
    rows, v = store.decoded("geometry")
    np.testing.assert_allclose(v, first.transform(profiles[:5]), rtol=1e-6)
    with store.write():
        _store_geometry(store, {r: profiles[r] for r in range(5, 8)}, True, "ck")  # 8 >= 2 x 4: refit, old vectors redone
    refit = GeometryPCA.from_json(store.get_meta("geometry_pca"))
    rows, v = store.decoded("geometry")
    assert refit.n_fit == 8 and list(rows) == list(range(8))
    np.testing.assert_allclose(v, refit.transform(profiles), rtol=1e-5, atol=1e-6)
    store.close()


def test_catalog_searches_tags_and_maps_in_geometry_space(run, tmp_path, capsys):
    s = build_catalog(run, tmp_path / "cat", progress=False, log=quiet)
    assert s["decoded"] == {"geometry": 8, "appearance": 8, "texture_only": 8}
    assert index_path(tmp_path / "cat", "geometry").is_file() and index_path(tmp_path / "cat", "appearance").is_file()
    with Catalog.open(tmp_path / "cat") as cat:
        assert cat.spaces == ("shape", "texture", "joint", "geometry", "appearance", "texture_only")
        assert cat.vectors("geometry").shape == (8, GEOMETRY_DIM)
        a = cat.ids[3]
        # An asset's own codes, decoded again at query time, land on its stored vector.
        sc, tc = cat.codes([a])
        hit = cat.search_codes(sc[0], tc[0], k=1, space="geometry")[0]
        assert hit["id"] == a and hit["distance"] < 1e-3
        G = cat.vectors("geometry")
        brute = np.argsort(((G - G[3]) ** 2).sum(1))[1:4]
        assert [h["id"] for h in cat.similar(a, k=3, space="geometry")] == [cat.ids[i] for i in brute]
        fam = dict(zip(cat.ids, cat.values("family")))
        rep = cat.tag("is_chair", {i: "yes" if fam[i] == "chair" else "no" for i in cat.ids[:6]}, space="geometry")
        assert rep["space"] == "geometry" and len(cat.predict("is_chair")) == 8
        assert cat.map("geometry", method="pca")["coords"].shape == (8, 2)
        # Holes of the decoded shapes: proposals regressed from the geometry points, no latent samples (no way back to codes).
        region = cat.sparse_regions(1, space="geometry", samples=3)[0]
        assert "samples" not in region.extra and len(region.center) == G.shape[1]
        assert np.linalg.norm(G - region.center, axis=1).min() == pytest.approx(region.radius, rel=1e-4)
        assert len(region.extra["proposals"]) == 3 and all(p["family"] in set(fam.values()) for p in region.extra["proposals"])
        with pytest.raises(ValueError, match="unknown space 'appearance'"):
            cat.sparse_regions(1, space="appearance")
        # Holes among the assets of each value of a tag, measured against that value's assets only.
        half = {a: "first" if i < 4 else "second" for i, a in enumerate(cat.ids)}
        cat.set_tags("half", half)
        inside = cat.sparse_regions(2, space="geometry", samples=2, within="half")
        for r in inside:
            assert {half[cat.ids[i]] for i in r.border} == {r.extra["group"]} and len(r.border) == 4
            members = G[[i for i, a in enumerate(cat.ids) if half[a] == r.extra["group"]]]
            assert np.linalg.norm(members - r.center, axis=1).min() == pytest.approx(r.radius, rel=1e-4)
        with pytest.raises(CatalogError, match="no asset has a value for 'nothing'"):
            cat.sparse_regions(1, space="geometry", within="nothing")
    assert main(["sparse", str(tmp_path / "cat"), "--space", "geometry", "-n", "1", "--samples", "2",
                 "--previews", str(tmp_path / "gaps"), "--proposals", str(tmp_path / "p.json")]) == 0
    assert len(json.loads((tmp_path / "p.json").read_text())["assets"]) == 2 and (tmp_path / "gaps" / "region-1.png").is_file()
    assert main(["sparse", str(tmp_path / "cat"), "--space", "geometry", "--within", "half", "-n", "1"]) == 0
    assert "region 1 among half=" in capsys.readouterr().out
    assert main(["catalog", "info", str(tmp_path / "cat")]) == 0
    assert '"geometry": "flat"' in capsys.readouterr().out


def test_appearance_is_the_opacity_weighted_colour_histogram_of_the_surface(run):
    model, _, _ = load_run(run)
    shape, texture = (c.detach().numpy() for c in model.codes(torch.arange(3)))
    prof = decode_appearance(model, shape, texture, resolution=8)
    assert prof.shape == (3, BINS ** 3) and prof.dtype == np.uint8
    # Square roots of a normalised histogram: unit rows, up to the uint8 rounding.
    np.testing.assert_allclose((appearance_vectors(prof) ** 2).sum(1), 1.0, atol=0.05)
    # The same histogram by hand for asset 1, from the network's own density and colour.
    h = model.grid_sampler.half_size
    axis = (torch.arange(8) + 0.5) / 8 * 2 * h - h
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    s1, t1 = torch.as_tensor(shape[1]), torch.as_tensor(texture[1])
    with torch.no_grad():
        op = 1 - torch.exp(-model.density_at(pts, s1.expand(len(pts), -1)).view(-1).clamp(min=0) * 2 * h / 8)
        keep = op >= min(0.5, 0.5 * float(op.max()))
        d = torch.nn.functional.normalize(torch.tensor([0.0, 0.3, 1.0]), dim=0).expand(int(keep.sum()), 3)
        rgb = model.colour_at(pts[keep], d, s1.expand(len(d), -1), t1.expand(len(d), -1)).clamp(0, 1).numpy()
    hist, _ = np.histogramdd(rgb, bins=(BINS,) * 3, range=((0, 1),) * 3, weights=op[keep].numpy())
    np.testing.assert_allclose(prof[1] / 255.0, np.sqrt(hist.ravel() / hist.sum()), atol=1 / 255 + 1e-6)
    # Another texture on the same shape paints other colours; the same codes paint the same.
    swapped = decode_appearance(model, shape[[1]], texture[[2]], resolution=8)
    assert not np.array_equal(swapped[0], prof[1]) or np.array_equal(texture[1], texture[2])
    np.testing.assert_array_equal(decode_appearance(model, shape[[1]], texture[[1]], resolution=8)[0], prof[1])
    with pytest.raises(ValueError, match="2 shape codes but 1 texture codes"):
        decode_appearance(model, shape[:2], texture[:1])


def test_catalog_tags_colour_in_appearance_space(run, tmp_path):
    build_catalog(run, tmp_path / "cat", progress=False, log=quiet)
    with Catalog.open(tmp_path / "cat") as cat:
        assert cat.vectors("appearance").shape == (8, BINS ** 3)
        a = cat.ids[5]
        sc, tc = cat.codes([a])
        hit = cat.search_codes(sc[0], tc[0], k=1, space="appearance")[0]
        assert hit["id"] == a and hit["distance"] < 1e-3
        fam = dict(zip(cat.ids, cat.values("family")))
        rep = cat.tag("is_sofa", {i: "yes" if fam[i] == "sofa" else "no" for i in cat.ids[:6]}, space="appearance")
        assert rep["space"] == "appearance" and len(cat.predict("is_sofa")) == 8


def test_no_decoded_build_is_a_clear_error_and_a_later_build_fills_it_in(run, tmp_path):
    cat_dir = tmp_path / "cat"
    s = build_catalog(run, cat_dir, progress=False, decoded=False, log=quiet)
    assert s["decoded"] == {"geometry": 0, "appearance": 0, "texture_only": 0} and not index_path(cat_dir, "geometry").exists()
    with Catalog.open(cat_dir) as cat:
        assert cat.spaces == ("shape", "texture", "joint")
        with pytest.raises(CatalogError, match="no geometry vectors.*catalog build"):
            cat.similar(cat.ids[0], space="geometry")
    s = build_catalog(run, cat_dir, progress=False, log=quiet)
    assert (s["added"], s["decoded"]) == (0, {"geometry": 8, "appearance": 8, "texture_only": 8})
    with Catalog.open(cat_dir) as cat:
        assert cat.vectors("geometry").shape == (8, GEOMETRY_DIM)
    s = build_catalog(run, cat_dir, progress=False, log=quiet)  # nothing new: nothing decoded
    assert s["decoded"] == {"geometry": 0, "appearance": 0, "texture_only": 0}


def test_geometry_decoded_by_an_older_kind_of_profile_is_refused_at_query_time_and_redone_by_the_next_build(run, tmp_path):
    cat_dir = tmp_path / "cat"
    build_catalog(run, cat_dir, progress=False, log=quiet)
    store = Store.open(cat_dir)
    with store.write():  # what a catalog built before object-box profiles holds: no kind, other vectors
        store.conn.execute("DELETE FROM meta WHERE key=?", ("geometry_profile",))
        rows, vec = store.decoded("geometry")
        store.set_decoded_vectors("geometry", rows, vec + 1.0)
    store.close()
    with Catalog.open(cat_dir) as cat:
        shape, texture = cat.codes(cat.ids[:1])
        with pytest.raises(CatalogError, match="older assets2vec.*catalog build"):
            cat.search_codes(shape[0], texture[0], space="geometry")
    s = build_catalog(run, cat_dir, progress=False, log=quiet)
    # The same profiles decoded again give the same PCA, so the texture-only vectors made with it still hold.
    assert s["decoded"] == {"geometry": 8, "appearance": 0, "texture_only": 0}
    with Catalog.open(cat_dir) as cat:
        shape, texture = cat.codes(cat.ids[:1])
        hit = cat.search_codes(shape[0], texture[0], k=1, space="geometry")[0]
        assert hit["id"] == cat.ids[0] and hit["distance"] < 1e-3
