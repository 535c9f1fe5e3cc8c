"""`SceneConfig`: every randomised range of the scene generator, read from YAML and checked.

All ranges are `[low, high]` pairs, drawn uniformly per scene. `default_scenes.yaml` beside
this module documents every key; a user's file overrides any subset of it. Checking happens
here, before any rendering, so a typo or an impossible range fails in a second, not an hour in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from render_core.colour import DISPLAY, LINEAR, PIPELINES

DEFAULT_CONFIG = Path(__file__).with_name("default_scenes.yaml")


class SceneConfigError(ValueError):
    """A scene config key is unknown, of the wrong type, or its range is impossible."""


Range = tuple[float, float]


@dataclass(frozen=True)
class FloorConfig:
    size: Range = (4.0, 5.0)  # side of the square floor, metres
    walls: int = 2  # back walls behind the objects: 0, 1 (behind) or 2 (behind and left)
    wall_height: float = 2.6
    textured: bool = True  # procedural textures on floor and walls; plain random colours when False


@dataclass(frozen=True)
class PlacementConfig:
    margin: float = 0.05  # metres kept free between object footprints
    yaw_deg: Range = (0.0, 360.0)
    attempts: int = 300  # rejection-sampling tries per object before the scene gives up on it
    area: float = 0.6  # objects stay in the central fraction of the floor's side


@dataclass(frozen=True)
class ClutterConfig:
    count: Range = (0, 3)
    size: Range = (0.06, 0.25)  # metres, side of the small boxes, cylinders and spheres


@dataclass(frozen=True)
class CameraConfig:
    distance: Range = (3.0, 5.0)  # from the look-at target, metres
    elevation_deg: Range = (15.0, 50.0)
    azimuth_deg: Range = (-45.0, 45.0)  # 0 looks at the scene from the front (+Z); walls stay behind
    fov_deg: Range = (35.0, 55.0)
    target_jitter: float = 0.3  # metres, look-at target offset from the centre of the objects


@dataclass(frozen=True)
class LightConfig:
    count: Range = (1, 3)
    types: tuple[str, ...] = ("point", "directional")
    intensity: Range = (0.35, 0.8)  # diffuse strength of each light
    ambient: Range = (0.25, 0.45)
    height: Range = (1.8, 3.5)  # point lights, metres above the floor
    radius: Range = (1.0, 3.0)  # point lights, horizontal distance from the centre
    warmth: Range = (-1.0, 1.0)  # colour temperature shift: -1 cool, +1 warm


@dataclass(frozen=True)
class BlenderConfig:
    """`scenes generate --renderer blender` only (the rasterizer ignores it, and its folders do not record it)."""

    samples: int = 32  # Cycles path-tracing samples per pixel, then denoised
    denoise: bool = True  # OpenImageDenoise (on CPU), when this Blender build has it
    physics: bool = True  # drop the objects and clutter and let them settle under gravity before rendering
    drop_height: Range = (0.0, 0.1)  # metres above their resting height that objects are dropped from
    settle_seconds: float = 2.0  # simulated time (24 frames a second)
    sky: float = 0.6  # share of scenes lit by Blender's sky model; the rest by a plain colour world
    sun_lights: Range = (1, 3)  # area and sun lights besides the world
    kelvin: Range = (3000.0, 8000.0)  # colour temperature of those lights
    exposure: Range = (-0.5, 0.5)  # camera exposure, in stops
    noise: Range = (0.0, 0.01)  # standard deviation of the sensor's Gaussian noise, as a fraction of full scale
    threads: int = 0  # Cycles CPU threads (0: all cores); changes speed only, so resuming ignores it


# The largest supersampled side the rasterizer is asked for: beyond it one layer's buffers alone
# take gigabytes, and the image gains nothing visible.
MAX_SAMPLED_SIDE = 8192


@dataclass(frozen=True)
class SceneConfig:
    image_size: int = 256
    supersample: int = 1  # odd; RGB averages s x s samples, labels stay at the pixel centre
    # The rasterizer's colour pipeline (render_core.colour): "linear" decodes sRGB textures, shades
    # in linear light and encodes the image as sRGB, as datasets and Blender scenes do; "display"
    # shades stored values as they are (what folders made before this setting hold). Blender ignores it.
    colour: str = LINEAR
    assets_per_scene: Range = (2, 5)
    # Height in metres per category; an asset whose library records a metric size (procedural
    # families do) keeps it when `metric_sizes` is true and it lies inside its category's range.
    sizes: dict[str, Range] = field(default_factory=lambda: {
        "chair": (0.75, 1.05), "table": (0.45, 0.8), "sofa": (0.65, 1.0), "lamp": (0.35, 1.8), "default": (0.4, 1.2)})
    metric_sizes: bool = True
    semantic_by: str = "family"  # any attribute or tag name in the catalog
    floor: FloorConfig = field(default_factory=FloorConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    clutter: ClutterConfig = field(default_factory=ClutterConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    lights: LightConfig = field(default_factory=LightConfig)
    min_visible_pixels: int = 16  # an object covering fewer pixels gets no box or COCO annotation
    blender: BlenderConfig = field(default_factory=BlenderConfig)

    def __post_init__(self):
        check(self)

    def to_json(self, renderer: str = "raster") -> dict[str, Any]:
        """The settings a folder made by `renderer` depends on. The rasterizer's leave out `blender`, and
        `colour` when it is "display", so folders made before either existed still resume under
        `colour: display` (and are refused under "linear" rather than mixing two pipelines); Blender's
        leave out `colour`, which it ignores."""
        out = _to_plain(self)
        if renderer == "blender" or out["colour"] == DISPLAY:
            out.pop("colour")
        if renderer != "blender":
            out.pop("blender")
        return out

    def size_range(self, category: str | None) -> Range:
        return self.sizes.get(category or "", self.sizes["default"])


def _to_plain(obj):
    if is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [_to_plain(v) for v in obj]
    return obj


def _range(name: str, value, *, positive: bool = False, nonneg: bool = False, integer: bool = False,
           lo: float | None = None, hi: float | None = None) -> None:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise SceneConfigError(f"{name}: expected a [low, high] pair, got {value!r}")
    a, b = value
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SceneConfigError(f"{name}: {v!r} is not a finite number")
        if integer and float(v) != int(v):
            raise SceneConfigError(f"{name}: {v!r} must be a whole number")
    if a > b:
        raise SceneConfigError(f"{name}: low {a} is above high {b}")
    if positive and a <= 0:
        raise SceneConfigError(f"{name}: must be positive, got [{a}, {b}]")
    if nonneg and a < 0:
        raise SceneConfigError(f"{name}: must not be negative, got [{a}, {b}]")
    if lo is not None and a < lo or hi is not None and b > hi:
        raise SceneConfigError(f"{name}: must lie within [{lo}, {hi}], got [{a}, {b}]")


def _is_int(v) -> bool:
    # YAML's true/false are Python bools, which are ints too: `supersample: true` must not mean 1.
    return isinstance(v, int) and not isinstance(v, bool)


def check(c: SceneConfig) -> None:
    """Raise `SceneConfigError` naming the first impossible setting (geometry against assets is
    checked later by `check_fits`, which needs the asset pool)."""
    if not _is_int(c.image_size) or not 32 <= c.image_size <= 2048:
        raise SceneConfigError(f"image_size: must be an integer in [32, 2048], got {c.image_size!r}")
    if not _is_int(c.supersample) or c.supersample < 1 or c.supersample % 2 == 0:
        raise SceneConfigError(f"supersample: must be an odd integer >= 1, got {c.supersample!r}")
    if c.image_size * c.supersample > MAX_SAMPLED_SIDE:
        raise SceneConfigError(f"supersample: {c.supersample} x image_size {c.image_size} = {c.image_size * c.supersample} "
                               f"samples a side, more than the {MAX_SAMPLED_SIDE} the renderer allows; lower either")
    if c.colour not in PIPELINES:
        raise SceneConfigError(f"colour: must be {LINEAR!r} or {DISPLAY!r}, got {c.colour!r}")
    _range("assets_per_scene", c.assets_per_scene, integer=True, lo=1, hi=64)
    if "default" not in c.sizes:
        raise SceneConfigError("sizes: needs a 'default' entry for categories it does not name")
    for cat, r in c.sizes.items():
        _range(f"sizes.{cat}", r, positive=True, hi=20.0)
    if not isinstance(c.semantic_by, str) or not c.semantic_by:
        raise SceneConfigError(f"semantic_by: must name an attribute or tag, got {c.semantic_by!r}")
    _range("floor.size", c.floor.size, positive=True, hi=100.0)
    for name, v in (("floor.wall_height", c.floor.wall_height), ("placement.margin", c.placement.margin),
                    ("placement.area", c.placement.area), ("camera.target_jitter", c.camera.target_jitter)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SceneConfigError(f"{name}: must be a number, got {v!r}")
    if not isinstance(c.floor.textured, bool) or not isinstance(c.metric_sizes, bool):
        raise SceneConfigError("floor.textured and metric_sizes must be true or false")
    if not _is_int(c.floor.walls) or c.floor.walls not in (0, 1, 2):
        raise SceneConfigError(f"floor.walls: must be 0, 1 or 2, got {c.floor.walls!r}")
    if not c.floor.wall_height > 0:
        raise SceneConfigError(f"floor.wall_height: must be positive, got {c.floor.wall_height!r}")
    if not c.placement.margin >= 0:
        raise SceneConfigError(f"placement.margin: must not be negative, got {c.placement.margin!r}")
    _range("placement.yaw_deg", c.placement.yaw_deg, lo=-360, hi=720)
    if not _is_int(c.placement.attempts) or c.placement.attempts < 1:
        raise SceneConfigError(f"placement.attempts: must be a positive integer, got {c.placement.attempts!r}")
    if not 0 < c.placement.area <= 1:
        raise SceneConfigError(f"placement.area: must be in (0, 1], got {c.placement.area!r}")
    _range("clutter.count", c.clutter.count, integer=True, nonneg=True, hi=64)
    _range("clutter.size", c.clutter.size, positive=True, hi=2.0)
    _range("camera.distance", c.camera.distance, positive=True)
    _range("camera.elevation_deg", c.camera.elevation_deg, lo=0.0, hi=89.0)
    _range("camera.azimuth_deg", c.camera.azimuth_deg, lo=-360, hi=360)
    _range("camera.fov_deg", c.camera.fov_deg, lo=5.0, hi=120.0)
    if not c.camera.target_jitter >= 0:
        raise SceneConfigError(f"camera.target_jitter: must not be negative, got {c.camera.target_jitter!r}")
    _range("lights.count", c.lights.count, integer=True, lo=1, hi=8)
    if not isinstance(c.lights.types, (tuple, list)):  # a bare string would be read letter by letter
        raise SceneConfigError(f"lights.types: expected a list such as [point, directional], got {c.lights.types!r}")
    bad = [t for t in c.lights.types if t not in ("point", "directional")] or (["(none)"] if not c.lights.types else [])
    if bad:
        raise SceneConfigError(f"lights.types: {bad} not among 'point', 'directional'")
    _range("lights.intensity", c.lights.intensity, nonneg=True, hi=4.0)
    _range("lights.ambient", c.lights.ambient, nonneg=True, hi=1.0)
    _range("lights.height", c.lights.height, positive=True)
    _range("lights.radius", c.lights.radius, nonneg=True)
    _range("lights.warmth", c.lights.warmth, lo=-1.0, hi=1.0)
    if not _is_int(c.min_visible_pixels) or c.min_visible_pixels < 1:
        raise SceneConfigError(f"min_visible_pixels: must be a positive integer, got {c.min_visible_pixels!r}")
    b = c.blender
    if not _is_int(b.samples) or not 1 <= b.samples <= 4096:
        raise SceneConfigError(f"blender.samples: must be an integer in [1, 4096], got {b.samples!r}")
    if not isinstance(b.denoise, bool) or not isinstance(b.physics, bool):
        raise SceneConfigError("blender.denoise and blender.physics must be true or false")
    _range("blender.drop_height", b.drop_height, nonneg=True, hi=2.0)
    if isinstance(b.settle_seconds, bool) or not isinstance(b.settle_seconds, (int, float)) or not 0.1 <= b.settle_seconds <= 20:
        raise SceneConfigError(f"blender.settle_seconds: must be a number in [0.1, 20], got {b.settle_seconds!r}")
    if isinstance(b.sky, bool) or not isinstance(b.sky, (int, float)) or not 0 <= b.sky <= 1:
        raise SceneConfigError(f"blender.sky: must be a share in [0, 1], got {b.sky!r}")
    _range("blender.sun_lights", b.sun_lights, integer=True, nonneg=True, hi=8)
    _range("blender.kelvin", b.kelvin, lo=1000.0, hi=40000.0)
    _range("blender.exposure", b.exposure, lo=-5.0, hi=5.0)
    _range("blender.noise", b.noise, nonneg=True, hi=0.2)
    if not _is_int(b.threads) or b.threads < 0:
        raise SceneConfigError(f"blender.threads: must be 0 (all cores) or a positive integer, got {b.threads!r}")


_SECTIONS = {"floor": FloorConfig, "placement": PlacementConfig, "clutter": ClutterConfig, "camera": CameraConfig,
             "lights": LightConfig, "blender": BlenderConfig}


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise SceneConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(repr(k) if not isinstance(k, str) else k for k in set(data) - set(names))  # YAML keys may be null, 1, ...
    if unknown:
        raise SceneConfigError(f"{where + '.' if where else ''}{unknown[0]}: unknown setting (known: {', '.join(sorted(names))})")
    kwargs = {}
    for k, v in data.items():
        key = f"{where}.{k}" if where else k
        if cls is SceneConfig and k in _SECTIONS:
            kwargs[k] = _build(_SECTIONS[k], v, key)
        elif k == "sizes":
            if not isinstance(v, dict):
                raise SceneConfigError(f"sizes: expected a mapping of category to [low, high], got {v!r}")
            kwargs[k] = {str(c): tuple(r) if isinstance(r, list) else r for c, r in v.items()}
        elif isinstance(v, list):
            kwargs[k] = tuple(v)
        else:
            kwargs[k] = v
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SceneConfigError(f"{where or 'config'}: {exc}") from exc


def config_from_dict(data: dict | None) -> SceneConfig:
    """A config from the documented defaults overridden by `data` (nested, any subset)."""
    if data is not None and not isinstance(data, dict):
        raise SceneConfigError(f"config: expected a mapping of settings at the top level, got {type(data).__name__}")
    base = yaml.safe_load(DEFAULT_CONFIG.read_text("utf-8"))
    merged = _merge(base, data or {})
    return _build(SceneConfig, merged, "")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        # `sizes` replaces category by category; other sections merge key by key.
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def load_config(path: str | Path | None) -> SceneConfig:
    """Read a YAML scene config (safe loader: no Python objects from user files)."""
    if path is None:
        return config_from_dict(None)
    p = Path(path)
    if not p.is_file():
        raise SceneConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nesting deeper than Python's stack (e.g. thousands of "[")
        raise SceneConfigError(f"{p}: not valid YAML ({type(exc).__name__}: {str(exc)[:200]})") from None
    try:
        # Only an empty file (None) means "the defaults"; `[]`, `0` or `false` is a mistake to name.
        return config_from_dict(data)
    except SceneConfigError as exc:
        raise SceneConfigError(f"{p}: {exc}") from exc
