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

WHITE = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Lighting:
    direction: tuple[float, float, float] = (0.35, 1.0, 0.6)  # towards the light: above, front-right
    ambient: float = 0.5
    diffuse: float = 0.5
    specular: float = 0.05
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def lights(self, device) -> DirectionalLights:
        c = np.asarray(self.colour, dtype=np.float32)
        return DirectionalLights(
            direction=[list(self.direction)],
            ambient_color=[list(c * self.ambient)],
            diffuse_color=[list(c * self.diffuse)],
            specular_color=[list(c * self.specular)],
            device=device,
        )


def random_lighting(rng: np.random.Generator) -> Lighting:
    """A plausible studio light: from the upper hemisphere, mild colour temperature shift.

    Drawn once per asset (not per view) so the views of one asset stay consistent.
    """
    az = rng.uniform(0, 2 * np.pi)
    el = rng.uniform(np.deg2rad(20), np.deg2rad(80))
    direction = (float(np.cos(el) * np.sin(az)), float(np.sin(el)), float(np.cos(el) * np.cos(az)))
    w = float(rng.uniform(-1, 1))  # > 0 warm (less blue), < 0 cool (less red)
    colour = (1.0, 1.0 - 0.05 * w, 1.0 - 0.12 * w) if w >= 0 else (1.0 + 0.12 * w, 1.0 + 0.05 * w, 1.0)
    ambient = float(rng.uniform(0.35, 0.6))
    return Lighting(direction=direction, ambient=ambient, diffuse=float(rng.uniform(0.35, 0.6)), specular=0.05, colour=colour)


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
