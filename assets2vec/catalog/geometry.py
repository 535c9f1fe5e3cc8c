"""The geometry space: what a shape code decodes to, as a vector for tagging and search.

A shape code is a point in a space the network learned; fine parts (how many legs, how
thick an armrest) are in the geometry it decodes to but are not laid out linearly in the
code. Here each shape code's density is decoded by the frozen network on an R^3 grid over
the scene box and turned into per-cell opacity. The grid is then cropped to the object's
own box (per axis, the cells whose opacity reaches `BOX_OPACITY` somewhere in their
slice), resampled to S^3 and seen from outside as nine S x S images (the "profile", stored as
uint8): three silhouettes (max-projections along x, y and z) and six depth maps (how far into
the box, from each of its six faces, a ray travels before the opacity stops it). Each image is
described by its pixels and by a histogram of oriented gradients (HOG), and a PCA fitted over
the catalog's descriptors maps them to `GEOMETRY_DIM` coordinates, unwhitened so that the many
low-variance components do not drown the few that carry the shape.

Why depth maps: a silhouette says where the object is along a line of sight, not where on it.
Seen from below, four legs are four spots at the floor and the seat's underside a patch a third
of the way up; a sled is two lines at the floor; a sofa on feet shows its body lifted off the
floor between them, which in a silhouette is hidden by the body itself. From the side, an
armrest is the nearest thing and its thickness and posts are in the depth, where the max-
projection merges them with the seat and back behind. Adding the depth maps raised few-shot
armrest and leg accuracy on the tagging benchmark, both from the library's own meshes and from
decoded geometry (BENCHMARKS.md).

Why HOG: a part that tells two classes apart (a wooden armrest's bar on two posts against a
padded one's block on one post) sits a pixel or two higher or lower from one chair to the next,
so in raw pixels the same part is different dimensions for different assets and 20 labels do not
find it. HOG's local edge histograms, pooled over 4 x 4-pixel cells, are the same numbers under such
shifts, which is what lets 20 labels per class find the part (BENCHMARKS.md compares it with raw
pixels); on decoded geometry, legs and armrests are then limited by what the network decodes.

Why the crop: assets are scaled so that their longest side is 1, so the same part sits at
different places in the scene box (a sofa's feet are low in a long sofa's box, higher in a
short one's). Stretched to its own box, "the bottom tenth of the object" is the same cells
for every asset, which is what a few-shot linear classifier can use: it helps legs, armrests and
base and costs the family a little (BENCHMARKS.md). The aspect ratio the crop drops is still in
the shape space.

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
from sklearn.utils.extmath import randomized_svd
from tqdm.auto import tqdm

from assets2vec.model_components.occupancy import cell_centres

PROFILE_RESOLUTION = 48  # decoding grid: a sofa's 0.11 m feet are about 2 cells here, 1.6 at 32
PROFILE_SIZE = 32  # side of the object-box grid that is projected (HOG's 4-pixel cells need the detail; 24 lost armrests)
BOX_OPACITY = 0.5  # a slice belongs to the object's box when one of its cells is at least this opaque
HOG_CELLS = 8  # HOG cells across a silhouette (4 x 4 pixels each at PROFILE_SIZE 32)
HOG_BLOCK = 3  # cells a normalisation block is wide (3 x 3 over 2 x 2: mesh armrests 95.7 against 94.2 % in a scratch probe, within noise)
HOG_ORIENTATIONS = 9
SILHOUETTES, DEPTH_MAPS = 3, 6  # images in a profile: max-projections along x, y, z, then depth from -x, +x, -y, +y, -z, +z
PROFILE_IMAGES = SILHOUETTES + DEPTH_MAPS
PROFILE_KIND = f"box{PROFILE_SIZE}@{PROFILE_RESOLUTION}+depth{DEPTH_MAPS}+hog{HOG_CELLS}x{HOG_BLOCK}"  # stored with a catalog: other profiles are decoded again
GEOMETRY_DIM = 64
REFIT_GROWTH = 2.0  # refit the PCA once the catalog holds this many times the assets it was fitted on
# Profiles the PCA is fitted on at most (a seeded sample beyond that); 64 directions need far fewer.
MAX_FIT = 8_000
# Above this many profiles the PCA is a randomized SVD (Halko et al., scikit-learn's): a descriptor is 35,460
# floats, and fitting 8,000 with the exact SVD took 484 s and 16.4 GB here (randomized: 71 s, 4.8 GB).
EXACT_SVD_MAX = 1_000


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


GPU_POINTS_PER_CALL = 1 << 22
"""density queries per network call on a GPU when decoding many codes: one launch per code would leave it idle"""


def opacity_grids(model, shape_codes: torch.Tensor, points: torch.Tensor, cell: float):
    """(n, N) opacity grids of shape codes (n, ds) at `points` (N, 3), yielded one code at a time. On the CPU
    each code is one network call (as `opacity_grid`); on a GPU, as many codes as fit `GPU_POINTS_PER_CALL`
    points go through the network together."""
    per = 1 if points.device.type == "cpu" else max(1, GPU_POINTS_PER_CALL // len(points))
    for s in range(0, len(shape_codes), per):
        chunk = shape_codes[s:s + per].to(points.device)
        if len(chunk) == 1:
            yield opacity_grid(model, chunk[0], points, cell)
            continue
        sigma = model.density_at(points.repeat(len(chunk), 1), chunk.repeat_interleave(len(points), 0)).view(len(chunk), -1)
        yield from 1.0 - torch.exp(-sigma.float().clamp(min=0) * cell)


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


def depth_maps(cube: torch.Tensor) -> torch.Tensor:
    """(6, S, S) depth maps of an (S, S, S) opacity cube, seen from each face (-x, +x, -y, +y, -z, +z): the
    expected distance a ray travels into the cube before it is stopped, in [0, 1] of the cube's side, each
    cell's centre weighted by the chance the ray stops there (volume rendering's expected depth), and 1 for
    what passes through. Soft opacity gives a soft depth, so a faintly decoded part still moves it."""
    s = cube.shape[0]
    centres = (torch.arange(s, dtype=cube.dtype, device=cube.device) + 0.5) / s
    out = []
    for a in range(3):
        for flip in (False, True):
            alpha = cube.movedim(a, 0).clamp(0, 1)  # (S, S, S), rays along the first axis
            if flip:
                alpha = alpha.flip(0)
            trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]]), 0)
            weight = trans * alpha  # chance the ray stops in each cell
            out.append((weight * centres.view(-1, 1, 1)).sum(0) + (1 - weight.sum(0)))
    return torch.stack(out)


def box_profile(opacity: torch.Tensor, size: int = PROFILE_SIZE, threshold: float = BOX_OPACITY) -> torch.Tensor:
    """(9 size^2,) the `box_cube` seen from outside: max-projections along x, y and z, then its six
    `depth_maps`; values in [0, 1]."""
    cube = box_cube(opacity, size, threshold)
    return torch.cat([torch.stack([cube.amax(a) for a in range(3)]), depth_maps(cube)]).reshape(-1)


@torch.no_grad()
def decode_profiles(model, shape_codes: np.ndarray, resolution: int = PROFILE_RESOLUTION, size: int = PROFILE_SIZE,
                    progress: bool = False) -> np.ndarray:
    """(n, 9 size^2) uint8 object-box profiles of shape codes (n, ds), decoded by `model` (a `LatentNeRFModel`)
    on a resolution^3 grid."""
    codes = check_codes(model, shape_codes, "shape")
    r, h = resolution, model.grid_sampler.half_size
    device = next(model.parameters()).device
    pts = cell_centres(r, h, device)
    out = np.zeros((len(codes), PROFILE_IMAGES * size * size), np.uint8)
    grids = opacity_grids(model, codes, pts, 2 * h / r)
    for i in tqdm(range(len(codes)), desc="geometry", unit="asset", disable=not progress):
        opacity = next(grids).view(r, r, r)
        out[i] = (box_profile(opacity, size) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return out


def _pack(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "f4": base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["f4"]), dtype="<f4").reshape(d["shape"]).astype(np.float32)


def _hog(images: np.ndarray) -> np.ndarray:
    """HOG of each (s, s) image of `images` (m, s, s), side by side: `HOG_CELLS` cells across, `HOG_BLOCK`^2 cells a
    block, L2-Hys normalised (skimage's default)."""
    cell = max(1, images.shape[-1] // HOG_CELLS)
    return np.concatenate([hog(v, orientations=HOG_ORIENTATIONS, pixels_per_cell=(cell, cell), cells_per_block=(HOG_BLOCK, HOG_BLOCK))
                           for v in images])


def profile_parts(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Profiles (n, 9 s^2) uint8 -> the silhouettes' pixels (n, 3 s^2) in [0, 1] and HOG (n, H), then the depth
    maps' pixels (n, 6 s^2) and HOG (n, 2 H)."""
    x = np.atleast_2d(np.asarray(profiles)).astype(np.float32) / 255.0
    s = int(round((x.shape[1] / PROFILE_IMAGES) ** 0.5))
    if x.ndim != 2 or s == 0 or PROFILE_IMAGES * s * s != x.shape[1]:
        raise ValueError(f"expected profiles of {SILHOUETTES} silhouettes and {DEPTH_MAPS} depth maps, square, "
                         f"(n, {PROFILE_IMAGES} s^2), got {x.shape}")
    images = x.reshape(len(x), PROFILE_IMAGES, s, s)
    k = SILHOUETTES * s * s
    sil_hog, depth_hog = (np.stack([_hog(row) for row in part]).astype(np.float32)
                          for part in (images[:, :SILHOUETTES], images[:, SILHOUETTES:]))
    return x[:, :k], sil_hog, x[:, k:], depth_hog


@dataclass
class GeometryPCA:
    """Profiles (n, 9 s^2) uint8 -> (n, k) float32 coordinates: each profile's `profile_parts` (silhouettes and
    depth maps, pixels and HOG), each part scaled to a mean norm of 1, centred, projected, one global scale."""

    mean: np.ndarray  # (D,) mean descriptor: the parts side by side
    components: np.ndarray  # (k, D), orthonormal rows
    scale: float  # makes the mean squared norm of the fitted vectors 1
    n_fit: int  # how many profiles it was fitted on
    part_scales: tuple[float, ...]  # one per part, so that no part outweighs the others by its size

    @staticmethod
    def _join(parts: tuple[np.ndarray, ...], part_scales: tuple[float, ...]) -> np.ndarray:
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
        if len(xc) <= EXACT_SVD_MAX:
            comps = np.linalg.svd(xc, full_matrices=False)[2][:k]  # thin SVD: exact, and small here
        else:
            comps = randomized_svd(xc, k, n_iter=7, random_state=seed)[2]
        if comps.shape[0] < dim:  # few assets: pad with zero directions so the dimension stays fixed
            comps = np.vstack([comps, np.zeros((dim - comps.shape[0], x.shape[1]), np.float32)])
        y = xc @ comps.T
        rms = float(np.sqrt((y ** 2).sum(1).mean()))
        return cls(mean.astype(np.float32), comps.astype(np.float32), 1.0 / rms if rms > 0 else 1.0, n_all, part_scales)

    def transform(self, profiles: np.ndarray) -> np.ndarray:
        profiles = np.atleast_2d(np.asarray(profiles))
        try:
            x = self._join(profile_parts(profiles), self.part_scales)
        except ValueError:  # not nine square images at all
            x = None
        if x is None or x.shape[1] != len(self.mean):
            raise ValueError(f"profiles have {profiles.shape[1]} values; this catalog's are images of another size")
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
