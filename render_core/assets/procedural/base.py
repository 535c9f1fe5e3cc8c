"""The `Family` contract: sample shape parameters, name their attributes, build the mesh."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from render_core.assets.procedural.geometry import MeshBuilder


@dataclass(frozen=True)
class Family:
    name: str
    # Shape parameters: every value is a number, discrete choices as integer codes.
    sample: Callable[[np.random.Generator], dict[str, float]]
    # Named discrete attributes derived from the parameters, e.g. {"base": "swivel"}.
    attributes: Callable[[dict[str, float]], dict[str, str]]
    build: Callable[[dict[str, float]], MeshBuilder]


def choice(rng: np.random.Generator, options: tuple[str, ...]) -> float:
    """Index of a uniformly drawn option, as a float parameter."""
    return float(rng.integers(0, len(options)))


def u(rng: np.random.Generator, lo: float, hi: float) -> float:
    # Rounded so the written OBJ and the manifest carry exactly the same numbers.
    return float(np.round(rng.uniform(lo, hi), 4))
