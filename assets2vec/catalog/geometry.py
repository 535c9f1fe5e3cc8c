"""The geometry space: what a shape code decodes to, as a vector for tagging and search.

A shape code is a point in a space the network learned; fine parts (how many legs, how
thick an armrest) are in the geometry it decodes to but are not laid out linearly in the
code. Here each shape code's density is decoded by the frozen network on an R^3 grid over
the scene box and turned into per-cell opacity. The grid is then cropped to the object's
own box (per axis, the cells whose opacity reaches `BOX_OPACITY` somewhere in their
slice), resampled to S^3 and max-projected along the three axes: three S x S silhouettes
("profiles", stored as uint8). Each profile is described by its pixels and by a histogram of
oriented gradients (HOG) of each silhouette, and a PCA fitted over the catalog's descriptors maps
them to `GEOMETRY_DIM` coordinates, unwhitened so that the many low-variance components do not
drown the few that carry the shape.

Why HOG: a part that tells two classes apart (a wooden armrest's bar on two posts against a
padded one's block on one post) sits a pixel or two higher or lower from one chair to the next,
so in raw pixels the same part is different dimensions for different assets and 20 labels do not
find it. HOG's local edge histograms, pooled over 4 x 4-pixel cells, are the same numbers under such
shifts. On the 400-asset benchmark (10 seeds, 20 labels per class) the library's own meshes
through this recipe give armrests 93.8 % (84.0 % from the pixels at 24^2), and the geometry the
benchmark run decodes gives base 96.4 % (94.2 %); legs and armrests there are limited by what the
network decodes (BENCHMARKS.md).

Why the crop: assets are scaled so that their longest side is 1, so the same part sits at
different places in the scene box (a sofa's feet are low in a long sofa's box, higher in a
short one's). Stretched to its own box, "the bottom tenth of the object" is the same cells
for every asset, which is what a few-shot linear classifier can use. Measured on the
400-asset benchmark run (10 seeds, 20 labels per class): legs 80.3 -> 88.6 %, armrests
77.8 -> 85.3 %, base 92.1 -> 94.2 %, family 99.2 -> 97.9 %. The aspect ratio the crop
drops is still in the shape space.

Nothing but the shape code goes in (density never reads the texture code), so this space
is as free of texture as the shape space. Cost: one density pass of R^3 points per asset
(124 ms at R = 48 on 2 CPU cores; 26 ms at R = 32, where legs and base come out 4-5 points lower).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skimage.feature import hog
from tqdm.auto import tqdm

from assets2vec.model_components.occupancy import cell_centres

PROFILE_RESOLUTION = 48  # decoding grid: a sofa's 0.11 m feet are about 2 cells here, 1.6 at 32
PROFILE_SIZE = 32  # side of the object-box grid that is projected (HOG's 4-pixel cells need the detail; 24 lost armrests)
BOX_OPACITY = 0.5  # a slice belongs to the object's box when one of its cells is at least this opaque
HOG_CELLS = 8  # HOG cells across a silhouette (4 x 4 pixels each at PROFILE_SIZE 32)
HOG_BLOCK = 3  # cells a normalisation block is wide (3 x 3 over 2 x 2: mesh armrests 95.7 against 94.2 % in a scratch probe, within noise)
HOG_ORIENTATIONS = 9
PROFILE_KIND = f"box{PROFILE_SIZE}@{PROFILE_RESOLUTION}+hog{HOG_CELLS}x{HOG_BLOCK}"  # stored with a catalog: other profiles are decoded again
GEOMETRY_DIM = 64
REFIT_GROWTH = 2.0  # refit the PCA once the catalog holds this many times the assets it was fitted on
MAX_FIT = 20_000  # profiles the PCA is fitted on at most (a seeded sample beyond that)


def check_codes(model, codes: np.ndarray, half: str) -> torch.Tensor:
    """(n, d) float32 tensor of `half` ("shape" or "texture") codes, checked against the network."""
    t = torch.as_tensor(np.atleast_2d(np.asarray(codes, np.float32)))
    want = getattr(model.config, f"{half}_dim")
    if t.shape[1] != want:
        raise ValueError(f"{half} codes have {t.shape[1]} dimensions; the network takes {want}")
    return t


def opacity_grid(model, shape_code: torch.Tensor, points: torch.Tensor, cell: float) -> torch.Tensor:
    """(N,) opacity over one cell of side `cell` at `points` (N, 3), for one shape code (ds,)."""
    sigma = model.density_at(points, shape_code.expand(len(points), -1)).view(-1).float()
    return 1.0 - torch.exp(-sigma.clamp(min=0) * cell)


def object_box(opacity: torch.Tensor, threshold: float = BOX_OPACITY) -> tuple[slice, slice, slice]:
    """Per axis of an (R, R, R) opacity grid, the slices from the first to the last one holding a cell at
    least `threshold` opaque (the whole axis when none does: an empty decode keeps the scene box)."""
    box = []
    for a in range(3):
        hit = torch.nonzero(opacity.amax(dim=[b for b in range(3) if b != a]) >= threshold).view(-1)
        box.append(slice(int(hit[0]), int(hit[-1]) + 1) if len(hit) else slice(0, opacity.shape[a]))
    return tuple(box)


def box_cube(opacity: torch.Tensor, size: int = PROFILE_SIZE, threshold: float = BOX_OPACITY) -> torch.Tensor:
    """(size, size, size) an (R, R, R) opacity grid cropped to `object_box` and trilinearly resampled."""
    crop = opacity[object_box(opacity, threshold)].float()[None, None]
    return F.interpolate(crop, size=(size, size, size), mode="trilinear", align_corners=False)[0, 0]


def box_profile(opacity: torch.Tensor, size: int = PROFILE_SIZE, threshold: float = BOX_OPACITY) -> torch.Tensor:
    """(3 size^2,) max-projections along x, y and z of `box_cube`; values in [0, 1]."""
    cube = box_cube(opacity, size, threshold)
    return torch.cat([cube.amax(a).reshape(-1) for a in range(3)])


@torch.no_grad()
def decode_profiles(model, shape_codes: np.ndarray, resolution: int = PROFILE_RESOLUTION, size: int = PROFILE_SIZE,
                    progress: bool = False) -> np.ndarray:
    """(n, 3 size^2) uint8 object-box profiles of shape codes (n, ds), decoded by `model` (a `LatentNeRFModel`)
    on a resolution^3 grid."""
    codes = check_codes(model, shape_codes, "shape")
    r, h = resolution, model.grid_sampler.half_size
    device = next(model.parameters()).device
    pts = cell_centres(r, h, device)
    out = np.zeros((len(codes), 3 * size * size), np.uint8)
    for i in tqdm(range(len(codes)), desc="geometry", unit="asset", disable=not progress):
        opacity = opacity_grid(model, codes[i].to(device), pts, 2 * h / r).view(r, r, r)
        out[i] = (box_profile(opacity, size) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return out


def _pack(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "f4": base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["f4"]), dtype="<f4").reshape(d["shape"]).astype(np.float32)


def profile_parts(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Profiles (n, 3 s^2) uint8 -> their pixels (n, 3 s^2) in [0, 1] and the HOG of each of the three
    silhouettes (n, H): `HOG_CELLS` cells across, `HOG_BLOCK`^2 cells a block, L2-Hys normalised (skimage's default)."""
    x = np.atleast_2d(np.asarray(profiles)).astype(np.float32) / 255.0
    s = int(round((x.shape[1] / 3) ** 0.5))
    if x.ndim != 2 or 3 * s * s != x.shape[1]:
        raise ValueError(f"expected profiles of three square silhouettes (n, 3 s^2), got {x.shape}")
    cell = max(1, s // HOG_CELLS)
    h = [np.concatenate([hog(v, orientations=HOG_ORIENTATIONS, pixels_per_cell=(cell, cell), cells_per_block=(HOG_BLOCK, HOG_BLOCK))
                         for v in row.reshape(3, s, s)]) for row in x]
    return x, np.stack(h).astype(np.float32)


@dataclass
class GeometryPCA:
    """Profiles (n, 3 s^2) uint8 -> (n, k) float32 coordinates: each profile's pixels and HOG
    (`profile_parts`), each part scaled to a mean norm of 1, centred, projected, one global scale."""

    mean: np.ndarray  # (D,) mean descriptor: 3 s^2 pixels, then the HOG
    components: np.ndarray  # (k, D), orthonormal rows
    scale: float  # makes the mean squared norm of the fitted vectors 1
    n_fit: int  # how many profiles it was fitted on
    part_scales: tuple[float, float]  # pixels, HOG: so that neither part outweighs the other by its size

    @staticmethod
    def _join(parts: tuple[np.ndarray, np.ndarray], part_scales: tuple[float, float]) -> np.ndarray:
        """(n, D) descriptors: the `profile_parts`, each times its scale, side by side."""
        return np.concatenate([p * w for p, w in zip(parts, part_scales)], axis=1)

    @classmethod
    def fit(cls, profiles: np.ndarray, dim: int = GEOMETRY_DIM, seed: int = 0) -> "GeometryPCA":
        profiles = np.asarray(profiles)
        if profiles.ndim != 2 or len(profiles) == 0:
            raise ValueError(f"expected profiles (n, D) with n >= 1, got {profiles.shape}")
        n_all = len(profiles)
        if n_all > MAX_FIT:
            profiles = profiles[np.sort(np.random.default_rng(seed).choice(n_all, MAX_FIT, replace=False))]
        parts = profile_parts(profiles)
        norms = [float(np.linalg.norm(p, axis=1).mean()) for p in parts]
        part_scales = tuple(1.0 / n if n > 0 else 1.0 for n in norms)
        x = cls._join(parts, part_scales)
        mean = x.mean(0)
        xc = x - mean
        k = max(1, min(dim, len(x) - 1 if len(x) > 1 else 1, x.shape[1]))
        # Thin SVD of the centred data: exact, and small (n x D, D = 3 s^2 pixels + the HOG).
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        comps = vt[:k]
        if comps.shape[0] < dim:  # few assets: pad with zero directions so the dimension stays fixed
            comps = np.vstack([comps, np.zeros((dim - comps.shape[0], x.shape[1]), np.float32)])
        y = xc @ comps.T
        rms = float(np.sqrt((y ** 2).sum(1).mean()))
        return cls(mean.astype(np.float32), comps.astype(np.float32), 1.0 / rms if rms > 0 else 1.0, n_all, part_scales)

    def transform(self, profiles: np.ndarray) -> np.ndarray:
        profiles = np.atleast_2d(np.asarray(profiles))
        try:
            x = self._join(profile_parts(profiles), self.part_scales)
        except ValueError:  # not three square silhouettes at all
            x = None
        if x is None or x.shape[1] != len(self.mean):
            raise ValueError(f"profiles have {profiles.shape[1]} values; this catalog's are silhouettes of another size")
        return np.ascontiguousarray((x - self.mean) @ self.components.T * self.scale, dtype=np.float32)

    def stale(self, n_now: int) -> bool:
        return n_now >= REFIT_GROWTH * self.n_fit

    def to_json(self) -> dict:
        return {"mean": _pack(self.mean), "components": _pack(self.components), "scale": self.scale, "n_fit": self.n_fit,
                "part_scales": list(self.part_scales)}

    @classmethod
    def from_json(cls, d: dict) -> "GeometryPCA":
        return cls(_unpack(d["mean"]), _unpack(d["components"]), float(d["scale"]), int(d["n_fit"]),
                   tuple(float(w) for w in d["part_scales"]))
