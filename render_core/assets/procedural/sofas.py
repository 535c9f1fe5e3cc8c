"""Sofas: one to three seats, armrest style, back height, feet or plinth."""

from __future__ import annotations

import numpy as np

from render_core.assets.procedural.base import Family, choice, u
from render_core.assets.procedural.geometry import FRAME, PRIMARY, MeshBuilder

ARMS = ("none", "box", "rolled", "slim")
FEET = ("legs", "plinth")


def sample(rng: np.random.Generator) -> dict[str, float]:
    return {
        "seats": float(rng.integers(1, 4)),
        "arms": choice(rng, ARMS),
        "feet": choice(rng, FEET),
        "seat_width": u(rng, 0.55, 0.70),
        "depth": u(rng, 0.80, 0.95),
        "seat_height": u(rng, 0.40, 0.46),
        "back_height": u(rng, 0.30, 0.50),
    }


def attributes(p: dict[str, float]) -> dict[str, str]:
    feet = FEET[int(p["feet"])]
    return {
        "seats": str(int(p["seats"])),
        "arms": ARMS[int(p["arms"])],
        "feet": feet,
        "legs": "4" if feet == "legs" else "0",
    }


def build(p: dict[str, float]) -> MeshBuilder:
    a = attributes(p)
    b = MeshBuilder()
    n = int(p["seats"])
    sw, d, h, bh = p["seat_width"], p["depth"], p["seat_height"], p["back_height"]
    width = n * sw
    arm_w = {"none": 0.0, "box": 0.18, "rolled": 0.2, "slim": 0.08}[a["arms"]]
    total = width + 2 * arm_w
    y0 = 0.11 if a["feet"] == "legs" else 0.0
    cushion = 0.13
    back_t = 0.2
    # Base frame below the seat cushions.
    b.box((0, (y0 + h - cushion) / 2, 0), (total, h - cushion - y0, d), slot=PRIMARY)
    if a["feet"] == "legs":
        for sx in (-1, 1):
            for sz in (-1, 1):
                b.cylinder((sx * (total / 2 - 0.06), 0, sz * (d / 2 - 0.06)), (sx * (total / 2 - 0.06), y0, sz * (d / 2 - 0.06)), 0.025, 0.018, slot=FRAME, segments=10)
    else:
        b.box((0, 0.02, 0), (total - 0.04, 0.04, d - 0.04), slot=FRAME)
    seat_d = d - back_t
    for i in range(n):
        x = -width / 2 + sw * (i + 0.5)
        b.box((x, h - cushion / 2, back_t / 2), (sw - 0.015, cushion, seat_d - 0.01), slot=PRIMARY)
    b.box((0, h + bh / 2 - cushion / 2, -d / 2 + back_t / 2), (width, bh + cushion, back_t), slot=PRIMARY)
    for sx in (-1, 1):
        x = sx * (width / 2 + arm_w / 2)
        if a["arms"] == "box":
            b.box((x, (y0 + h + 0.2) / 2, 0), (arm_w, h + 0.2 - y0, d), slot=PRIMARY)
        elif a["arms"] == "slim":
            b.box((x, (y0 + h + 0.16) / 2, 0), (arm_w, h + 0.16 - y0, d * 0.95), slot=PRIMARY)
        elif a["arms"] == "rolled":
            b.box((x, (y0 + h + 0.08) / 2, 0), (arm_w * 0.9, h + 0.08 - y0, d), slot=PRIMARY)
            b.cylinder((x, h + 0.12, d / 2), (x, h + 0.12, -d / 2), arm_w * 0.55, slot=PRIMARY, segments=18)
    return b


FAMILY = Family("sofa", sample, attributes, build)
