"""Training images for the photo encoder: the catalog's own meshes under randomised cameras and lights,
laid on randomised backgrounds with a photo's colour cast (domain randomisation, Tobin et al. 2017).

A photo differs from our renders in everything but the object: the lens and viewpoint, the light and
its colour, the background (a studio sweep, a wall and floor with a shadow, clutter), the camera's
exposure and white balance, and how well the object was cut out. The encoder sees each of these
varied far beyond what photos show, so that it learns what stays: the object. `render_views` renders
the meshes once (RGBA, with the object's alpha); `Randomiser` draws a new photo from them at every
training step, framed as `assets2vec.photo.prepare_photo` frames a real photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from assets2vec.photo import FILL


@dataclass(frozen=True)
class ViewConfig:
    views: int = 48
    """renders per asset, from cameras drawn over the whole sphere above the floor"""
    size: int = 64
    """render side in pixels"""
    supersample: int = 1
    """samples per pixel side: the crop's resampling smooths the edges, so one is enough"""
    views_per_light: int = 8
    """views that share one random light (a light is one batched render call)"""
    elevation: tuple[float, float] = (-5.0, 60.0)
    fov: tuple[float, float] = (25.0, 60.0)
    fill: tuple[float, float] = (0.45, 0.9)
    """share of the frame the object's bounding sphere spans"""
    seed: int = 0


def random_cameras(rng: np.random.Generator, n: int, config: ViewConfig, device="cpu"):
    """PyTorch3D cameras looking at the origin: azimuth uniform, elevation, field of view and the
    object's share of the frame drawn from the config's ranges."""
    from pytorch3d.renderer import FoVPerspectiveCameras

    from render_core.rig import look_at_rt

    az = rng.uniform(0.0, 360.0, n)
    el = rng.uniform(*config.elevation, n)
    fov = rng.uniform(*config.fov, n)
    fill = rng.uniform(*config.fill, n)
    # A unit-box asset's bounding sphere (radius sqrt(3)/2) spans `fill` of the half-field at this distance.
    radius = math.sqrt(3) / 2
    dist = radius / np.sin(np.arctan(fill * np.tan(np.deg2rad(fov) / 2)))
    Rs, Ts = zip(*(look_at_rt(np.float32([e]), np.float32([a]), float(d)) for e, a, d in zip(el, az, dist)))
    R, T = torch.cat(Rs), torch.cat(Ts)
    return FoVPerspectiveCameras(R=R, T=T, fov=torch.as_tensor(fov, dtype=torch.float32), znear=0.05,
                                 zfar=float(dist.max()) + 2.0, device=device)


def random_light(rng: np.random.Generator):
    """A light from anywhere above, of any strength and colour temperature the photos may have."""
    from render_core.lighting import Lighting

    az, el = rng.uniform(0, 2 * np.pi), rng.uniform(np.deg2rad(10), np.deg2rad(85))
    direction = (float(np.cos(el) * np.sin(az)), float(np.sin(el)), float(np.cos(el) * np.cos(az)))
    w = float(rng.uniform(-1, 1))  # > 0 warm, < 0 cool
    colour = (1.0, 1.0 - 0.12 * w, 1.0 - 0.3 * w) if w >= 0 else (1.0 + 0.3 * w, 1.0 + 0.12 * w, 1.0)
    return Lighting(direction=direction, ambient=float(rng.uniform(0.2, 0.7)), diffuse=float(rng.uniform(0.3, 0.8)),
                    specular=float(rng.uniform(0.0, 0.3)), colour=colour)


