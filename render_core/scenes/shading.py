"""Scene lighting: several point and directional lights through one PyTorch3D shader.

PyTorch3D's Phong shaders take one lights object per batch element; a scene has 1-8
lights of mixed types, so `MultiLightPhongShader` sums `phong_shading` over a list of
lights (ambient counted once, carried by the first) and blends like `HardPhongShader`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from pytorch3d.renderer import BlendParams, DirectionalLights, Materials, PointLights
from pytorch3d.renderer.blending import hard_rgb_blend
from pytorch3d.renderer.mesh.shader import ShaderBase
from pytorch3d.renderer.mesh.shading import phong_shading

from render_core.scenes.config import LightConfig


@dataclass(frozen=True)
class SceneLight:
    type: str  # "point" or "directional"
    vector: tuple[float, float, float]  # position (point) or direction towards the light (directional)
    intensity: float
    colour: tuple[float, float, float]

    def to_json(self) -> dict:
        return asdict(self)


def _warm(w: float) -> tuple[float, float, float]:
    return (1.0, 1.0 - 0.06 * w, 1.0 - 0.15 * w) if w >= 0 else (1.0 + 0.15 * w, 1.0 + 0.06 * w, 1.0)


def sample_lights(cfg: LightConfig, rng: np.random.Generator) -> tuple[list[SceneLight], float]:
    """(lights, ambient strength) for one scene."""
    n = int(rng.integers(int(cfg.count[0]), int(cfg.count[1]) + 1))
    lights = []
    for _ in range(n):
        kind = str(cfg.types[int(rng.integers(len(cfg.types)))])
        if kind == "point":
            a = rng.uniform(0, 2 * np.pi)
            r = rng.uniform(*cfg.radius)
            vec = (float(r * np.sin(a)), float(rng.uniform(*cfg.height)), float(r * np.cos(a)))
        else:
            az, el = rng.uniform(0, 2 * np.pi), rng.uniform(np.deg2rad(25), np.deg2rad(80))
            vec = (float(np.cos(el) * np.sin(az)), float(np.sin(el)), float(np.cos(el) * np.cos(az)))
        lights.append(SceneLight(kind, vec, float(rng.uniform(*cfg.intensity)), _warm(float(rng.uniform(*cfg.warmth)))))
    return lights, float(rng.uniform(*cfg.ambient))


def to_pytorch3d(lights: list[SceneLight], ambient: float, device) -> list:
    out = []
    for i, light in enumerate(lights):
        c = np.asarray(light.colour, np.float32)
        amb = [list(np.full(3, ambient, np.float32))] if i == 0 else [[0.0, 0.0, 0.0]]
        common = dict(ambient_color=amb, diffuse_color=[list(c * light.intensity)],
                      specular_color=[list(c * 0.15 * light.intensity)], device=device)
        if light.type == "point":
            out.append(PointLights(location=[list(light.vector)], **common))
        else:
            out.append(DirectionalLights(direction=[list(light.vector)], **common))
    return out


class MultiLightPhongShader(ShaderBase):
    """`HardPhongShader` with a list of lights: per-pixel Phong, one term per light, summed."""

    def forward(self, fragments, meshes, **kwargs) -> torch.Tensor:
        cameras = super()._get_cameras(**kwargs)
        texels = meshes.sample_textures(fragments)
        lights = kwargs.get("lights", self.lights)
        materials = kwargs.get("materials", self.materials)
        blend_params = kwargs.get("blend_params", self.blend_params)
        colors = sum(phong_shading(meshes=meshes, fragments=fragments, texels=texels, lights=light, cameras=cameras,
                                   materials=materials) for light in lights)
        return hard_rgb_blend(colors, fragments, blend_params)


def make_shader(device, background=(1.0, 1.0, 1.0)) -> MultiLightPhongShader:
    return MultiLightPhongShader(device=device, materials=Materials(device=device, shininess=24.0),
                                 blend_params=BlendParams(background_color=background))
