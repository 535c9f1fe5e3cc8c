"""Lights as data: the `Lighting` of a render, and a seeded random studio light.

Kept apart from `render_core.shading` so that reading datasets and training (which import
the render configuration, whose default lighting this is) never load PyTorch3D's compiled
extension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WHITE = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Lighting:
    direction: tuple[float, float, float] = (0.35, 1.0, 0.6)  # towards the light: above, front-right
    ambient: float = 0.5
    diffuse: float = 0.5
    specular: float = 0.05
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def lights(self, device):
        """PyTorch3D `DirectionalLights` on `device`."""
        from pytorch3d.renderer import DirectionalLights

        c = np.asarray(self.colour, dtype=np.float32)
        return DirectionalLights(
            direction=[list(self.direction)],
            ambient_color=[list(c * self.ambient)],
            diffuse_color=[list(c * self.diffuse)],
            specular_color=[list(c * self.specular)],
            device=device,
        )


def random_lighting(rng: np.random.Generator) -> Lighting:
    """A plausible studio light: from the upper hemisphere, mild colour temperature shift.

    Drawn once per asset (not per view) so the views of one asset stay consistent.
    """
    az = rng.uniform(0, 2 * np.pi)
    el = rng.uniform(np.deg2rad(20), np.deg2rad(80))
    direction = (float(np.cos(el) * np.sin(az)), float(np.sin(el)), float(np.cos(el) * np.cos(az)))
    w = float(rng.uniform(-1, 1))  # > 0 warm (less blue), < 0 cool (less red)
    colour = (1.0, 1.0 - 0.05 * w, 1.0 - 0.12 * w) if w >= 0 else (1.0 + 0.12 * w, 1.0 + 0.05 * w, 1.0)
    ambient = float(rng.uniform(0.35, 0.6))
    return Lighting(direction=direction, ambient=ambient, diffuse=float(rng.uniform(0.35, 0.6)), specular=0.05, colour=colour)
