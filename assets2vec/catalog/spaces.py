"""The three search spaces built from a run's code tables: shape, texture and joint.

Each code dimension is standardised by its mean and spread over the catalog (so the few
dimensions a run barely uses do not dominate distances, as in inversion's nearest-code
search); the joint space concatenates the two standardised halves, each scaled by
1/sqrt(its size) so shape and texture weigh the same. The statistics are frozen at the
first build and stored in the catalog, so adding assets later does not move old vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPACES = ("shape", "texture", "joint")
# Spaces decoded from the codes by the frozen network: the shape code's geometry
# (`catalog.geometry`) and the colours of the asset's surface (`catalog.appearance`). One can
# search, tag and map in them, but they have no inverse to codes, so no sampling or sparse regions.
DECODED_SPACES = ("geometry", "appearance")
# Spaces whose holes `sparse` finds and proposes new assets for: the code spaces, where points inside a
# hole are codes that can be rendered, and the decoded geometry, where they cannot (no inverse) but
# where an asset sits where its decoded shape puts it, not where the slack of its codes left it.
SPARSE_SPACES = SPACES + ("geometry",)
# The texture codes less the texture typical of assets shaped alike (`catalog.texture_only`): for
# search and tagging by texture alone; no inverse either.
TEXTURE_ONLY = "texture_only"
FEATURE_SPACES = SPACES + DECODED_SPACES + (TEXTURE_ONLY,)
# Spaces whose dimensions are code-like (unequal, unbounded spreads): classifiers standardise them first.
STANDARDISED_SPACES = SPACES + (TEXTURE_ONLY,)


def check_space(space: str, allowed: tuple[str, ...] = SPACES) -> str:
    if space not in allowed:
        raise ValueError(f"unknown space {space!r}; choose one of {', '.join(allowed)}")
    return space


@dataclass
class SpaceTransform:
    shape_mean: np.ndarray  # (ds,)
    shape_std: np.ndarray  # (ds,)
    texture_mean: np.ndarray  # (dt,)
    texture_std: np.ndarray  # (dt,)

    @classmethod
    def fit(cls, shape: np.ndarray, texture: np.ndarray) -> "SpaceTransform":
        """Statistics of codes (n, ds) and (n, dt); one asset gives unit spread."""
        def stats(x):
            std = x.std(0) if len(x) > 1 else np.ones(x.shape[1], np.float32)
            return x.mean(0).astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)
        sm, ss = stats(shape)
        tm, ts = stats(texture)
        return cls(sm, ss, tm, ts)

    @property
    def dims(self) -> dict[str, int]:
        ds, dt = len(self.shape_mean), len(self.texture_mean)
        return {"shape": ds, "texture": dt, "joint": ds + dt}

    def vectors(self, space: str, shape: np.ndarray, texture: np.ndarray) -> np.ndarray:
        """(n, d) float32 C-contiguous vectors of `space` for codes (n, ds), (n, dt)."""
        check_space(space)
        shape = np.atleast_2d(np.asarray(shape, np.float32))
        texture = np.atleast_2d(np.asarray(texture, np.float32))
        for name, x, mean in (("shape", shape, self.shape_mean), ("texture", texture, self.texture_mean)):
            if x.shape[1] != len(mean):
                raise ValueError(f"{name} code has {x.shape[1]} dimensions; this catalog's {name} codes have {len(mean)}")
        s = (shape - self.shape_mean) / self.shape_std
        t = (texture - self.texture_mean) / self.texture_std
        if space == "shape":
            out = s
        elif space == "texture":
            out = t
        else:
            out = np.concatenate([s / np.sqrt(s.shape[1]), t / np.sqrt(t.shape[1])], axis=1)
        return np.ascontiguousarray(out, dtype=np.float32)

    def codes(self, space: str, v: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Inverse of `vectors`: (shape codes or None, texture codes or None) for vectors (n, d) of `space`."""
        check_space(space)
        v = np.atleast_2d(np.asarray(v, np.float32))
        ds = len(self.shape_mean)
        if space == "shape":
            return v * self.shape_std + self.shape_mean, None
        if space == "texture":
            return None, v * self.texture_std + self.texture_mean
        dt = v.shape[1] - ds
        s, t = v[:, :ds] * np.sqrt(ds), v[:, ds:] * np.sqrt(dt)
        return s * self.shape_std + self.shape_mean, t * self.texture_std + self.texture_mean

    def to_json(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("shape_mean", "shape_std", "texture_mean", "texture_std")}

    @classmethod
    def from_json(cls, d: dict) -> "SpaceTransform":
        return cls(**{k: np.asarray(d[k], np.float32) for k in ("shape_mean", "shape_std", "texture_mean", "texture_std")})
