"""Compose one scene: draw catalog assets, size and place them on a floor, add walls,
clutter, a camera and lights. Pure geometry and randomness; `render.py` turns it into pixels.

Everything random comes from the one generator passed in, in a fixed order, so a scene is a
function of its seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from render_core.assets.mesh import MeshData, UVTexture
from render_core.assets.procedural.appearance import SPLIT, sample_appearance, texture_image
from render_core.assets.procedural.geometry import MeshBuilder, rot_y
from render_core.scenes.config import SceneConfig
from render_core.scenes.placement import Footprint, place
from render_core.scenes.shading import SceneLight, sample_lights

# Semantic classes that every scene set has, before the object classes.
STUFF_CLASSES = ("background", "floor", "wall", "clutter")
FLOOR, WALL, CLUTTER = 1, 2, 3


@dataclass(frozen=True)
class SceneAsset:
    """A catalog asset as the scene generator sees it."""

    id: str
    path: Path  # the mesh file
    category: str | None
    label: str  # its semantic class name (value of the config's `semantic_by`)
    metric_height: float | None = None  # metres, when the library records real size
    extent: tuple[float, float, float] | None = None  # source bounding box (any unit): aspect ratios
    up_axis: str = "y"  # the file's up axis, as the dataset was rendered with


@dataclass
class SceneObject:
    instance: int  # 1.. in the instance map; clutter follows the catalog assets
    mesh: MeshData  # world coordinates, metres
    semantic: int
    footprint: Footprint
    scale: float
    asset: SceneAsset | None = None  # None for clutter


@dataclass
class Layer:
    """A surface rendered on its own and depth-composited: objects, clutter, floor, walls."""

    mesh: MeshData
    semantic: int
    instance: int = 0
    cull_backfaces: bool = False  # walls: seen from behind they vanish, so the camera sees the room


@dataclass
class Camera:
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    fov_deg: float

    def to_json(self) -> dict:
        return {"eye": list(self.eye), "target": list(self.target), "fov_deg": self.fov_deg}


@dataclass
class Scene:
    index: int
    seed: int
    objects: list[SceneObject]
    layers: list[Layer]
    camera: Camera
    lights: list[SceneLight]
    ambient: float
    background: tuple[float, float, float]
    floor_size: float
    dropped: list[dict] = field(default_factory=list)  # drawn assets left out, with the reason


def _quad_grid(corner: np.ndarray, u: np.ndarray, v: np.ndarray, nu: int, nv: int, image: np.ndarray) -> MeshData:
    """A rectangle from `corner` spanning vectors u, v, as nu x nv tiles each showing the whole
    texture; faces wind counter-clockwise seen from the side u x v points to."""
    verts, faces, uvs = [], [], []
    for i in range(nu):
        for j in range(nv):
            p = corner + u * (i / nu) + v * (j / nv)
            du, dv = u / nu, v / nv
            k = len(verts)
            verts += [p, p + du, p + du + dv, p + dv]
            uvs += [(0, 0), (1, 0), (1, 1), (0, 1)]
            faces += [(k, k + 1, k + 2), (k, k + 2, k + 3)]
    faces = np.asarray(faces, np.int64)
    tex = UVTexture(verts_uvs=np.asarray(uvs, np.float32), faces_uvs=faces.copy(), image=image)
    return MeshData(verts=np.asarray(verts, np.float32), faces=faces, texture=tex)


def _surface_image(rng: np.random.Generator, textured: bool) -> np.ndarray:
    if textured:
        img = texture_image(sample_appearance(rng))[:, :SPLIT].astype(np.float32) / 255.0
        return np.ascontiguousarray(0.35 + 0.6 * img)  # lighter than furniture: a room, not an object
    return np.broadcast_to(rng.uniform(0.35, 0.95, 3).astype(np.float32), (4, 4, 3)).copy()


def _clutter_mesh(rng: np.random.Generator, size: float) -> MeshData:
    b = MeshBuilder()
    kind = int(rng.integers(3))
    if kind == 0:
        b.box((0, 0, 0), rng.uniform(0.5, 1.0, 3) * size)
    elif kind == 1:
        b.cylinder((0, -size / 2, 0), (0, size / 2, 0), size * rng.uniform(0.2, 0.5))
    else:
        b.sphere((0, 0, 0), size / 2)
    verts, faces, _ = b.build()
    colour = rng.uniform(0.1, 0.95, 3).astype(np.float32)
    return MeshData(verts=verts.astype(np.float32), faces=faces, vertex_colors=np.tile(colour, (len(verts), 1)))


def _to_world(mesh: MeshData, scale: float, f: Footprint) -> MeshData:
    """Scale a centred mesh, turn it by the footprint's yaw, stand it on the floor at the footprint."""
    v = mesh.verts.astype(np.float64) * scale @ rot_y(f.yaw_deg).T
    v[:, 1] -= v[:, 1].min()
    v[:, 0] += f.x
    v[:, 2] += f.z
    return mesh.with_verts(v.astype(np.float32))


def _height(asset: SceneAsset, cfg: SceneConfig, rng: np.random.Generator) -> float:
    lo, hi = cfg.size_range(asset.category)
    h = float(rng.uniform(lo, hi))  # drawn always, so later draws do not depend on metadata
    if cfg.metric_sizes and asset.metric_height is not None and lo <= asset.metric_height <= hi:
        return float(asset.metric_height)
    return h


