"""Renderer composition for multiview datasets: rasterizer + Phong shader, lights as data.

Built the PyTorch3D way, `MeshRendererWithFragments(rasterizer, shader)`, with
cameras and lights passed per call, so the same renderer serves every asset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pytorch3d.renderer import (
    BlendParams,
    DirectionalLights,
    HardPhongShader,
    Materials,
    MeshRendererWithFragments,
    RasterizationSettings,
)

from render_core.raster import make_rasterizer

from render_core.lighting import WHITE, Lighting, random_lighting  # noqa: F401  (re-exported: lights are shading's data)


def make_renderer(cameras, image_size: int, device) -> MeshRendererWithFragments:
    settings = RasterizationSettings(image_size=image_size, blur_radius=0.0, faces_per_pixel=1)
    rasterizer = make_rasterizer(cameras=cameras, raster_settings=settings, device=device)
    shader = HardPhongShader(
        device=device,
        cameras=cameras,
        materials=Materials(device=device, shininess=16.0),
        blend_params=BlendParams(background_color=WHITE),
    )
    return MeshRendererWithFragments(rasterizer=rasterizer, shader=shader)


def face_normals_towards_camera(meshes, pix_to_face: torch.Tensor, cameras) -> torch.Tensor:
    """World-space unit normals (V, H, W, 3) of the visible face, flipped to face the camera; 0 off the mesh.

    Geometric face normals: exact for any mesh, and facing the viewer also for
    single-sided surfaces (a lamp shade seen from inside).
    """
    face_n = meshes.faces_normals_packed()  # (F_total, 3)
    p2f = pix_to_face[..., 0]  # (V, H, W)
    valid = p2f >= 0
    n = face_n[p2f.clamp_min(0)]  # (V, H, W, 3)
    centres = cameras.get_camera_center()  # (V, 3)
    verts = meshes.verts_packed()
    faces = meshes.faces_packed()
    face_centre = verts[faces].mean(1)[p2f.clamp_min(0)]  # (V, H, W, 3)
    to_cam = centres[:, None, None, :] - face_centre
    flip = (n * to_cam).sum(-1, keepdim=True) < 0
    n = torch.where(flip, -n, n)
    return torch.where(valid[..., None], n, torch.zeros_like(n))
