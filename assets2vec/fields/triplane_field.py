"""Our default field: code-decoded triplanes + small FiLM MLPs, split into shape and texture.

Shape code -> shape triplanes + FiLM of the density MLP -> density and geometry
features. Texture code -> texture triplanes + FiLM of the colour MLP, which also sees
the geometry features and the view direction. Nothing on the density path reads the
texture code, so density cannot depend on it.

Codes arrive per ray in `ray_samples.metadata` ("shape_code" (B, 1, ds) for (B, S)
samples, or (N, ds) for N packed samples), so any code renders.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.field_components.encodings import NeRFEncoding, SHEncoding
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.fields.base_field import Field, get_normalized_directions
from torch import Tensor, nn

from assets2vec.field_components.code_triplanes import CodeTriplanes, group_codes
from assets2vec.field_components.film import FiLMMLP


@dataclass
class TriplaneFieldConfig:
    num_basis: int = 32
    """basis triplanes mixed per code, for shape and for texture each"""
    channels: int = 12
    """features per plane"""
    resolution: int = 64
    """plane side in cells (the object spans about 58 of them)"""
    xyz_frequencies: int = 4
    """positional-encoding octaves added to the plane features"""
    num_layers: int = 2
    """hidden layers of the density MLP"""
    hidden_dim: int = 64
    """width of the density MLP"""
    geo_feat_dim: int = 32
    """geometry features handed to the colour MLP"""
    color_layers: int = 2
    """hidden layers of the colour MLP"""
    color_hidden_dim: int = 64
    """width of the colour MLP"""
    direction_sh_levels: int = 2
    """spherical-harmonic levels of the view direction"""


def _groups(codes: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct codes (U, d) and, for every point of `positions` (..., 3), its code's row."""
    lead = codes.reshape(-1, codes.shape[-1])  # one row per ray (or per packed sample)
    unique, inverse = group_codes(lead)
    group = inverse.view(codes.shape[:-1]).expand(positions.shape[:-1]).reshape(-1)
    return unique, group


class TriplaneLatentField(Field):
    def __init__(self, config: TriplaneFieldConfig, shape_dim: int, texture_dim: int, half_size: float) -> None:
        super().__init__()
        c = self.config = config
        self.half_size = half_size  # the planes cover [-half_size, half_size]^3, the model's box
        self.shape_planes = CodeTriplanes(shape_dim, c.num_basis, c.channels, c.resolution)
        self.texture_planes = CodeTriplanes(texture_dim, c.num_basis, c.channels, c.resolution)
        n = c.xyz_frequencies
        self.position_encoding = NeRFEncoding(3, n, 0.0, n - 1.0, include_input=True)
        self.direction_encoding = SHEncoding(levels=c.direction_sh_levels, implementation="torch")
        x_dim = 3 * c.channels + self.position_encoding.get_out_dim()
        self.density_mlp = FiLMMLP(x_dim, shape_dim, c.num_layers, c.hidden_dim, out_dim=1 + c.geo_feat_dim)
        c_in = c.geo_feat_dim + 3 * c.channels + self.direction_encoding.get_out_dim()
        self.color_mlp = FiLMMLP(c_in, texture_dim, c.color_layers, c.color_hidden_dim, out_dim=3)
        self._unit: Tensor | None = None

    def get_density(self, ray_samples: RaySamples) -> tuple[Tensor, Tensor]:
        positions = ray_samples.frustums.get_positions() / self.half_size  # (..., 3) in [-1, 1]
        self._unit = positions
        code = ray_samples.metadata["shape_code"]
        unique, group = _groups(code, positions)
        planes = self.shape_planes(positions.reshape(-1, 3), unique, group).view(*positions.shape[:-1], -1)
        x = torch.cat([planes.to(positions.dtype), self.position_encoding(positions * 0.5)], -1)
        out = self.density_mlp(x, code)
        # Softplus shifted down so an untrained field starts nearly empty.
        density = nn.functional.softplus(out[..., :1] - 1.0)
        return density, out[..., 1:]

    def get_outputs(self, ray_samples: RaySamples, density_embedding: Tensor | None = None) -> dict[FieldHeadNames, Tensor]:
        assert density_embedding is not None and self._unit is not None
        positions, self._unit = self._unit, None
        code = ray_samples.metadata["texture_code"]
        unique, group = _groups(code, positions)
        planes = self.texture_planes(positions.reshape(-1, 3), unique, group).view(*positions.shape[:-1], -1)
        d = self.direction_encoding(get_normalized_directions(ray_samples.frustums.directions))
        c_in = torch.cat([density_embedding, planes.to(density_embedding.dtype), d.to(density_embedding.dtype)], -1)
        return {FieldHeadNames.RGB: torch.sigmoid(self.color_mlp(c_in, code))}