def compose(index: int, seed: int, pool: list[SceneAsset], weights: np.ndarray, cfg: SceneConfig,
            load: Callable[[SceneAsset], MeshData], semantic_of: dict[str, int]) -> Scene:
    """One scene from its seed. `load` returns an asset's normalised mesh (centred, longest side 1)
    or raises; an asset that fails is dropped from this scene and listed in `scene.dropped` (the
    generator then reports the scene instead of writing it, so a rerun remakes it whole)."""
    rng = np.random.default_rng(seed)
    floor_size = float(rng.uniform(*cfg.floor.size))
    half = floor_size / 2
    n = int(rng.integers(int(cfg.assets_per_scene[0]), int(cfg.assets_per_scene[1]) + 1))
    drawn = rng.choice(len(pool), size=n, replace=True, p=weights)
    heights = [_height(pool[i], cfg, rng) for i in drawn]

    dropped, meshes, scales, halves, kept = [], [], [], [], []
    for i, h in zip(drawn, heights):
        asset = pool[int(i)]
        try:
            mesh = load(asset)
        except Exception as exc:  # any reason counts; the caller decides what a scene missing an asset is worth
            dropped.append({"asset_id": asset.id, "reason": f"failed to load: {exc}"})
            continue
        lo, hi = mesh.bounds()
        ext = hi - lo
        s = h / max(float(ext[1]), 1e-6)
        meshes.append(mesh)
        scales.append(s)
        halves.append((float(ext[0]) * s / 2, float(ext[2]) * s / 2))
        kept.append(asset)

    spots = place(halves, half, rng, margin=cfg.placement.margin, yaw_range=cfg.placement.yaw_deg,
                  attempts=cfg.placement.attempts, area=cfg.placement.area)
    objects: list[SceneObject] = []
    for asset, mesh, s, spot in zip(kept, meshes, scales, spots):
        if spot is None:
            dropped.append({"asset_id": asset.id, "reason": "no free floor space"})
            continue
        objects.append(SceneObject(len(objects) + 1, _to_world(mesh, s, spot), semantic_of[asset.label], spot, s, asset))

    n_clutter = int(rng.integers(int(cfg.clutter.count[0]), int(cfg.clutter.count[1]) + 1))
    clutter_sizes = rng.uniform(*cfg.clutter.size, n_clutter)
    clutter_meshes = [_clutter_mesh(rng, float(sz)) for sz in clutter_sizes]
    clutter_halves = []
    for m in clutter_meshes:
        lo, hi = m.bounds()
        clutter_halves.append((float(hi[0] - lo[0]) / 2, float(hi[2] - lo[2]) / 2))
    clutter_spots = place(clutter_halves, half, rng, margin=cfg.placement.margin, yaw_range=(0.0, 360.0),
                          attempts=cfg.placement.attempts, area=min(1.0, cfg.placement.area * 1.3),
                          occupied=[o.footprint for o in objects])
    for m, spot in zip(clutter_meshes, clutter_spots):
        if spot is not None:
            objects.append(SceneObject(len(objects) + 1, _to_world(m, 1.0, spot), CLUTTER, spot, 1.0, None))

    layers = [Layer(o.mesh, o.semantic, o.instance) for o in objects]
    floor_img = _surface_image(rng, cfg.floor.textured)
    wall_img = _surface_image(rng, cfg.floor.textured)
    tiles = max(1, int(round(floor_size)))
    layers.append(Layer(_quad_grid(np.array([-half, 0, half]), np.array([floor_size, 0, 0]), np.array([0, 0, -floor_size]),
                                   tiles, tiles, floor_img), FLOOR))
    H = cfg.floor.wall_height
    if cfg.floor.walls >= 1:  # back wall, facing +Z
        layers.append(Layer(_quad_grid(np.array([-half, 0, -half]), np.array([floor_size, 0, 0]), np.array([0, H, 0]),
                                       tiles, 1, wall_img), WALL, cull_backfaces=True))
    if cfg.floor.walls >= 2:  # left wall, facing +X
        layers.append(Layer(_quad_grid(np.array([-half, 0, half]), np.array([0, 0, -floor_size]), np.array([0, H, 0]),
                                       tiles, 1, wall_img), WALL, cull_backfaces=True))

    cam = cfg.camera
    if objects:
        centre = np.mean([[o.footprint.x, 0.0, o.footprint.z] for o in objects], 0)
        centre[1] = 0.5 * np.mean([float(o.mesh.verts[:, 1].max()) for o in objects])
    else:
        centre = np.array([0.0, 0.4, 0.0])
    target = centre + rng.uniform(-1, 1, 3) * cam.target_jitter * np.array([1.0, 0.3, 1.0])
    d = float(rng.uniform(*cam.distance))
    el, az = np.deg2rad(rng.uniform(*cam.elevation_deg)), np.deg2rad(rng.uniform(*cam.azimuth_deg))
    eye = target + d * np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
    camera = Camera(tuple(float(x) for x in eye), tuple(float(x) for x in target), float(rng.uniform(*cam.fov_deg)))
    lights, ambient = sample_lights(cfg.lights, rng)
    background = tuple(float(x) for x in rng.uniform(0.75, 1.0, 3))
    return Scene(index, seed, objects, layers, camera, lights, ambient, background, floor_size, dropped)
