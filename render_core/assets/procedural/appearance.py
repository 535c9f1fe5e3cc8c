"""Appearance of procedural assets: named colours, patterns and frame materials as a UV texture.

Sampled from its own random stream, independent of shape, so shape and texture are
separable factors. One 256x256 atlas per asset: the left 3/4 holds the primary
pattern (upholstery, table top, lamp shade), the right 1/4 the frame material.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from render_core.assets.procedural.geometry import FRAME

COLOURS = {
    "red": (0.78, 0.14, 0.13),
    "orange": (0.93, 0.50, 0.12),
    "yellow": (0.93, 0.80, 0.20),
    "green": (0.22, 0.58, 0.25),
    "teal": (0.10, 0.55, 0.55),
    "blue": (0.16, 0.32, 0.78),
    "purple": (0.50, 0.25, 0.62),
    "pink": (0.92, 0.52, 0.68),
    "grey": (0.50, 0.50, 0.52),
    "beige": (0.86, 0.78, 0.62),
}
PATTERNS = ("solid", "wood", "stripes", "checker", "fabric")
FRAMES = {
    "black": (0.09, 0.09, 0.10),
    "chrome": (0.74, 0.76, 0.80),
    "dark_wood": (0.32, 0.19, 0.10),
    "light_wood": (0.76, 0.58, 0.36),
}

ATLAS = 256
SPLIT = 192  # columns [0, SPLIT) primary pattern, [SPLIT, ATLAS) frame
_PAD = 3 / ATLAS  # keeps bilinear lookups off the seam between the two regions


@dataclass(frozen=True)
class Appearance:
    colour: str
    pattern: str
    frame: str
    scale: float  # pattern repeats across the primary region
    seed: int  # noise in the texture image

    def attributes(self) -> dict[str, str]:
        return {"colour": self.colour, "pattern": self.pattern, "frame": self.frame}

    def params(self) -> dict[str, float]:
        return {
            "colour_index": float(list(COLOURS).index(self.colour)),
            "pattern_index": float(PATTERNS.index(self.pattern)),
            "frame_index": float(list(FRAMES).index(self.frame)),
            "pattern_scale": self.scale,
        }


def appearance_from_params(params: dict[str, float], rng: np.random.Generator) -> Appearance:
    """The appearance named by `params` (as `Appearance.params()` writes them); noise seed from `rng`."""
    def pick(key: str, options: list[str]) -> str:
        i = int(round(float(params[key])))
        if not 0 <= i < len(options):
            raise ValueError(f"{key}={params[key]} is out of range 0..{len(options) - 1}")
        return options[i]

    return Appearance(
        colour=pick("colour_index", list(COLOURS)),
        pattern=pick("pattern_index", list(PATTERNS)),
        frame=pick("frame_index", list(FRAMES)),
        scale=float(np.clip(float(params["pattern_scale"]), 3.0, 7.0)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_appearance(rng: np.random.Generator) -> Appearance:
    return Appearance(
        colour=str(rng.choice(list(COLOURS))),
        pattern=str(rng.choice(PATTERNS)),
        frame=str(rng.choice(list(FRAMES))),
        scale=float(np.round(rng.uniform(3.0, 7.0), 3)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled value noise in [0, 1], shape (h, w)."""
    grid = rng.random((cells + 1, cells + 1))
    ys = np.linspace(0, cells, h, endpoint=False)
    xs = np.linspace(0, cells, w, endpoint=False)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx


def _pattern(app: Appearance, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = np.asarray(COLOURS[app.colour])
    y, x = np.mgrid[0:h, 0:w] / float(h)
    fine = rng.random((h, w))
    if app.pattern == "solid":
        shade = 1.0 + 0.04 * (fine - 0.5)
        img = base * shade[..., None]
    elif app.pattern == "wood":
        warp = _smooth_noise(rng, h, w, 6)
        t = x * app.scale * 3 + 1.5 * warp
        grain = 0.5 + 0.5 * np.sin(2 * np.pi * t) ** 3
        shade = 0.72 + 0.28 * grain + 0.05 * (fine - 0.5)
        img = base * shade[..., None]
    elif app.pattern == "stripes":
        band = (np.floor(x * app.scale * 2) % 2).astype(bool)
        light = 0.45 + 0.55 * base  # a pale tint of the base colour
        img = np.where(band[..., None], light, base)
    elif app.pattern == "checker":
        cell = (np.floor(x * app.scale * 2) + np.floor(y * app.scale * 2)) % 2 == 1
        dark = 0.35 * base
        img = np.where(cell[..., None], dark, base)
    elif app.pattern == "fabric":
        weave = np.sin(2 * np.pi * x * 48) * np.sin(2 * np.pi * y * 48)
        shade = 0.85 + 0.12 * weave + 0.08 * (fine - 0.5)
        img = base * shade[..., None]
    else:
        raise ValueError(f"unknown pattern {app.pattern!r}")
    return np.clip(img, 0, 1)


def texture_image(app: Appearance) -> np.ndarray:
    """(ATLAS, ATLAS, 3) uint8 atlas: primary pattern left, frame material right."""
    rng = np.random.default_rng(app.seed)
    img = np.zeros((ATLAS, ATLAS, 3))
    img[:, :SPLIT] = _pattern(app, rng, ATLAS, SPLIT)
    frame = np.asarray(FRAMES[app.frame])
    img[:, SPLIT:] = frame * (1.0 + 0.03 * (rng.random((ATLAS, ATLAS - SPLIT, 1)) - 0.5))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def triplanar_uvs(verts: np.ndarray, faces: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face-corner UVs by projecting each face along its dominant normal axis.

    The projection spans the asset's bounding box, so patterns run continuously
    across parts; frame faces map into the frame strip of the atlas.
    Returns verts_uvs (3F, 2) and faces_uvs (F, 3).
    """
    tri = verts[faces]  # (F, 3, 3)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    axis = np.abs(normal).argmax(1)
    lo, hi = verts.min(0), verts.max(0)
    span = max(float((hi - lo).max()), 1e-9)
    rel = (tri - lo) / span  # (F, 3, 3) in [0, 1]
    # The two in-plane coordinates for each dominant axis: (x -> z,y), (y -> x,z), (z -> x,y).
    pick = np.array([[2, 1], [0, 2], [0, 1]])[axis]  # (F, 2)
    uv = np.take_along_axis(rel, pick[:, None, :].repeat(3, 1), axis=2)  # (F, 3, 2)
    u0, u1 = np.where(slots == FRAME, SPLIT / ATLAS + _PAD, _PAD), np.where(slots == FRAME, 1 - _PAD, SPLIT / ATLAS - _PAD)
    u = u0[:, None] + uv[..., 0] * (u1 - u0)[:, None]
    v = _PAD + uv[..., 1] * (1 - 2 * _PAD)
    verts_uvs = np.stack([u, v], -1).reshape(-1, 2)
    faces_uvs = np.arange(len(faces) * 3, dtype=np.int64).reshape(-1, 3)
    return verts_uvs, faces_uvs
