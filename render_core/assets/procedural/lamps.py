"""Lamps: desk or floor size; round, square or tripod base; cone, drum or dome shade."""

from __future__ import annotations

import numpy as np

from render_core.assets.procedural.base import Family, choice, u
from render_core.assets.procedural.geometry import FRAME, PRIMARY, MeshBuilder

SIZES = ("desk", "floor")
BASES = ("round", "square", "tripod")
SHADES = ("cone", "drum", "dome")


def sample(rng: np.random.Generator) -> dict[str, float]:
    return {
        "size": choice(rng, SIZES),
        "base": choice(rng, BASES),
        "shade": choice(rng, SHADES),
        "height_frac": u(rng, 0.0, 1.0),
        "shade_radius_frac": u(rng, 0.0, 1.0),
        "shade_height_frac": u(rng, 0.0, 1.0),
    }


def attributes(p: dict[str, float]) -> dict[str, str]:
    base = BASES[int(p["base"])]
    return {
        "size": SIZES[int(p["size"])],
        "base": base,
        "shade": SHADES[int(p["shade"])],
        "legs": "3" if base == "tripod" else "1",
    }


def build(p: dict[str, float]) -> MeshBuilder:
    a = attributes(p)
    b = MeshBuilder()
    floor = a["size"] == "floor"
    height = (1.40 + 0.3 * p["height_frac"]) if floor else (0.40 + 0.2 * p["height_frac"])
    r = (0.17 + 0.1 * p["shade_radius_frac"]) if floor else (0.10 + 0.06 * p["shade_radius_frac"])
    sh = r * (0.8 + 0.6 * p["shade_height_frac"])
    stem_r = 0.014 if floor else 0.01
    stem_top = height - sh * 0.6
    if a["base"] == "round":
        b.cylinder((0, 0, 0), (0, 0.03, 0), r * 0.75, slot=FRAME, segments=24)
        b.cylinder((0, 0.03, 0), (0, stem_top, 0), stem_r, slot=FRAME, segments=10)
    elif a["base"] == "square":
        b.box((0, 0.02, 0), (r * 1.3, 0.04, r * 1.3), slot=FRAME)
        b.cylinder((0, 0.04, 0), (0, stem_top, 0), stem_r, slot=FRAME, segments=10)
    else:
        knee = height * 0.35
        for k in range(3):
            q = np.deg2rad(90 + 120 * k)
            b.cylinder((r * 1.1 * np.cos(q), 0, r * 1.1 * np.sin(q)), (0, knee, 0), stem_r * 0.9, slot=FRAME, segments=8)
        b.cylinder((0, knee, 0), (0, stem_top, 0), stem_r, slot=FRAME, segments=10)
    y0 = height - sh
    if a["shade"] == "cone":
        b.cylinder((0, y0, 0), (0, height, 0), r, r * 0.55, slot=PRIMARY, segments=28, caps=False)
    elif a["shade"] == "drum":
        b.cylinder((0, y0, 0), (0, height, 0), r, slot=PRIMARY, segments=28, caps=False)
    else:
        b.sphere((0, y0, 0), (r, sh, r), slot=PRIMARY, segments=28, rings=10, max_polar_deg=90)
    b.sphere((0, stem_top + 0.02, 0), 0.035 if floor else 0.025, slot=FRAME, segments=10, rings=6)  # bulb socket
    return b


FAMILY = Family("lamp", sample, attributes, build)
