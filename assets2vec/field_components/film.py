"""An MLP whose hidden layers are modulated per ray by a latent code (FiLM).

Every sample on a ray belongs to the same asset, so the code's contribution is
computed once per ray and broadcast over the ray's samples: conditioning costs
O(rays x code) instead of O(samples x code), which is most of the saving against
concatenating the code to every sample's input.
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float
from nerfstudio.field_components.base_field_component import FieldComponent
from torch import Tensor, nn


class FiLMMLP(FieldComponent):
    """ReLU MLP, h <- relu((W h + b) * (1 + gamma(z)) + beta(z)) at every hidden layer.

    Args:
        in_dim: per-sample input width (an encoding of position, direction, ...).
        code_dim: width of the per-ray code z.
        num_layers: hidden layers.
        layer_width: hidden width.
        out_dim: width of the linear output layer (no activation); None returns the last hidden state.
        skip_connections: hidden layers that also see the input again (concatenated).
    """

    def __init__(
        self,
        in_dim: int,
        code_dim: int,
        num_layers: int,
        layer_width: int,
        out_dim: int | None = None,
        skip_connections: Sequence[int] = (),
    ) -> None:
        super().__init__(in_dim=in_dim, out_dim=out_dim if out_dim is not None else layer_width)
        self.skips = set(skip_connections)
        if any(not 0 < s < num_layers for s in self.skips):
            raise ValueError(f"skip connections must be hidden layers 1..{num_layers - 1}, got {sorted(self.skips)}")
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            width_in = in_dim if i == 0 else layer_width + (in_dim if i in self.skips else 0)
            self.layers.append(nn.Linear(width_in, layer_width))
        # Random weights, zero bias: the modulation starts near identity (codes start small)
        # but codes get gradients from step one. A zero weight would put code and weight
        # at a saddle that training leaves only slowly.
        self.film = nn.ModuleList(nn.Linear(code_dim, 2 * layer_width) for _ in range(num_layers))
        for f in self.film:
            nn.init.zeros_(f.bias)
        self.out = nn.Linear(layer_width, out_dim) if out_dim is not None else None

    def forward(
        self, in_tensor: Float[Tensor, "*bs S in_dim"], code: Float[Tensor, "*bs 1 code_dim"]
    ) -> Float[Tensor, "*bs S out_dim"]:
        h = in_tensor
        for i, (layer, film) in enumerate(zip(self.layers, self.film)):
            if i in self.skips:
                h = torch.cat([h, in_tensor], -1)
            scale, shift = film(code).chunk(2, -1)  # (*bs, 1, H) each: per ray, broadcast over samples
            h = torch.relu(torch.addcmul(shift, layer(h), 1.0 + scale))
        return self.out(h) if self.out is not None else h
