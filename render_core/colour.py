"""sRGB transfer functions (IEC 61966-2-1), for NumPy arrays and torch tensors alike.

A camera or a physically based renderer (Blender, glTF viewers) shades in linear light and
encodes the result as sRGB: colour textures are sRGB-decoded before shading, colour factors
(an MTL's Kd, glTF's baseColorFactor) are already linear. Shading the stored display values
directly gives colours no camera would record: dark, saturated tones come out darker and more
saturated than in any photo of the same object.
"""

from __future__ import annotations

import numpy as np

# The two colour pipelines a DATASET can have been rendered with (its header records which).
LINEAR = "linear"  # decode sRGB inputs, shade in linear light, encode the image as sRGB
DISPLAY = "display"  # shade the stored values as they are (datasets rendered before `colour` existed)
PIPELINES = (LINEAR, DISPLAY)


def srgb_to_linear(x):
    """Display-encoded sRGB in [0, 1] -> linear light; NumPy array or torch tensor."""
    if isinstance(x, np.ndarray):
        x = np.clip(x, 0.0, 1.0)
        return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(x.dtype, copy=False)
    x = x.clamp(0.0, 1.0)
    return (x <= 0.04045) * (x / 12.92) + (x > 0.04045) * ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4


def linear_to_srgb(x):
    """Linear light in [0, 1] -> display-encoded sRGB; NumPy array or torch tensor."""
    if isinstance(x, np.ndarray):
        x = np.clip(x, 0.0, 1.0)
        return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(x.dtype, copy=False)
    x = x.clamp(0.0, 1.0)
    return (x <= 0.0031308) * (12.92 * x) + (x > 0.0031308) * (1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)
