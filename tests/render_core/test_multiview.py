"""Rendered datasets: masks vs mesh projection, depth on the surface, normals, resume, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from render_core.artifacts import ArtifactError
from render_core.assets.library import open_library
from render_core.assets.loaders import load_mesh
from render_core.assets.mesh import normalize
from render_core.dataset import RenderedDataset
from render_core.multiview import RenderConfig, render_library
from render_core.rig import RigConfig, project, unproject


def surface_samples(mesh, n=4000, seed=0):
    tm = trimesh.Trimesh(mesh.verts, mesh.faces, process=False)
    pts, _ = trimesh.sample.sample_surface(tm, n, seed=seed)
    return tm, pts


def test_dataset_contents(small_dataset):
    ds = RenderedDataset(small_dataset)
    assert len(ds) == 8 and ds.image_size == 32 and ds.n_views == 6
    views = ds[0]
    assert views.rgb.shape == (6, 32, 32, 3) and views.rgb.dtype == np.uint8
    assert views.mask.shape == (6, 32, 32) and views.mask.dtype == bool
    assert views.c2w.shape == (6, 4, 4) and views.intrinsics.shape == (3, 3)
    # Background is white, with depth 0 and zero normals.
    bg = views.alpha == 0
    assert (views.mask <= (views.alpha > 0)).all()
    assert (views.rgb[bg] == 255).all() and (views.depth[bg] == 0).all() and (views.normals[bg] == 0).all()
    assert (views.depth[views.mask] > 0).all()
    # Normals are unit length and face the camera.
    n = views.normals[views.mask]
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=2e-3)
    assert (small_dataset / "contact_sheet.png").is_file()
    assert (small_dataset / "thumbs" / f"{ds.asset_ids[0]}.png").is_file()


def test_masks_match_mesh_projection(small_library):
    """Every projected surface point lands where the alpha shows coverage (1 px slack at the
    silhouette), and no mask pixel is far from the projected surface. Alpha is supersampled, so
    even sub-pixel parts (floor-lamp stems are ~0.6 px wide at 64^2) are covered."""
    from render_core.multiview import MultiviewRenderer

    lib = open_library(small_library)
    renderer = MultiviewRenderer(RenderConfig(image_size=64, rig=RigConfig(n_views=6, elevations=(-10.0, 40.0), floor_views=0)))
    for record in lib.records:
        mesh, _ = normalize(load_mesh(lib.path_of(record)))
        _, pts = surface_samples(mesh, 6000)
        out = renderer.render(mesh)
        for v in range(6):
            uv, depth = project(pts, out["c2w"][v], out["intrinsics"])
            cols, rows = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
            assert ((cols >= 0) & (cols < 64) & (rows >= 0) & (rows < 64)).all(), "the rig keeps assets in frame"
            mask = out["mask"][v].astype(bool)
            assert dilate(out["alpha"][v] > 0)[rows, cols].all(), record.id
            assert ((out["alpha"][v] == 255) <= dilate(mask)).all()  # full coverage implies the centre is hit
            hit = np.zeros_like(mask)
            hit[rows, cols] = True
            assert (mask & ~dilate(hit)).sum() <= 0.01 * mask.sum(), record.id


def dilate(m):
    d = m.copy()
    d[1:] |= m[:-1]
    d[:-1] |= m[1:]
    e = d.copy()
    e[:, 1:] |= d[:, :-1]
    e[:, :-1] |= d[:, 1:]
    return e


def test_solid_mask_equals_projection_exactly(tmp_path):
    """A solid with no sub-pixel parts: every surface point lands in the (1-px dilated) mask."""
    lib = tmp_path / "lib"
    lib.mkdir()
    trimesh.creation.icosphere(subdivisions=3).export(lib / "ball.ply")
    trimesh.creation.box(extents=(1.0, 0.6, 0.3)).export(lib / "slab.ply")
    cfg = RenderConfig(image_size=48, rig=RigConfig(n_views=6, elevations=(-10.0, 35.0), floor_views=0))
    render_library(open_library(lib), tmp_path / "ds", cfg, progress=False)
    ds = RenderedDataset(tmp_path / "ds")
    library = open_library(lib)
    for record in library.records:
        mesh, _ = normalize(load_mesh(library.path_of(record)))
        _, pts = surface_samples(mesh, 8000)
        views = ds.load(record.id)
        for v in range(6):
            uv, _ = project(pts, views.c2w[v], views.intrinsics)
            cols, rows = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
            assert dilate(views.mask[v])[rows, cols].all()
            hit = np.zeros_like(views.mask[v])
            hit[rows, cols] = True
            assert (views.mask[v] & ~dilate(hit)).sum() == 0


def test_depth_lies_on_the_surface(small_library, small_dataset):
    ds = RenderedDataset(small_dataset)
    lib = open_library(small_library)
    ids = [r.id for r in lib.records]
    for record in ds.records[:3]:
        mesh, _ = normalize(load_mesh(lib.path_of(lib.records[ids.index(record.id)])))
        tm = trimesh.Trimesh(mesh.verts, mesh.faces, process=False)
        views = ds.load(record.id)
        for v in (0, 3):
            pts = unproject(views.depth[v], views.c2w[v], views.intrinsics)
            _, dist, _ = trimesh.proximity.closest_point_naive(tm, pts)
            assert dist.max() < 2e-3, f"unprojected depth is {dist.max():.4f} off the surface"


def test_resume_skips_finished_and_rerenders_missing(small_library, tmp_path):
    cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=3, elevations=(20.0,), floor_views=0))
    out = tmp_path / "ds"
    first = render_library(open_library(small_library), out, cfg, progress=False)
    assert first["rendered"] == 8
    before = (out / "assets" / "chair-s0-00000.npz").read_bytes()
    (out / "assets" / "lamp-s0-00003.npz").unlink()
    second = render_library(open_library(small_library), out, cfg, progress=False)
    assert second["rendered"] == 1 and second["skipped"] == 7
    assert (out / "assets" / "chair-s0-00000.npz").read_bytes() == before
    assert len(RenderedDataset(out)) == 8


def test_interrupted_run_leaves_no_partial_asset(small_library, tmp_path, monkeypatch):
    import render_core.multiview as mv

    cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=3, elevations=(20.0,), floor_views=0))
    out = tmp_path / "ds"
    real = mv.MultiviewRenderer.render
    calls = {"n": 0}

    def flaky(self, mesh, lighting=mv.Lighting()):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, mesh, lighting)

    monkeypatch.setattr(mv.MultiviewRenderer, "render", flaky)
    with pytest.raises(KeyboardInterrupt):
        render_library(open_library(small_library), out, cfg, progress=False)
    assert len(list((out / "assets").glob("*.npz"))) == 3
    assert not list(out.rglob("*.tmp"))
    assert json.loads((out / "report.json").read_text())["interrupted"] is True
    assert len(RenderedDataset(out)) == 3  # what finished is usable already
    monkeypatch.setattr(mv.MultiviewRenderer, "render", real)
    rep = render_library(open_library(small_library), out, cfg, progress=False)
    assert rep["rendered"] == 5 and rep["skipped"] == 3


def test_bad_assets_are_reported_and_the_batch_goes_on(tmp_path):
    lib = tmp_path / "lib"
    (lib / "good").mkdir(parents=True)
    trimesh.creation.box().export(lib / "good" / "box.stl")
    (lib / "bad").mkdir()
    (lib / "bad" / "empty.obj").write_bytes(b"")
    (lib / "bad" / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0))
    rep = render_library(open_library(lib), tmp_path / "ds", cfg, progress=False)
    assert rep["rendered"] == 1
    errors = {f["path"]: f["error"] for f in rep["failed"]}
    assert "empty file" in errors["bad/empty.obj"] and "NaN/inf" in errors["bad/nan.obj"]
    assert json.loads((tmp_path / "ds" / "report.json").read_text())["failed"] == rep["failed"]


def test_different_settings_refuse_to_mix(small_library, tmp_path):
    out = tmp_path / "ds"
    render_library(open_library(small_library), out, RenderConfig(image_size=16, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0)), progress=False)
    with pytest.raises(ArtifactError, match="different settings"):
        render_library(open_library(small_library), out, RenderConfig(image_size=32, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0)), progress=False)


def test_random_lighting_is_deterministic_per_seed(small_library, tmp_path):
    def run(name, seed):
        cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0), lighting="random", seed=seed)
        render_library(open_library(small_library), tmp_path / name, cfg, progress=False)
        return RenderedDataset(tmp_path / name).load("chair-s0-00000").rgb

    a, b, c = run("a", 0), run("b", 0), run("c", 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_not_a_dataset(tmp_path):
    with pytest.raises(ArtifactError, match="not a dataset"):
        RenderedDataset(tmp_path)
    (tmp_path / "artifact.json").write_text('{"kind": "library", "format_version": 1}')
    with pytest.raises(ArtifactError, match="is a library, but a dataset is needed"):
        RenderedDataset(tmp_path)
    (tmp_path / "artifact.json").write_text("{broken")
    with pytest.raises(ArtifactError, match="unreadable header"):
        RenderedDataset(tmp_path)


def test_nerfstudio_cameras_read_the_stored_convention(small_library, small_dataset):
    """Rays from nerfstudio's `Cameras`, built straight from the stored c2w and intrinsics, hit the
    rendered surface at the stored depth: the dataset's camera convention is nerfstudio's."""
    import torch
    from nerfstudio.cameras.cameras import Cameras, CameraType

    ds = RenderedDataset(small_dataset)
    lib = open_library(small_library)
    record = ds.records[0]
    views = ds.load(record.id)
    mesh, _ = normalize(load_mesh(lib.path_of(next(r for r in lib.records if r.id == record.id))))
    tm = trimesh.Trimesh(mesh.verts, mesh.faces, process=False)
    K = views.intrinsics
    cams = Cameras(
        camera_to_worlds=torch.as_tensor(views.c2w[:, :3, :]),
        fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
        width=ds.image_size, height=ds.image_size, camera_type=CameraType.PERSPECTIVE,
    )
    for v in (0, 4):
        rays = cams.generate_rays(camera_indices=v)
        origins, dirs = rays.origins.numpy(), rays.directions.numpy()  # (H, W, 3)
        forward = -views.c2w[v, :3, 2]
        rows, cols = np.nonzero(views.mask[v])
        t = views.depth[v][rows, cols] / (dirs[rows, cols] @ forward)  # z-depth -> distance along the ray
        pts = origins[rows, cols] + dirs[rows, cols] * t[:, None]
        _, dist, _ = trimesh.proximity.closest_point_naive(tm, pts)
        assert dist.max() < 2e-3


def test_any_error_in_one_asset_is_isolated(small_library, tmp_path, monkeypatch):
    import render_core.multiview as mv

    real = mv.load_mesh

    def sometimes_broken(path, limits):
        if "sofa" in str(path):
            raise TypeError("a surprise from a third-party parser")
        return real(path, limits)

    monkeypatch.setattr(mv, "load_mesh", sometimes_broken)
    cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0))
    rep = render_library(open_library(small_library), tmp_path / "ds", cfg, progress=False)
    assert rep["rendered"] == 6 and len(rep["failed"]) == 2
    assert all("TypeError" in f["error"] for f in rep["failed"])


def test_resume_refuses_another_library(small_library, tmp_path):
    from render_core.assets.procedural.generate import generate_library

    other = tmp_path / "other"
    generate_library(other, 2, 1, progress=False)
    cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0))
    render_library(open_library(small_library), tmp_path / "ds", cfg, progress=False)
    with pytest.raises(ArtifactError, match="rendered from"):
        render_library(open_library(other), tmp_path / "ds", cfg, progress=False)


def test_chunked_rendering_matches_one_batch(small_library):
    from render_core.multiview import MultiviewRenderer

    lib = open_library(small_library)
    mesh, _ = normalize(load_mesh(lib.path_of(lib.records[0])))
    cfg = RenderConfig(image_size=24, rig=RigConfig(n_views=6, elevations=(-10.0, 40.0), floor_views=0))
    whole = MultiviewRenderer(cfg).render(mesh)
    chunked = MultiviewRenderer(cfg)
    chunked.max_samples_per_chunk = (24 * 3) ** 2 * 2  # two views per chunk
    parts = chunked.render(mesh)
    for key in ("rgb", "alpha", "mask", "depth", "normals", "c2w"):
        np.testing.assert_array_equal(whole[key], parts[key])


def test_dataset_files_are_byte_identical_across_runs(small_library, tmp_path):
    import time

    cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0))
    render_library(open_library(small_library), tmp_path / "a", cfg, progress=False)
    time.sleep(1.1)  # across a clock second: no timestamps may leak into the files
    render_library(open_library(small_library), tmp_path / "b", cfg, progress=False)
    for p in sorted((tmp_path / "a" / "assets").glob("*.npz")):
        assert p.read_bytes() == (tmp_path / "b" / "assets" / p.name).read_bytes()


def test_floor_ring_sees_through_the_gap_under_a_low_body():
    """A long, low body on four short legs and the same body down to the floor (a plinth): from
    the floor ring the pixel under the middle of the body is background for the legs, covered for
    the plinth, while every fixed-ring view covers it (from -10 deg, with the body's underside)."""
    from render_core.assets.mesh import MeshData
    from render_core.multiview import MultiviewRenderer

    def mesh(legs: bool):
        gap = 0.04 if legs else 0.0
        parts = [trimesh.creation.box(extents=(1.0, 0.25 - gap, 0.45), transform=trimesh.transformations.translation_matrix((0, gap / 2, 0)))]
        if legs:
            for x in (-0.46, 0.46):
                for z in (-0.2, 0.2):
                    parts.append(trimesh.creation.box(extents=(0.03, gap, 0.03), transform=trimesh.transformations.translation_matrix((x, -0.125 + gap / 2, z))))
        tm = trimesh.util.concatenate(parts)
        return normalize(MeshData(np.asarray(tm.vertices, np.float32), np.asarray(tm.faces, np.int64)))[0]

    cfg = RenderConfig(image_size=64, rig=RigConfig(n_views=6, elevations=(-10.0, 30.0), floor_views=2))
    renderer = MultiviewRenderer(cfg)
    legged, plinth = renderer.render(mesh(True)), renderer.render(mesh(False))
    assert legged["mask"].shape[0] == 8
    for out in (legged, plinth):
        np.testing.assert_allclose(out["c2w"][6:, 1, 3], -0.125 + 0.02, atol=1e-4)
    np.testing.assert_allclose(legged["c2w"][:6], plinth["c2w"][:6])
    gap_centre = np.array([[0.0, -0.125 + 0.02, 0.0]])
    for v in range(8):
        uv, _ = project(gap_centre, legged["c2w"][v], legged["intrinsics"])
        c, r = np.floor(uv[0]).astype(int)
        if v < 6:  # the fixed rings see the body (its underside, from -10 deg) where the gap is
            assert legged["mask"][v, r, c] == 1
        else:  # the floor ring's front and back views look through it
            assert legged["mask"][v, r, c] == 0 and plinth["mask"][v, r, c] == 1
