"""Camera rigs: rings of views at fixed elevations, looking at the origin, and an optional
ring at each asset's own floor height.

Why a floor ring: a long sofa on short feet, normalised to the unit box, is low and deep.
A camera of a fixed low ring (-10 deg) looks up at it, so every ray under the body meets the
underside before it comes out at the back, and the sofa has the silhouette of one standing on
a plinth. A camera whose centre sits just above the asset's floor sees the gap edge-on: its
rays at that height are horizontal and pass under the body (BENCHMARKS.md, "Why the sofas fail").

Stored camera convention (what DATASET files hold and the NeRF reads):
- `c2w` (V, 4, 4): camera-to-world in the OpenGL / nerfstudio convention: the
  camera looks along its -Z axis, +Y is up in the image, +X is right. This is
  what `nerfstudio.cameras.cameras.Cameras(camera_to_worlds=c2w[:, :3])` expects.
- `intrinsics` (3, 3): pinhole K in pixels for a W x H image, principal point at
  the image centre (W/2, H/2), pixel (i, j) covering [j, j+1) x [i, i+1), so pixel
  centres sit at +0.5, as nerfstudio's ray generator assumes.
- World: +Y up, assets face +Z; azimuth 0 looks at the front of the asset.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

# PyTorch3D view space is +X left, +Y up, +Z forward; OpenGL camera space is +X right, +Y up, -Z forward.
_P3D_TO_GL = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))


# Floor views the product renders by default (`assets2vec render`, the demo, `RigConfig()`). A dataset
# header written before the floor ring existed has no floor_views and reads as rendered: none.
DEFAULT_FLOOR_VIEWS = 6
LEGACY_RIG_DEFAULTS = {"floor_views": 0}


@dataclass(frozen=True)
class RigConfig:
    n_views: int = 18
    elevations: tuple[float, ...] = (-10.0, 20.0, 50.0)  # degrees; a low ring shows bases and legs
    distance: float = 2.6  # a unit-box asset (bounding sphere r = 0.87) fits a 40 deg view at 2.6
    fov_deg: float = 40.0
    azimuth_offset: float = 0.0  # degrees added to every azimuth
    # Extra views after the fixed rings, at the asset's floor + floor_lift (units of the unit box).
    floor_views: int = DEFAULT_FLOOR_VIEWS
    floor_lift: float = 0.02

    @property
    def total_views(self) -> int:
        return self.n_views + self.floor_views

    def __post_init__(self):
        if self.n_views < 1:
            raise ValueError(f"views must be at least 1, got {self.n_views}")
        if not self.elevations:
            raise ValueError("at least one elevation ring is needed")
        if any(not -89.0 <= e <= 89.0 for e in self.elevations):
            raise ValueError(f"elevations must lie in [-89, 89] degrees, got {list(self.elevations)}")
        if not 0.0 < self.fov_deg < 170.0:
            raise ValueError(f"field of view must be in (0, 170) degrees, got {self.fov_deg}")
        if self.distance <= 0.9:
            raise ValueError(f"camera distance must exceed 0.9 (the unit asset's bounding sphere), got {self.distance}")
        if self.floor_views < 0:
            raise ValueError(f"floor views must be 0 or more, got {self.floor_views}")
        if not 0.0 <= self.floor_lift < 0.5:
            raise ValueError(f"floor lift must be in [0, 0.5) (units of the unit box), got {self.floor_lift}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["elevations"] = list(self.elevations)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RigConfig":
        return cls(**{**LEGACY_RIG_DEFAULTS, **d, "elevations": tuple(d["elevations"])})


def floor_elevation(cfg: RigConfig, floor: float) -> float:
    """Elevation (degrees) that puts a camera at height `floor + floor_lift` on the rig's sphere.
    `floor` is the normalised asset's lowest y (-0.5 for an asset whose height is its longest side)."""
    return math.degrees(math.asin(float(np.clip((floor + cfg.floor_lift) / cfg.distance, -0.99, 0.99))))