def render_views(meshes, config: ViewConfig = ViewConfig(), progress: bool = True, total: int | None = None,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """(N, V, S, S, 4) uint8 sRGB renders with alpha of N normalised `MeshData`, `config.views` each.
    `meshes`: an iterable of (asset id, mesh or None) pairs, read one at a time (`total` of them, for the
    progress bar; None renders nothing); each asset's cameras and lights come from the seed and its id, so a render does
    not depend on the others."""
    from tqdm.auto import tqdm

    from render_core.multiview import MultiviewRenderer, RenderConfig, asset_rng
    from render_core.rig import RigConfig

    renderer = MultiviewRenderer(RenderConfig(image_size=config.size, rig=RigConfig(floor_views=0), supersample=config.supersample),
                                 device)
    out = []
    for asset_id, mesh in tqdm(meshes, total=total, desc="encoder views", unit="asset", disable=not progress):
        if mesh is None:  # an unreadable mesh (see `photo_encoder.run_meshes`): no views, transparent
            out.append(np.zeros((config.views, config.size, config.size, 4), np.uint8))
            continue
        rng = asset_rng(config.seed, f"photo-encoder/{asset_id}")
        cams = random_cameras(rng, config.views, config, device)
        parts = []
        for i in range(0, config.views, config.views_per_light):
            rows = list(range(i, min(i + config.views_per_light, config.views)))
            views = renderer.render_views(mesh, random_light(rng), cams[rows])
            parts.append(np.concatenate([views["rgb"], views["alpha"][..., None]], -1))
        out.append(np.concatenate(parts))
    return np.stack(out)


class Randomiser:
    """Draws training photos from renders: the object framed as a photo's crop is (its box's longer side
    `FILL` of the crop, with the box's error), laid on a random background with a soft shadow, under a
    random exposure, white balance and gamma, with a mask channel as a segmentation would give it."""

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.gen = size, generator

    def _u(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=self.gen)

    CANVAS = 1.75
    """the scene is composed on a canvas this much wider than the crop: room for a shadow, and for a crop
    whose box took the shadow in"""

    def __call__(self, rgba: torch.Tensor) -> torch.Tensor:
        """(B, 4, size, size) float inputs (sRGB colours in [0, 1], then the mask) from (B, S, S, 4) uint8 renders."""
        x = rgba.permute(0, 3, 1, 2).float() / 255.0
        B, W = len(x), int(round(self.size * self.CANVAS))
        fg = self._crop(x, W, FILL / self.CANVAS, torch.ones(B), torch.zeros(B, 2), premultiplied=True)
        alpha = fg[:, 3:4]
        shadow = self._shadow(alpha)
        img = fg[:, :3] * alpha + self._background(B, W) * shadow * (1 - alpha)
        scene = torch.cat([img, self._segmentation(alpha, shadow)], 1)
        # The crop a photo's preparation makes: around the segmentation's box, which may hold the shadow.
        out = self._crop(scene, self.size, FILL, self._u(B, 0.85, 1.2), torch.stack([self._u(B, -0.06, 0.06), self._u(B, -0.06, 0.06)], 1))
        return torch.cat([self._camera(out[:, :3]), (out[:, 3:4] > 0.5).float()], 1)

    def _crop(self, x: torch.Tensor, size: int, fill: float, scale: torch.Tensor, shift: torch.Tensor,
              premultiplied: bool = False) -> torch.Tensor:
        """Crop each image to a square around the box of its channel 3 (> 0.5), the box's longer side
        `fill` of the crop times `scale` (B,), the centre moved by `shift` (B, 2) crop sides; resize to `size`."""
        B, _, S, _ = x.shape
        on = x[:, 3] > 0.5
        ys, xs = on.any(2).float(), on.any(1).float()
        idx = torch.arange(S, dtype=torch.float32)
        big = float(S)
        y0 = torch.where(ys > 0, idx, big).amin(1)
        y1 = torch.where(ys > 0, idx, -1.0).amax(1) + 1
        x0 = torch.where(xs > 0, idx, big).amin(1)
        x1 = torch.where(xs > 0, idx, -1.0).amax(1) + 1
        side = torch.maximum(x1 - x0, y1 - y0).clamp(min=2) / fill * scale
        cx = (x0 + x1) / 2 + side * shift[:, 0]
        cy = (y0 + y1) / 2 + side * shift[:, 1]
        # affine_grid maps output [-1, 1] to input [-1, 1] (align_corners=False: pixel edges)
        theta = torch.zeros(B, 2, 3)
        theta[:, 0, 0] = side / S
        theta[:, 1, 1] = side / S
        theta[:, 0, 2] = 2 * cx / S - 1
        theta[:, 1, 2] = 2 * cy / S - 1
        grid = F.affine_grid(theta, (B, 4, size, size), align_corners=False)
        if premultiplied:  # a render: transparent outside, colours weighted by coverage while resampling
            premult = torch.cat([x[:, :3] * x[:, 3:4], x[:, 3:4]], 1)
            out = F.grid_sample(premult, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            rgb = out[:, :3] / out[:, 3:4].clamp(min=1e-3)
            return torch.cat([rgb.clamp(0, 1), out[:, 3:4]], 1)
        # a composed photo: its border continues outside the canvas; the mask is empty there
        rgb = F.grid_sample(x[:, :3], grid, mode="bilinear", padding_mode="border", align_corners=False)
        mask = F.grid_sample(x[:, 3:4], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return torch.cat([rgb, mask], 1)

    def _background(self, B: int, s: int) -> torch.Tensor:
        """Plain sweeps, walls over floors, textures and clutter, in any colours, (B, 3, s, s)."""
        kind = torch.randint(4, (B,), generator=self.gen)
        light = torch.rand(B, 1, 1, 1, generator=self.gen) < 0.5  # studio sweeps are mostly light
        top = torch.where(light, 0.75 + 0.25 * torch.rand(B, 3, 1, 1, generator=self.gen), torch.rand(B, 3, 1, 1, generator=self.gen))
        bottom = torch.rand(B, 3, 1, 1, generator=self.gen)
        rows = torch.linspace(0, 1, s).view(1, 1, s, 1)
        seam = self._u(B, 0.2, 0.9).view(B, 1, 1, 1)
        two_tone = torch.where(rows < seam, top, bottom) * (1 - 0.2 * rows * torch.rand(B, 1, 1, 1, generator=self.gen))
        plain = top.expand(B, 3, s, s) * (1 - 0.15 * rows * torch.rand(B, 1, 1, 1, generator=self.gen))
        coarse = torch.rand(B, 3, 4, 4, generator=self.gen)
        fine = torch.rand(B, 1, s // 4, s // 4, generator=self.gen)
        texture = (0.7 * F.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False)
                   + 0.3 * F.interpolate(fine, size=(s, s), mode="bilinear", align_corners=False))
        bg = torch.where(kind.view(B, 1, 1, 1) == 0, plain, torch.where(kind.view(B, 1, 1, 1) == 1, two_tone, texture))
        clutter = kind == 3
        for _ in range(4):  # boxes of other objects around (and behind) the asset
            c = torch.rand(B, 3, 1, 1, generator=self.gen)
            x0, y0 = (self._u(B, -0.2, 0.9) * s).long(), (self._u(B, -0.2, 0.9) * s).long()
            w, h = (self._u(B, 0.1, 0.5) * s).long(), (self._u(B, 0.1, 0.5) * s).long()
            ii = torch.arange(s)
            inside = (((ii.view(1, s, 1) >= y0.view(B, 1, 1)) & (ii.view(1, s, 1) < (y0 + h).view(B, 1, 1)))
                      & ((ii.view(1, 1, s) >= x0.view(B, 1, 1)) & (ii.view(1, 1, s) < (x0 + w).view(B, 1, 1))))
            bg = torch.where((inside & clutter.view(B, 1, 1))[:, None], c, bg)
        return bg.clamp(0, 1)

    def _shadow(self, alpha: torch.Tensor) -> torch.Tensor:
        """(B, 1, s, s) multiplier: in most photos a soft shadow cast beside and below the object."""
        B, s = len(alpha), alpha.shape[-1]
        k = max(3, s // 8) | 1
        blob = F.avg_pool2d(alpha, k, stride=1, padding=k // 2)
        dy = (self._u(B, 0.0, 0.15) * s).long()
        dx = (self._u(B, -0.25, 0.25) * s).long()
        moved = torch.stack([torch.roll(blob[i], shifts=(int(dy[i]), int(dx[i])), dims=(1, 2)) for i in range(B)])
        moved = torch.maximum(moved, blob * (dy.view(B, 1, 1, 1) > 0))  # the shadow joins the object's foot
        moved = F.avg_pool2d(moved, k, stride=1, padding=k // 2)
        depth = self._u(B, 0.15, 0.6).view(B, 1, 1, 1) * (torch.rand(B, 1, 1, 1, generator=self.gen) < 0.7)
        return 1 - depth * moved.clamp(0, 1)

    def _camera(self, img: torch.Tensor) -> torch.Tensor:
        """Exposure, white balance, gamma, blur and noise: what a camera and its settings do to the colours."""
        B = len(img)
        gain = torch.exp(self._u(B, -0.5, 0.4)).view(B, 1, 1, 1) * torch.exp(0.15 * torch.randn(B, 3, 1, 1, generator=self.gen))
        img = (img * gain).clamp(0, 1) ** torch.exp(self._u(B, -0.25, 0.25)).view(B, 1, 1, 1)
        blur = torch.rand(B, generator=self.gen) < 0.3
        if blur.any():
            img[blur] = F.avg_pool2d(F.pad(img[blur], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return (img + 0.02 * torch.rand(B, 1, 1, 1, generator=self.gen) * torch.randn(img.shape, generator=self.gen)).clamp(0, 1)

    def _segmentation(self, alpha: torch.Tensor, shadow: torch.Tensor) -> torch.Tensor:
        """The object's mask as a segmentation finds it: at times grown or shrunk by a pixel, and in a
        third of the photos with the darker part of its shadow taken in (the commonest error on a
        floor or a studio sweep)."""
        B = len(alpha)
        mask = (alpha > 0.5).float()
        grow = torch.rand(B, generator=self.gen)
        dil = F.max_pool2d(mask, 3, stride=1, padding=1)
        ero = -F.max_pool2d(-mask, 3, stride=1, padding=1)
        mask = torch.where((grow < 0.2).view(B, 1, 1, 1), dil, torch.where((grow > 0.8).view(B, 1, 1, 1), ero, mask))
        with_shadow = (torch.rand(B, 1, 1, 1, generator=self.gen) < 1 / 3) & (shadow < 0.85)
        return torch.maximum(mask, with_shadow.float())
