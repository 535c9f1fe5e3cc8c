"""Auto-decoder code tables: one learned shape code and one texture code per asset."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


class LatentCodes(nn.Module):
    """Two `nn.Embedding` tables, rows in the order of the run's asset ids.

    Codes start small (DeepSDF) so every asset begins at the shared mean shape and
    the norm penalty keeps the space compact enough to interpolate in.
    """

    def __init__(self, num_assets: int, shape_dim: int, texture_dim: int, init_std: float) -> None:
        super().__init__()
        if num_assets < 1:
            raise ValueError(f"need at least one asset, got {num_assets}")
        if shape_dim < 1 or texture_dim < 1:
            raise ValueError(f"code sizes must be positive, got shape {shape_dim}, texture {texture_dim}")
        self.shape = nn.Embedding(num_assets, shape_dim)
        self.texture = nn.Embedding(num_assets, texture_dim)
        nn.init.normal_(self.shape.weight, std=init_std)
        nn.init.normal_(self.texture.weight, std=init_std)
        self.trained = num_assets
        """Rows learned by training; rows after them were added by inversion (`grow`, or a run
        reopened with embedded assets) and do not move the mean, so an embedding does not
        depend on which assets were embedded before it, or in which batches."""

    @property
    def num_assets(self) -> int:
        return self.shape.num_embeddings

    def forward(self, index: Int[Tensor, "*bs"]) -> tuple[Float[Tensor, "*bs ds"], Float[Tensor, "*bs dt"]]:
        return self.shape(index), self.texture(index)

    def mean(self) -> tuple[Float[Tensor, "ds"], Float[Tensor, "dt"]]:
        """The mean training code, where inversion starts."""
        n = self.trained
        return self.shape.weight.detach()[:n].mean(0), self.texture.weight.detach()[:n].mean(0)

    def grow(self, shape: Float[Tensor, "n ds"], texture: Float[Tensor, "n dt"]) -> None:
        """Append rows for new assets (embedding by inversion); existing rows are untouched."""
        with torch.no_grad():
            self.shape = nn.Embedding.from_pretrained(torch.cat([self.shape.weight, shape]), freeze=False)
            self.texture = nn.Embedding.from_pretrained(torch.cat([self.texture.weight, texture]), freeze=False)


def cross_correlation(a: Float[Tensor, "n da"], b: Float[Tensor, "n db"]) -> Float[Tensor, "da db"]:
    """Pearson correlation between every column of `a` and every column of `b` over the n rows.

    Zero everywhere means no linear read-out of one half predicts the other, so an attribute
    carried by the shape half cannot also be read linearly from the texture half.
    """
    a, b = standardise(a), standardise(b)
    return a.T @ b / a.shape[0]


def standardise(x: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
    """Each column to mean 0 and unit spread over the n rows (differentiable)."""
    x = x - x.mean(0)
    return x / x.square().mean(0).add(1e-8).sqrt()
