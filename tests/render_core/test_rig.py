"""Rig geometry: camera centres on their rings, looking at the origin; projection round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from render_core.rig import RigConfig, intrinsics, make_cameras, project, rig_angles, unproject


def test_rig_angles_spread_views_over_rings():
    elev, azim = rig_angles(RigConfig(n_views=18, floor_views=0))
    assert len(elev) == 18
    assert sorted(set(elev.tolist())) == [-10.0, 20.0, 50.0]
    for e in (-10.0, 20.0, 50.0):
        ring = np.sort(azim[elev == e])
        assert len(ring) == 6
        np.testing.assert_allclose(np.diff(ring), 60.0, atol=1e-4)
    elev, _ = rig_angles(RigConfig(n_views=7, elevations=(0.0, 30.0), floor_views=0))
    assert (elev == 0).sum() == 4 and (elev == 30).sum() == 3


def test_camera_centres_on_rings_and_looking_at_origin():
    cfg = RigConfig(n_views=12, elevations=(-10.0, 20.0, 50.0), distance=2.6, floor_views=0)
    cams, c2w, elev, azim = make_cameras(cfg)
    c2w = c2w.numpy()
    centres = c2w[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 2.6, atol=1e-5)
    np.testing.assert_allclose(np.degrees(np.arcsin(centres[:, 1] / 2.6)), elev, atol=1e-3)
    # OpenGL: the camera looks along its -Z axis, which must point at the origin.
    forward = -c2w[:, :3, 2]
    np.testing.assert_allclose(forward, -centres / 2.6, atol=1e-5)
    # +Y of the camera points up in the world (no roll).
    assert (c2w[:, 1, 1] > 0).all()
    # Agrees with PyTorch3D's own camera centre.
    np.testing.assert_allclose(cams.get_camera_center().numpy(), centres, atol=1e-5)
    # Azimuth 0 is in front of the asset (+Z).
    front = np.argmin(np.abs(azim) + np.abs(elev - 20))
    assert centres[front, 2] > 2.0


def test_project_matches_pytorch3d_screen_coordinates():
    cfg = RigConfig(n_views=6, elevations=(15.0,), floor_views=0)
    cams, c2w, _, _ = make_cameras(cfg)
    size = 64
    K = intrinsics(cfg.fov_deg, size)
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3)).astype(np.float32)
    # PyTorch3D screen space: +X left, +Y up, origin at the top-left pixel corner after flipping.
    screen = cams.transform_points_screen(torch.as_tensor(pts)[None].expand(6, -1, -1), image_size=((size, size),))
    for v in range(6):
        uv, depth = project(pts, c2w[v].numpy(), K)
        np.testing.assert_allclose(uv[:, 0], screen[v, :, 0].numpy(), atol=1e-3)
        np.testing.assert_allclose(uv[:, 1], screen[v, :, 1].numpy(), atol=1e-3)
        assert (depth > 0).all()


def test_unproject_inverts_project():
    cfg = RigConfig(n_views=3, elevations=(30.0,), floor_views=0)
    _, c2w, _, _ = make_cameras(cfg)
    K = intrinsics(cfg.fov_deg, 16)
    depth = np.zeros((16, 16), np.float32)
    depth[4:9, 6:12] = 2.4
    pts = unproject(depth, c2w[0].numpy(), K)
    uv, d = project(pts, c2w[0].numpy(), K)
    rows, cols = np.nonzero(depth)
    np.testing.assert_allclose(uv[:, 0], cols + 0.5, atol=1e-4)
    np.testing.assert_allclose(uv[:, 1], rows + 0.5, atol=1e-4)
    np.testing.assert_allclose(d, 2.4, atol=1e-5)


@pytest.mark.parametrize("bad", [dict(n_views=0), dict(elevations=()), dict(elevations=(95.0,)), dict(fov_deg=0.0), dict(distance=0.5)])
def test_bad_rig_config(bad):
    with pytest.raises(ValueError):
        RigConfig(**bad)


def test_floor_ring_sits_at_the_assets_floor():
    cfg = RigConfig(n_views=6, elevations=(20.0,), floor_views=4, floor_lift=0.02)
    assert cfg.total_views == 10
    assert len(rig_angles(cfg)[0]) == 6  # without a floor the ring is left out: it belongs to an asset
    for floor in (-0.5, -0.13):
        _, c2w, elev, azim = make_cameras(cfg, floor=floor)
        centres = c2w.numpy()[:, :3, 3]
        assert len(elev) == 10
        np.testing.assert_allclose(centres[6:, 1], floor + 0.02, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 2.6, atol=1e-5)
        np.testing.assert_allclose(np.sort(azim[6:]), [0.0, 90.0, 180.0, 270.0], atol=1e-4)
        np.testing.assert_allclose(centres[:6, 1], 2.6 * np.sin(np.radians(20.0)), atol=1e-5)
    with pytest.raises(ValueError, match="floor views"):
        RigConfig(floor_views=-1)
    with pytest.raises(ValueError, match="floor lift"):
        RigConfig(floor_lift=0.6, floor_views=0)


def test_poses_look_at_the_origin_from_the_rig_distance():
    import numpy as np

    from render_core.poses import orbit_poses, rig_poses, sphere_poses
    from render_core.rig import RigConfig, make_cameras

    rig = RigConfig()
    for poses in (orbit_poses(20.0, np.array([0.0, 90.0, 200.0]), 2.6), sphere_poses([-10, 30], 5, 2.6), rig_poses(rig, 4)):
        eye = poses[:, :3, 3]
        assert np.allclose(np.linalg.norm(eye, axis=1), 2.6, atol=1e-5)
        forward = -poses[:, :3, 2]  # the camera looks along its -Z
        assert np.allclose(forward, -eye / np.linalg.norm(eye, axis=1, keepdims=True), atol=1e-5)
    assert sphere_poses([-10, 30], 5, 2.6).shape == (10, 4, 4) and rig_poses(rig, 4).shape == (4 * len(rig.elevations), 4, 4)
    assert np.allclose(rig_poses(rig), make_cameras(rig)[1].numpy())


def test_rig_default_is_the_products_and_old_headers_read_as_rendered():
    from render_core.rig import DEFAULT_FLOOR_VIEWS, RigConfig

    assert RigConfig().floor_views == DEFAULT_FLOOR_VIEWS  # what `assets2vec render` renders
    old = RigConfig(floor_views=0).to_json()
    del old["floor_views"]  # a header written before the floor ring existed
    assert RigConfig.from_json(old).floor_views == 0
    assert RigConfig.from_json(RigConfig().to_json()) == RigConfig()
