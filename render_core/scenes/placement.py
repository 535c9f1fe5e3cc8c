"""Non-overlapping placement of upright objects on a square floor.

Objects stand on the floor and rotate only about the vertical axis, so two objects
interpenetrate exactly when their footprints (rotated rectangles, grown by the margin)
overlap; the separating-axis test on rectangles decides that exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Footprint:
    x: float
    z: float
    yaw_deg: float
    half: tuple[float, float]  # half extents along the object's own x and z axes

    def corners(self) -> np.ndarray:
        """(4, 2) corners in the floor plane (x, z)."""
        a = np.deg2rad(self.yaw_deg)
        c, s = np.cos(a), np.sin(a)
        # Rotation about +Y by yaw maps (x, z) to (c x + s z, -s x + c z).
        local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * np.asarray(self.half)
        return np.stack([c * local[:, 0] + s * local[:, 1], -s * local[:, 0] + c * local[:, 1]], -1) + [self.x, self.z]


def _axes(corners: np.ndarray) -> np.ndarray:
    edges = np.diff(corners[[0, 1, 2]], axis=0)
    n = np.stack([-edges[:, 1], edges[:, 0]], -1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def rectangles_overlap(a: np.ndarray, b: np.ndarray, gap: float = 0.0) -> bool:
    """Whether two convex quads (4, 2) come closer than `gap` along every separating axis."""
    for axis in np.concatenate([_axes(a), _axes(b)]):
        pa, pb = a @ axis, b @ axis
        if pa.max() + gap <= pb.min() or pb.max() + gap <= pa.min():
            return False
    return True


def place(halves: list[tuple[float, float]], floor_half: float, rng: np.random.Generator, *, margin: float,
          yaw_range: tuple[float, float], attempts: int, area: float,
          occupied: list[Footprint] = ()) -> list[Footprint | None]:
    """A footprint for each object in order, or None for one that found no free spot in
    `attempts` tries. Centres stay within `area` x the floor's half side; footprints stay on the floor."""
    placed: list[Footprint] = list(occupied)
    out: list[Footprint | None] = []
    for half in halves:
        spot = None
        for _ in range(attempts):
            yaw = float(rng.uniform(*yaw_range))
            x, z = rng.uniform(-area * floor_half, area * floor_half, 2)
            f = Footprint(float(x), float(z), yaw, (float(half[0]), float(half[1])))
            c = f.corners()
            if np.abs(c).max() > floor_half:
                continue
            if any(rectangles_overlap(c, p.corners(), margin) for p in placed):
                continue
            spot = f
            break
        out.append(spot)
        if spot is not None:
            placed.append(spot)
    return out
