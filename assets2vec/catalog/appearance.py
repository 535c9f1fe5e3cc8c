"""The appearance space: the colours an asset's codes paint on its own surface, as a histogram.

Colour is what people ask of a library first ("which chairs are red?"), and a texture code
holds it non-linearly (the colour MLP mixes it with the position and the geometry). Here
each asset's shape code is decoded on an R^3 grid (as in `catalog.geometry`); at the
occupied cells (opacity at least 0.5, or half the highest; at most `MAX_POINTS`, a fixed-seed subset) the network's colour is read with
the asset's texture code and one fixed view direction, and binned into a BINS^3 RGB
histogram weighted by opacity. The stored profile is the square root of the normalised
histogram (its rows have unit norm; Euclidean distance is then the Hellinger distance
between colour distributions), quantised to uint8; the vector is that profile / 255.

Unlike the texture space, this one reads both codes: how much of the surface is frame or
upholstery depends on the shape, so shape attributes are slightly predictable from it.
Use the texture space where that matters. Cost: one density pass and one colour pass per
asset (about 66 ms at R = 32 on 2 CPU cores).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from assets2vec.catalog.geometry import check_codes, opacity_grids
from assets2vec.model_components.occupancy import cell_centres

RESOLUTION = 32  # grid whose occupied cells are coloured
BINS = 6  # per RGB channel: 216 bins
MAX_POINTS = 3000
VIEW_DIRECTION = (0.0, 0.3, 1.0)  # slightly from above, as the rig mostly looks


@torch.no_grad()
def decode_appearance(model, shape_codes: np.ndarray, texture_codes: np.ndarray, resolution: int = RESOLUTION,
                      bins: int = BINS, progress: bool = False) -> np.ndarray:
    """(n, bins^3) uint8 square-root colour histograms of assets with codes shape (n, ds), texture (n, dt)."""
    shape = check_codes(model, shape_codes, "shape")
    texture = check_codes(model, texture_codes, "texture")
    if len(shape) != len(texture):
        raise ValueError(f"got {len(shape)} shape codes but {len(texture)} texture codes")
    r, h = resolution, model.grid_sampler.half_size
    device = next(model.parameters()).device
    pts = cell_centres(r, h, device)
    direction = torch.nn.functional.normalize(torch.tensor(VIEW_DIRECTION, device=device), dim=0)
    out = np.zeros((len(shape), bins ** 3), np.uint8)
    grids = opacity_grids(model, shape, pts, 2 * h / r)
    for i in tqdm(range(len(shape)), desc="appearance", unit="asset", disable=not progress):
        opacity = next(grids)
        top = float(opacity.max())
        if top <= 0:
            continue  # nothing decoded: an all-zero profile
        # Occupied cells; for a barely trained network, its densest ones.
        sel = torch.nonzero(opacity >= min(0.5, 0.5 * top)).squeeze(1)
        if len(sel) > MAX_POINTS:
            sel = sel[torch.randperm(len(sel), generator=torch.Generator().manual_seed(0))[:MAX_POINTS].to(device)]
        n = len(sel)
        rgb = model.colour_at(pts[sel], direction.expand(n, 3), shape[i].to(device).expand(n, -1),
                              texture[i].to(device).expand(n, -1)).clamp(0, 1).cpu().numpy()
        hist, _ = np.histogramdd(rgb, bins=(bins,) * 3, range=((0.0, 1.0),) * 3, weights=opacity[sel].cpu().numpy())
        out[i] = np.round(np.sqrt(hist.ravel() / hist.sum()) * 255).astype(np.uint8)
    return out


def appearance_vectors(profiles: np.ndarray) -> np.ndarray:
    """(n, bins^3) float32 vectors of profiles (n, bins^3) uint8: unit-norm square-root histograms."""
    return np.ascontiguousarray(np.atleast_2d(profiles), dtype=np.float32) / 255.0
