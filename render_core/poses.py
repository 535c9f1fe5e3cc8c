"""Camera poses around an asset at the origin: rings, spheres and the rig's own views.

Every pose is a (4, 4) camera-to-world matrix in the OpenGL / nerfstudio convention the datasets
use (`render_core.rig`), looking at the origin from `distance`.
"""

from __future__ import annotations

import numpy as np
import torch

from render_core.rig import RigConfig, camera_to_world, look_at_rt, make_cameras


def orbit_poses(elevation: float, azimuths: np.ndarray, distance: float) -> np.ndarray:
    """(N, 4, 4) cameras on one ring at `elevation` degrees, at the given azimuths (degrees)."""
    R, T = look_at_rt(np.full(len(azimuths), elevation, dtype=np.float32), np.asarray(azimuths, dtype=np.float32), distance)
    return camera_to_world(R, T).numpy()


def sphere_poses(elevations, azimuth_steps: int, distance: float) -> np.ndarray:
    """(E * A, 4, 4) cameras at every elevation x `azimuth_steps` evenly spaced azimuths, ring by ring."""
    elev = np.repeat(np.asarray(elevations, dtype=np.float32), azimuth_steps)
    azim = np.tile(np.arange(azimuth_steps, dtype=np.float32) * 360.0 / azimuth_steps, len(elevations))
    R, T = look_at_rt(elev, azim, distance)
    return camera_to_world(R, T).numpy()


def rig_poses(rig: RigConfig, azimuth_steps: int | None = None) -> np.ndarray:
    """(K, 4, 4) the rig's own ring views, or its elevations x `azimuth_steps` azimuths."""
    if azimuth_steps is None:
        _, c2w, _, _ = make_cameras(rig)
        return c2w.numpy() if isinstance(c2w, torch.Tensor) else np.asarray(c2w)
    return sphere_poses(rig.elevations, azimuth_steps, rig.distance)