def rig_angles(cfg: RigConfig, floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(elevation, azimuth) in degrees, each (V,). Views are spread over the rings as evenly as
    possible, and each ring is rotated by a fraction of the azimuth step so rings interleave.
    The floor ring depends on the asset: it comes last, and only when `floor` is given."""
    rings = len(cfg.elevations)
    per_ring = [cfg.n_views // rings + (1 if r < cfg.n_views % rings else 0) for r in range(rings)]
    elev, azim = [], []
    for r, (e, n) in enumerate(zip(cfg.elevations, per_ring)):
        if n == 0:
            continue
        step = 360.0 / n
        for k in range(n):
            elev.append(e)
            azim.append((cfg.azimuth_offset + k * step + r * step / rings) % 360.0)
    if cfg.floor_views and floor is not None:
        # An even count holds the front (0) and the back (180): they see through the gap along its shortest path.
        e = floor_elevation(cfg, floor)
        for k in range(cfg.floor_views):
            elev.append(e)
            azim.append((cfg.azimuth_offset + k * 360.0 / cfg.floor_views) % 360.0)
    return np.asarray(elev, dtype=np.float32), np.asarray(azim, dtype=np.float32)


def look_at_rt(elev: np.ndarray, azim: np.ndarray, distance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch3D (R, T) for cameras on a sphere looking at the origin, +Y up."""
    from pytorch3d.renderer import look_at_view_transform

    return look_at_view_transform(dist=distance, elev=torch.as_tensor(elev), azim=torch.as_tensor(azim))


def camera_to_world(R: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """OpenGL camera-to-world (V, 4, 4) from PyTorch3D's row-vector world-to-view (R, T).

    PyTorch3D: x_view = x_world @ R + T, so x_world = R @ (x_view - T) in column form.
    """
    V = R.shape[0]
    c2w = torch.eye(4).repeat(V, 1, 1)
    c2w[:, :3, :3] = R @ _P3D_TO_GL
    c2w[:, :3, 3] = -(R @ T[..., None])[..., 0]
    return c2w


def intrinsics(fov_deg: float, size: int) -> np.ndarray:
    """Pinhole K (3, 3) in pixels for a square `size` image and a vertical field of view."""
    f = (size / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0, size / 2.0], [0, f, size / 2.0], [0, 0, 1]], dtype=np.float32)


def make_cameras(cfg: RigConfig, device: torch.device | str = "cpu", floor: float | None = None):
    """PyTorch3D `FoVPerspectiveCameras` for the rig plus the stored (c2w, elev, azim).
    With `floor` (the normalised asset's lowest y) the floor ring is included."""
    from pytorch3d.renderer import FoVPerspectiveCameras

    elev, azim = rig_angles(cfg, floor)
    R, T = look_at_rt(elev, azim, cfg.distance)
    # znear well inside the camera-asset gap, so no face is ever clipped.
    cams = FoVPerspectiveCameras(R=R, T=T, fov=cfg.fov_deg, znear=0.1, zfar=cfg.distance + 2.0, device=device)
    return cams, camera_to_world(R, T), elev, azim


def project(points: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (P, 3) with one stored camera: pixel (u=col, v=row) (P, 2) and depth (P,)."""
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -cam[:, 2]
    u = K[0, 0] * cam[:, 0] / depth + K[0, 2]
    v = -K[1, 1] * cam[:, 1] / depth + K[1, 2]
    return np.stack([u, v], -1), depth


def unproject(depth: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> np.ndarray:
    """World points (H*W', 3) for pixels with depth > 0 of one view (depth is z along the view axis)."""
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols]
    x = (cols + 0.5 - K[0, 2]) / K[0, 0] * z
    y = -(rows + 0.5 - K[1, 2]) / K[1, 1] * z
    cam = np.stack([x, y, -z], -1)
    return cam @ c2w[:3, :3].T + c2w[:3, 3]
