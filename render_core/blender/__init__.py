"""Blender (Cycles) as a second renderer: scenes (`render_core.scenes.blender`) and the photo
benchmark's photos. Blender comes from the optional `[blender]` extra (`bpy`, about 520 MB); nothing
else in the project imports it, so the project installs and runs without it.
"""

from __future__ import annotations

import colorsys
import contextlib
import math
import os
import sys

import numpy as np

INSTALL = "pip install -e '.[blender]' (bpy 4.2 for Python 3.11, about 520 MB)"

# Project world (+Y up, assets face +Z) -> Blender world (+Z up, front faces -Y): what Blender's
# OBJ/glTF importers do to a Y-up file, so file -> Blender is always this one matrix.
M = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
M4 = np.eye(4)
M4[:3, :3] = M


class BlenderMissing(ValueError):
    """Blender's Python module is not installed (the CLI reports it as one line, like bad input)."""


def require_bpy():
    """The `bpy` module, or a clear error saying how to install it."""
    try:
        import bpy
    except ImportError as exc:
        raise BlenderMissing(f"the Blender renderer needs Blender's Python module, which is not installed: {INSTALL}") from exc
    return bpy


def denoiser() -> str:
    """Cycles' denoiser when this build has it (OpenImageDenoise on CPU), else "none"."""
    import _cycles

    return "OPENIMAGEDENOISE" if getattr(_cycles, "with_openimagedenoise", False) else "none"


def kelvin_rgb(kelvin: float) -> list[float]:
    """Linear RGB (max 1) of a blackbody, Tanner Helland's fit to the CIE sRGB values."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    srgb = np.clip([r, g, b], 0, 255) / 255.0
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)  # light colours are linear
    return [round(float(x), 4) for x in lin / lin.max()]


def rand_colour(rng, max_saturation: float, value: tuple[float, float]) -> np.ndarray:
    """Linear RGB from a uniform hue, saturation up to `max_saturation` and sRGB value in `value`:
    uniform RGB draws are mostly garish, real rooms mostly muted."""
    rgb = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, max_saturation), rng.uniform(*value)))
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


@contextlib.contextmanager
def quiet():
    """Blender's C code prints render progress to fd 1/2; keep stdout for the caller's output."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1), os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
