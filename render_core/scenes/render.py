"""Render a composed scene: RGB, depth, instance and semantic maps, amodal object areas.

Each layer (object, clutter item, floor, wall) goes through PyTorch3D's
`MeshRendererWithFragments` on its own and the layers are depth-composited per sample.
With hard rasterization (one face per pixel) that is exactly what rendering the joined
scene gives, and it also yields every object's unoccluded (amodal) silhouette, which is
what the visible fraction needs, and lets walls cull back faces while objects do not.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch3d.renderer import FoVPerspectiveCameras, MeshRendererWithFragments, RasterizationSettings, look_at_view_transform

from render_core.colour import DISPLAY, LINEAR, PIPELINES, linear_to_srgb, srgb_to_linear
from render_core.raster import make_rasterizer
from render_core.rig import camera_to_world, intrinsics
from render_core.scenes.compose import Scene
from render_core.scenes.shading import make_shader, to_pytorch3d


class SceneRenderer:
    """`colour`: "linear" (decode sRGB inputs, shade and average samples in linear light, encode
    the image as sRGB) or "display" (stored values shaded as they are); labels are the same either way."""

    def __init__(self, image_size: int, supersample: int = 1, device: torch.device | str = "cpu", colour: str = LINEAR):
        if colour not in PIPELINES:
            raise ValueError(f"colour must be {LINEAR!r} or {DISPLAY!r}, got {colour!r}")
        self.size, self.ss, self.colour = image_size, supersample, colour
        self.device = torch.device(device)
        self.shader = make_shader(self.device)
        S = image_size * supersample
        self.renderers = {
            cull: MeshRendererWithFragments(
                # bin_size=0: PyTorch3D's coarse-to-fine CUDA path can drop faces when a bin overflows on
                # a dense asset; the naive kernel cannot (the CPU fast path ignores it).
                rasterizer=make_rasterizer(raster_settings=RasterizationSettings(image_size=S, blur_radius=0.0, faces_per_pixel=1,
                                                                                  cull_backfaces=cull, bin_size=0), device=self.device),
                shader=self.shader)
            for cull in (False, True)
        }

    def cameras(self, scene: Scene):
        R, T = look_at_view_transform(eye=[scene.camera.eye], at=[scene.camera.target], up=[(0.0, 1.0, 0.0)])  # CPU
        cams = FoVPerspectiveCameras(R=R, T=T, fov=scene.camera.fov_deg, znear=0.05, zfar=200.0, device=self.device)
        return cams, camera_to_world(R, T)[0].cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def render(self, scene: Scene, keep_layers: bool = False) -> dict:
        """rgb (H,W,3) uint8, depth (H,W) float32 (view-axis z, 0 where nothing), instance (H,W) uint16
        (0: no object), semantic (H,W) uint16, amodal {instance: pixels}, c2w (4,4), K (3,3).
        `keep_layers` adds each layer's centre-sample depth (L,H,W), inf where it misses."""
        cams, c2w = self.cameras(scene)  # c2w (4, 4) on the CPU
        lights = to_pytorch3d(scene.lights, scene.ambient, self.device)
        s, H = self.ss, self.size
        linear = self.colour == LINEAR
        # The scene's background is a display colour like a texture's: decoded to be composited with
        # linearly shaded surfaces, so the encoded image shows it as drawn.
        background = tuple(float(x) for x in (srgb_to_linear(np.asarray(scene.background, np.float64)) if linear else scene.background))
        self.shader.blend_params = self.shader.blend_params.__class__(background_color=background)
        zs, rgbs = [], []
        for layer in scene.layers:
            meshes = layer.mesh.to_meshes(self.device, self.colour)
            images, frags = self.renderers[layer.cull_backfaces](meshes, cameras=cams, lights=lights)
            z = frags.zbuf[0, ..., 0]
            zs.append(torch.where(frags.pix_to_face[0, ..., 0] >= 0, z, torch.full_like(z, float("inf"))))
            rgbs.append(images[0, ..., :3].clamp(0, 1))
        Z = torch.stack(zs)  # (L, S, S)
        zmin, win = Z.min(0)
        hit = torch.isfinite(zmin)
        rgb = torch.stack(rgbs).gather(0, win[None, ..., None].expand(1, *win.shape, 3))[0]
        rgb = torch.where(hit[..., None], rgb, torch.tensor(background, dtype=rgb.dtype, device=rgb.device))
        rgb = rgb.reshape(H, s, H, s, 3).mean((1, 3))  # (H, W, 3); samples average as light does, before encoding
        if linear:
            rgb = linear_to_srgb(rgb)
        c = s // 2  # labels from the sample at each pixel centre: exact, never blended across edges
        win_c, hit_c, zmin_c, Zc = win[c::s, c::s], hit[c::s, c::s], zmin[c::s, c::s], Z[:, c::s, c::s]
        inst_of = torch.tensor([layer.instance for layer in scene.layers], device=self.device)
        sem_of = torch.tensor([layer.semantic for layer in scene.layers], device=self.device)
        instance = torch.where(hit_c, inst_of[win_c], 0)
        semantic = torch.where(hit_c, sem_of[win_c], 0)
        amodal = {int(layer.instance): int(torch.isfinite(Zc[i]).sum()) for i, layer in enumerate(scene.layers) if layer.instance}
        out = {
            "rgb": (rgb * 255 + 0.5).to(torch.uint8).cpu().numpy(),
            "depth": torch.where(hit_c, zmin_c, torch.zeros_like(zmin_c)).float().cpu().numpy(),
            "instance": instance.to(torch.int32).cpu().numpy().astype(np.uint16),
            "semantic": semantic.to(torch.int32).cpu().numpy().astype(np.uint16),
            "amodal": amodal,
            "c2w": c2w,
            "K": intrinsics(scene.camera.fov_deg, H),
        }
        if keep_layers:
            out["layer_depth"] = Zc.float().cpu().numpy()
            out["layer_instance"] = inst_of.cpu().numpy()
        return out
