"""Triplanes decoded from a code: each asset gets its own feature planes, at the cost of a small matmul.

`planes(z) = P_0 + sum_k m(z)_k P_k`: a learned basis of triplanes mixed by a small
MLP of the code. Features are then local (bilinear lookups in three axis-aligned
planes) like in EG3D or TensoRF, which is what makes grid fields train in minutes
instead of the hours a code-conditioned MLP needs, while the asset is still
described by one short vector.

All assets of a batch are looked up with one `grid_sample` call: their planes are
stacked along the depth axis of a 3D texture and each point picks its asset's layer
exactly (trilinear interpolation at an integer depth is a plain lookup).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from nerfstudio.field_components.base_field_component import FieldComponent
from torch import Tensor, nn

# Plane p spans these two coordinates of the point: xy, xz, yz.
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


def group_codes(codes: Float[Tensor, "B d"]) -> tuple[Float[Tensor, "U d"], Int[Tensor, "B"]]:
    """Distinct rows of `codes` (differentiable: taken from the input) and each row's group."""
    # Rows are told apart by an integer hash of their bits: exact (identical rows always
    # collide, a float projection can round differently row to row) and ~100x faster than
    # `unique(dim=0)`, which compares rows one by one.
    bits = codes.detach().float().contiguous().view(torch.int32).long()  # (B, d)
    gen = torch.Generator().manual_seed(12345)
    mult = torch.randint(1, 2**31 - 1, (codes.shape[-1],), generator=gen).to(codes.device) * 2 + 1
    unique, inverse = torch.unique((bits * mult).sum(-1), return_inverse=True)
    first = torch.full((unique.shape[0],), codes.shape[0], dtype=torch.long, device=codes.device)
    first = first.scatter_reduce(0, inverse, torch.arange(codes.shape[0], device=codes.device), reduce="amin")
    return codes[first], inverse


class CodeTriplanes(FieldComponent):
    """Args:
    code_dim: size of the code that selects the planes.
    num_basis: basis triplanes mixed per code (besides the shared mean P_0).
    channels: features per plane.
    resolution: plane side in cells.
    """

    def __init__(self, code_dim: int, num_basis: int, channels: int, resolution: int, hidden_dim: int = 64, basis_init: float = 0.05) -> None:
        super().__init__(in_dim=3, out_dim=3 * channels)
        self.channels, self.resolution = channels, resolution
        self.mapping = nn.Sequential(nn.Linear(code_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_basis))
        self.mean = nn.Parameter(torch.randn(3, channels, resolution, resolution) * 0.1)
        self.basis = nn.Parameter(torch.randn(num_basis, 3, channels, resolution, resolution) * basis_init)

    def planes(self, codes: Float[Tensor, "U d"]) -> Float[Tensor, "U 3 C R R"]:
        weights = self.mapping(codes)  # (U, K)
        return self.mean + torch.einsum("uk,kpchw->upchw", weights, self.basis)

    def forward(self, positions: Float[Tensor, "N 3"], codes: Float[Tensor, "U d"], group: Int[Tensor, "N"]) -> Float[Tensor, "N 3C"]:
        """Features at `positions` (in [-1, 1]^3), point n read from the planes of code `group[n]`."""
        planes = self.planes(codes)  # (U, 3, C, R, R)
        U, C, R = planes.shape[0], self.channels, self.resolution
        # One 2D atlas, plane p of code u in rows [(3u + p) R, (3u + p + 1) R): with
        # align_corners and coordinates clamped inside a tile, bilinear taps never cross tiles.
        atlas = planes.permute(2, 0, 1, 3, 4).reshape(1, C, U * 3 * R, R)
        layer = group[:, None] * 3 + torch.arange(3, device=positions.device)  # (N, 3)
        uv = torch.stack([positions[:, list(a)] for a in PLANE_AXES], 1).clamp(-1.0, 1.0)  # (N, 3, 2)
        row = (uv[..., 0] + 1.0) * (0.5 * (R - 1)) + layer * R  # atlas pixel row
        gy = row * (2.0 / (U * 3 * R - 1)) - 1.0
        grid = torch.stack([uv[..., 1], gy], -1)  # grid_sample wants (x, y) = (column, row)
        out = F.grid_sample(atlas.float(), grid.view(1, -1, 1, 2).float(), mode="bilinear", align_corners=True)
        return out.view(C, -1, 3).permute(1, 2, 0).reshape(-1, 3 * C)  # (N, 3C)
