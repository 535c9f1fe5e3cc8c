"""Tables: round, square or rectangular top on four legs, a pedestal or a trestle."""

from __future__ import annotations

import numpy as np

from render_core.assets.procedural.base import Family, choice, u
from render_core.assets.procedural.geometry import FRAME, PRIMARY, MeshBuilder

TOPS = ("round", "square", "rectangular")
SUPPORTS = ("four_legs", "pedestal", "trestle")


def sample(rng: np.random.Generator) -> dict[str, float]:
    return {
        "top": choice(rng, TOPS),
        "support": choice(rng, SUPPORTS),
        "height": u(rng, 0.45, 0.78),
        "width": u(rng, 0.70, 1.00),
        "length_ratio": u(rng, 1.5, 2.0),  # rectangular tops only
        "top_thickness": u(rng, 0.025, 0.06),
        "leg_radius": u(rng, 0.02, 0.035),
    }


def attributes(p: dict[str, float]) -> dict[str, str]:
    support = SUPPORTS[int(p["support"])]
    return {
        "top": TOPS[int(p["top"])],
        "support": support,
        "legs": {"four_legs": "4", "pedestal": "1", "trestle": "2"}[support],
        "height_class": "coffee" if p["height"] < 0.6 else "dining",
    }


def build(p: dict[str, float]) -> MeshBuilder:
    a = attributes(p)
    b = MeshBuilder()
    h, w, t, lr = p["height"], p["width"], p["top_thickness"], p["leg_radius"]
    if a["top"] == "round":
        sx = sz = w / 2
        b.cylinder((0, h - t, 0), (0, h, 0), w / 2, slot=PRIMARY, segments=32)
    else:
        length = w * p["length_ratio"] if a["top"] == "rectangular" else w
        sx, sz = length / 2, w / 2
        b.box((0, h - t / 2, 0), (length, t, w), slot=PRIMARY)
    under = h - t
    if a["support"] == "four_legs":
        if a["top"] == "round":
            r = w / 2 * 0.68
            feet = [(r * np.cos(q), r * np.sin(q)) for q in np.deg2rad([45, 135, 225, 315])]
        else:
            feet = [(fx * (sx - 0.06), fz * (sz - 0.06)) for fx in (-1, 1) for fz in (-1, 1)]
        for x, z in feet:
            b.box((x, under / 2, z), (2 * lr, under, 2 * lr), slot=FRAME)
        # Apron under the top ties the legs together.
        b.box((0, under - 0.04, 0), (2 * (sx - 0.06) * (0.7 if a["top"] == "round" else 1), 0.07, 2 * (sz - 0.06) * (0.7 if a["top"] == "round" else 1)), slot=FRAME)
    elif a["support"] == "pedestal":
        b.cylinder((0, 0.0, 0), (0, 0.035, 0), min(sx, sz) * 0.62, slot=FRAME, segments=28)
        b.cylinder((0, 0.035, 0), (0, under, 0), 0.06, 0.045, slot=FRAME, segments=16)
    else:  # trestle: at each end a post on a long foot under a bearer, joined by a stretcher
        xe = sx * 0.72
        for s in (-1, 1):
            b.box((s * xe, under / 2, 0), (0.06, under, 0.12), slot=FRAME)
            b.box((s * xe, 0.025, 0), (0.08, 0.05, sz * 1.5), slot=FRAME)
            b.box((s * xe, under - 0.025, 0), (0.08, 0.05, sz * 1.5), slot=FRAME)
        b.box((0, under * 0.4, 0), (2 * xe, 0.06, 0.05), slot=FRAME)
    return b


FAMILY = Family("table", sample, attributes, build)
