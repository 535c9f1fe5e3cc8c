"""`MeshBuilder`: triangle soup from boxes, cylinders, cones and spheres, in metres, Y up.

Each primitive is tagged with a material slot (upholstery/top vs frame) so the
appearance can be applied per part. Box faces get their own vertices so flat
parts keep sharp normals.
"""

from __future__ import annotations

import numpy as np

PRIMARY, FRAME = 0, 1  # material slots: the patterned surface and the legs/base/frame


def rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


_BOX_CORNERS = np.array(
    [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]],
    dtype=np.float64,
) / 2.0
# Quads, counter-clockwise seen from outside.
_BOX_QUADS = [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (3, 7, 6, 2), (0, 4, 7, 3), (1, 2, 6, 5)]


class MeshBuilder:
    def __init__(self) -> None:
        self._verts: list[np.ndarray] = []
        self._faces: list[np.ndarray] = []
        self._slots: list[np.ndarray] = []
        self._n = 0

    def _add(self, verts: np.ndarray, faces: np.ndarray, slot: int) -> None:
        self._verts.append(np.asarray(verts, dtype=np.float64))
        self._faces.append(np.asarray(faces, dtype=np.int64) + self._n)
        self._slots.append(np.full(len(faces), slot, dtype=np.int64))
        self._n += len(verts)

    def box(self, center, size, slot: int = PRIMARY, rotation: np.ndarray | None = None, pivot=None) -> None:
        """Axis-aligned box of `size` at `center`, optionally rotated about `pivot` (default: centre)."""
        corners = _BOX_CORNERS * np.asarray(size, dtype=np.float64) + np.asarray(center, dtype=np.float64)
        if rotation is not None:
            p = np.asarray(center if pivot is None else pivot, dtype=np.float64)
            corners = (corners - p) @ rotation.T + p
        verts, faces = [], []
        for q in _BOX_QUADS:
            base = len(verts)
            verts.extend(corners[list(q)])
            faces.extend([(base, base + 1, base + 2), (base, base + 2, base + 3)])
        self._add(np.array(verts), np.array(faces), slot)

    def cylinder(self, p0, p1, r0: float, r1: float | None = None, slot: int = PRIMARY, segments: int = 16, caps: bool = True) -> None:
        """Cylinder or cone frustum from `p0` (radius r0) to `p1` (radius r1)."""
        r1 = r0 if r1 is None else r1
        p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
        axis = p1 - p0
        length = np.linalg.norm(axis)
        if length <= 0:
            raise ValueError("cylinder needs two distinct end points")
        axis /= length
        helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 0, 1.0])
        u = np.cross(axis, helper)
        u /= np.linalg.norm(u)
        v = np.cross(axis, u)
        ang = np.linspace(0, 2 * np.pi, segments, endpoint=False)
        ring = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v  # (S, 3)
        bottom = p0 + r0 * ring
        top = p1 + r1 * ring
        verts = [bottom, top]
        faces = []
        s = segments
        for i in range(s):
            j = (i + 1) % s
            faces += [(i, j, s + j), (i, s + j, s + i)]
        n = 2 * s
        if caps:
            # Separate cap vertices keep the rim edge sharp.
            verts += [bottom, top, p0[None], p1[None]]
            cb, ct, c0, c1 = n, n + s, n + 2 * s, n + 2 * s + 1
            for i in range(s):
                j = (i + 1) % s
                if r0 > 0:
                    faces.append((c0, cb + j, cb + i))
                if r1 > 0:
                    faces.append((c1, ct + i, ct + j))
        self._add(np.concatenate(verts), np.array(faces), slot)

    def sphere(self, center, radius, slot: int = PRIMARY, segments: int = 12, rings: int = 8, max_polar_deg: float = 180.0) -> None:
        """Sphere (or a cap down to `max_polar_deg` from the top, open at the rim)."""
        radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (3,))
        theta = np.deg2rad(np.linspace(0, max_polar_deg, rings + 1))
        phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
        t, p = np.meshgrid(theta, phi, indexing="ij")
        pts = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
        verts = pts * radius + np.asarray(center, dtype=np.float64)
        faces = []
        for r in range(rings):
            for i in range(segments):
                j = (i + 1) % segments
                a, b = r * segments + i, r * segments + j
                c, d = (r + 1) * segments + j, (r + 1) * segments + i
                if r > 0:
                    faces.append((a, c, b))
                if r < rings - 1 or max_polar_deg < 180:
                    faces.append((a, d, c))
        self._add(verts, np.array(faces), slot)

    def build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(verts (V,3) float64, faces (F,3) int64, slot per face (F,))."""
        return np.concatenate(self._verts), np.concatenate(self._faces), np.concatenate(self._slots)
