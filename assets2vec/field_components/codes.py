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

    @property
    def num_assets(self) -> int:
        return self.shape.num_embeddings

    def forward(self, index: Int[Tensor, "*bs"]) -> tuple[Float[Tensor, "*bs ds"], Float[Tensor, "*bs dt"]]:
        return self.shape(index), self.texture(index)

    def mean(self) -> tuple[Float[Tensor, "ds"], Float[Tensor, "dt"]]:
        """The mean training code, where inversion starts."""
        return self.shape.weight.detach().mean(0), self.texture.weight.detach().mean(0)

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
    a = a - a.mean(0)
    b = b - b.mean(0)
    a = a / a.square().mean(0).add(1e-8).sqrt()
    b = b / b.square().mean(0).add(1e-8).sqrt()
    return a.T @ b / a.shape[0]



def kernel_dependence(a: Float[Tensor, "n da"], b: Float[Tensor, "n db"]) -> Float[Tensor, ""]:
    """Debiased centred kernel alignment (CKA, Kornblith et al. 2019) of Gaussian kernels on the
    rows of `a` and `b`: the normalised Hilbert-Schmidt independence criterion (HSIC, Gretton et
    al. 2005), with HSIC's unbiased estimator (Song et al. 2012).

    About 0 when the rows of `a` and `b` are independent; 1 when one determines the other up to
    a rotation and scale. Unlike `cross_correlation` it also sees non-linear links (b = cos a, a
    cluster of `a` that `b` marks), which is how an RBF classifier reads one half from the other.
    The unbiased estimator matters here: the plain one gives 0.19 for independent 32-d codes of
    400 assets, from the kernels' diagonals alone. Columns are standardised first, as the catalog
    does before search and tagging; each kernel's width is its median squared distance (held
    constant, as the median heuristic is).
    """
    n = a.shape[0]
    if n < 4:
        raise ValueError(f"kernel dependence needs at least 4 rows, got {n}")
    off = ~torch.eye(n, dtype=torch.bool, device=a.device)

    def gram(x: Tensor) -> Tensor:
        x = x - x.mean(0)
        x = x / x.square().mean(0).add(1e-8).sqrt()
        d2 = torch.cdist(x, x).square()
        return torch.exp(-d2 / d2.detach()[off].median().clamp(min=1e-8)) * off  # zero diagonal

    def hsic(k: Tensor, l: Tensor) -> Tensor:
        kl1 = k @ l.sum(1)
        return ((k * l).sum() + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2 * kl1.sum() / (n - 2)) / (n * (n - 3))

    ka, kb = gram(a.float()), gram(b.float())
    return hsic(ka, kb) / (hsic(ka, ka) * hsic(kb, kb)).clamp(min=1e-20).sqrt()
