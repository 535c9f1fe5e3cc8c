"""The fast CPU rasterizer against PyTorch3D's own kernel on random meshes and cameras."""

from __future__ import annotations

import pytest
import torch
from pytorch3d.renderer import (
    FoVOrthographicCameras,
    FoVPerspectiveCameras,
    MeshRasterizer,
    RasterizationSettings,
    look_at_view_transform,
)
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere

from render_core.raster import FastMeshRasterizer, make_rasterizer


def random_meshes(seed: int, n: int = 2) -> Meshes:
    g = torch.Generator().manual_seed(seed)
    verts, faces = [], []
    for i in range(n):
        sphere = ico_sphere(2 + i % 2)
        v = sphere.verts_packed() * (0.6 + 0.5 * torch.rand(sphere.verts_packed().shape[0], 1, generator=g))
        verts.append(v)
        faces.append(sphere.faces_packed())
        # A soup of random triangles: overlaps, slivers, back faces, off-screen parts.
        soup = (torch.rand(60, 3, 3, generator=g) - 0.5) * 2.4
        verts.append(soup.reshape(-1, 3))
        faces.append(torch.arange(180).reshape(60, 3))
    return Meshes(verts=verts, faces=faces)


def random_cameras(seed: int, n: int, ortho: bool = False):
    g = torch.Generator().manual_seed(seed)
    elev = torch.rand(n, generator=g) * 160 - 80
    azim = torch.rand(n, generator=g) * 360
    dist = 2.0 + torch.rand(n, generator=g) * 1.5
    R, T = look_at_view_transform(dist=dist, elev=elev, azim=azim)
    if ortho:
        return FoVOrthographicCameras(R=R, T=T)
    return FoVPerspectiveCameras(R=R, T=T, fov=30 + 30 * torch.rand(n, generator=g))


CASES = [
    dict(image_size=48, faces_per_pixel=1),
    dict(image_size=40, faces_per_pixel=3),
    dict(image_size=(32, 48), faces_per_pixel=2),
    dict(image_size=(48, 32), faces_per_pixel=1),
    dict(image_size=32, faces_per_pixel=2, blur_radius=2e-4),
    dict(image_size=32, faces_per_pixel=1, cull_backfaces=True),
    dict(image_size=32, faces_per_pixel=1, perspective_correct=False),
    dict(image_size=32, faces_per_pixel=2, blur_radius=1e-4, clip_barycentric_coords=True),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_fast_matches_pytorch3d(seed, case):
    meshes = random_meshes(seed)
    cameras = random_cameras(seed, len(meshes))
    settings = RasterizationSettings(bin_size=0, **case)
    fast = FastMeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    ref = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    assert fast.pix_to_face.shape == ref.pix_to_face.shape
    agree = (fast.pix_to_face == ref.pix_to_face).float().mean().item()
    assert agree >= 0.995, f"pix_to_face agreement {agree:.4f}"
    same = (fast.pix_to_face == ref.pix_to_face) & (ref.pix_to_face >= 0)
    assert same.any()
    torch.testing.assert_close(fast.zbuf[same], ref.zbuf[same], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.bary_coords[same], ref.bary_coords[same], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast.dists[same], ref.dists[same], atol=1e-5, rtol=1e-4)
    # Empty slots carry PyTorch3D's fill values.
    empty = ref.pix_to_face < 0
    assert torch.all(fast.zbuf[empty & (fast.pix_to_face < 0)] == -1)


def test_orthographic_cameras():
    meshes = random_meshes(3)
    cameras = random_cameras(3, len(meshes), ortho=True)
    settings = RasterizationSettings(image_size=40, faces_per_pixel=2, bin_size=0)
    fast = FastMeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    ref = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    assert (fast.pix_to_face == ref.pix_to_face).float().mean() >= 0.995


def test_faces_crossing_near_plane_are_clipped_like_pytorch3d():
    # A large quad passing through the camera plane: PyTorch3D clips it at znear / 2.
    verts = torch.tensor([[-3.0, -1, -3], [3, -1, -3], [3, -1, 6], [-3, -1, 6]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    meshes = Meshes([verts], [faces])
    R, T = look_at_view_transform(dist=2.0, elev=10.0, azim=0.0)
    cameras = FoVPerspectiveCameras(R=R, T=T, znear=0.5)
    settings = RasterizationSettings(image_size=32, faces_per_pixel=1, bin_size=0)
    fast = FastMeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    ref = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    assert (fast.pix_to_face == ref.pix_to_face).float().mean() >= 0.995
    assert (ref.pix_to_face >= 0).any()


def test_gradients_fall_back_to_pytorch3d():
    sphere = ico_sphere(1)
    verts = sphere.verts_packed().clone().requires_grad_(True)
    meshes = Meshes([verts], [sphere.faces_packed()])
    R, T = look_at_view_transform(2.5, 10.0, 30.0)
    cameras = FoVPerspectiveCameras(R=R, T=T)
    frags = FastMeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(image_size=16))(meshes)
    frags.zbuf[frags.pix_to_face >= 0].sum().backward()
    assert verts.grad is not None and verts.grad.abs().sum() > 0


def test_empty_and_offscreen_meshes():
    verts = torch.tensor([[50.0, 50, 0], [51, 50, 0], [50, 51, 0]])
    meshes = Meshes([verts], [torch.tensor([[0, 1, 2]])])
    R, T = look_at_view_transform(2.5, 0.0, 0.0)
    frags = FastMeshRasterizer(cameras=FoVPerspectiveCameras(R=R, T=T), raster_settings=RasterizationSettings(image_size=16))(meshes)
    assert (frags.pix_to_face == -1).all()


def test_make_rasterizer_picks_by_device():
    assert isinstance(make_rasterizer(device="cpu"), FastMeshRasterizer)
    stock = make_rasterizer(device="cuda")
    assert type(stock) is MeshRasterizer
