"""Chairs: leg, five-star swivel or sled base; armrests none/wooden/padded; back height; seat shape; cushion."""

from __future__ import annotations

import numpy as np

from render_core.assets.procedural.base import Family, choice, u
from render_core.assets.procedural.geometry import FRAME, PRIMARY, MeshBuilder, rot_x

BASES = ("legs", "swivel", "sled")
ARMRESTS = ("none", "wooden", "padded")
SEATS = ("square", "round")
YES_NO = ("no", "yes")


def sample(rng: np.random.Generator) -> dict[str, float]:
    return {
        "base": choice(rng, BASES),
        "n_legs": float(rng.integers(3, 5)),  # used when base == legs
        "armrests": choice(rng, ARMRESTS),
        "seat_shape": choice(rng, SEATS),
        "cushion": choice(rng, YES_NO),
        "seat_height": u(rng, 0.42, 0.50),
        "seat_width": u(rng, 0.42, 0.56),
        "seat_depth": u(rng, 0.40, 0.52),
        "seat_thickness": u(rng, 0.03, 0.06),
        "back_height": u(rng, 0.18, 0.55),
        "back_tilt_deg": u(rng, 0.0, 15.0),
        "leg_radius": u(rng, 0.014, 0.028),
    }


def attributes(p: dict[str, float]) -> dict[str, str]:
    base = BASES[int(p["base"])]
    legs = {"legs": str(int(p["n_legs"])), "swivel": "5", "sled": "2"}[base]
    return {
        "base": base,
        "legs": legs,
        "armrests": ARMRESTS[int(p["armrests"])],
        "seat_shape": SEATS[int(p["seat_shape"])],
        "cushion": YES_NO[int(p["cushion"])],
        "back": "high" if p["back_height"] >= 0.38 else "low",
    }


def build(p: dict[str, float]) -> MeshBuilder:
    a = attributes(p)
    b = MeshBuilder()
    h, w, d, t = p["seat_height"], p["seat_width"], p["seat_depth"], p["seat_thickness"]
    lr = p["leg_radius"]
    round_seat = a["seat_shape"] == "round"
    radius = min(w, d) / 2
    if round_seat:
        b.cylinder((0, h - t, 0), (0, h, 0), radius, slot=PRIMARY, segments=24)
    else:
        b.box((0, h - t / 2, 0), (w, t, d), slot=PRIMARY)
    top = h
    if a["cushion"] == "yes":
        ct = 0.05
        if round_seat:
            b.cylinder((0, h, 0), (0, h + ct, 0), radius * 0.92, radius * 0.85, slot=PRIMARY, segments=24)
        else:
            b.box((0, h + ct / 2, 0.01), (w * 0.94, ct, d * 0.9), slot=PRIMARY)
        top = h + ct

    # Back: a slab hinged at the seat's rear edge, tilted backwards.
    bw = (radius * 1.6) if round_seat else w * 0.96
    bt = 0.035
    zb = -(radius if round_seat else d / 2) + bt / 2
    bh = p["back_height"]
    b.box((0, top + bh / 2, zb), (bw, bh, bt), slot=PRIMARY, rotation=rot_x(-p["back_tilt_deg"]), pivot=(0, top, zb))
    b.box((0, (h + top) / 2 + 0.02, zb), (bw * 0.3, top - h + 0.04, bt), slot=FRAME)  # back support bracket

    if a["base"] == "legs":
        n = int(p["n_legs"])
        if n == 4 and not round_seat:
            xs, zs = w / 2 - 0.04, d / 2 - 0.04
            feet = [(sx * xs, sz * zs) for sx in (-1, 1) for sz in (-1, 1)]
        else:
            r = radius * 0.78 if round_seat else min(w, d) / 2 - 0.04
            start = 45.0 if n == 4 else 90.0
            ang = np.deg2rad(start + np.arange(n) * 360.0 / n)
            feet = [(r * np.cos(q), r * np.sin(q)) for q in ang]
        for x, z in feet:
            # Slightly splayed legs read as chairs rather than stools.
            b.cylinder((x * 1.08, 0, z * 1.08), (x, h - t, z), lr, lr * 0.85, slot=FRAME, segments=10)
    elif a["base"] == "swivel":
        b.cylinder((0, 0.11, 0), (0, h - t, 0), 0.026, slot=FRAME, segments=12)  # gas column
        b.cylinder((0, 0.07, 0), (0, 0.12, 0), 0.05, slot=FRAME, segments=12)  # hub
        b.box((0, h - t - 0.015, 0), (0.18, 0.03, 0.18), slot=FRAME)  # mechanism plate
        for k in range(5):
            q = np.deg2rad(90 + k * 72)
            end = np.array([0.30 * np.cos(q), 0.065, 0.30 * np.sin(q)])
            b.cylinder((0, 0.095, 0), end, 0.02, 0.014, slot=FRAME, segments=8)
            b.sphere((end[0], 0.03, end[2]), 0.03, slot=FRAME, segments=10, rings=6)  # caster
    else:  # sled: two floor runners rising at front and back
        xr = (radius * 0.8) if round_seat else w / 2 - 0.03
        zr = (radius * 0.8) if round_seat else d / 2 - 0.03
        for sx in (-1, 1):
            x = sx * xr
            b.cylinder((x, 0.012, zr + 0.04), (x, 0.012, -zr - 0.04), 0.012, slot=FRAME, segments=8)
            b.cylinder((x, 0.012, zr + 0.04), (x, h - t, zr * 0.8), 0.012, slot=FRAME, segments=8)
            b.cylinder((x, 0.012, -zr - 0.04), (x, h - t, -zr * 0.8), 0.012, slot=FRAME, segments=8)
            b.cylinder((x, h - t - 0.01, zr * 0.8), (x, h - t - 0.01, -zr * 0.8), 0.012, slot=FRAME, segments=8)

    if a["armrests"] != "none":
        xa = (radius if round_seat else w / 2) + 0.03
        ya = top + 0.18
        da = (radius * 1.5 if round_seat else d) * 0.8
        for sx in (-1, 1):
            x = sx * xa
            if a["armrests"] == "wooden":
                b.box((x, ya, 0.0), (0.04, 0.025, da), slot=FRAME)
                b.cylinder((x, h - t / 2, da / 2 - 0.03), (x, ya, da / 2 - 0.03), 0.012, slot=FRAME, segments=8)
                b.cylinder((x, h - t / 2, -da / 2 + 0.05), (x, ya, -da / 2 + 0.05), 0.012, slot=FRAME, segments=8)
            else:  # padded: a thick upholstered pad on a frame post
                b.box((x, ya, 0.0), (0.075, 0.06, da), slot=PRIMARY)
                b.box((x, (h + ya) / 2, -0.02), (0.03, ya - h, 0.05), slot=FRAME)
    return b


FAMILY = Family("chair", sample, attributes, build)
