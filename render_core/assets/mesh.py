"""`MeshData`: one asset's triangles and appearance as plain NumPy arrays.

Kept renderer-independent (Kubric's lesson: assets are data); `to_meshes` turns it
into a PyTorch3D `Meshes` with `TexturesUV` or `TexturesVertex`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

DEFAULT_GREY = (0.7, 0.7, 0.7)


@dataclass
class UVTexture:
    verts_uvs: np.ndarray  # (T, 2) float32, in [0, 1], v up (OBJ convention)
    faces_uvs: np.ndarray  # (F, 3) int64 indices into verts_uvs
    image: np.ndarray  # (H, W, 3) float32 in [0, 1], row 0 = top of the image


@dataclass
class MeshData:
    verts: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) int64
    vertex_colors: np.ndarray | None = None  # (V, 3) float32 in [0, 1]
    texture: UVTexture | None = None  # its image is display-encoded sRGB, as image files are
    # Vertex colours from a material factor (MTL Kd, glTF baseColorFactor) are linear; per-vertex
    # colours of a file (PLY) are display values, as most tools write them.
    vertex_colors_linear: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def n_verts(self) -> int:
        return int(self.verts.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.verts.min(0), self.verts.max(0)

    def with_verts(self, verts: np.ndarray) -> "MeshData":
        return replace(self, verts=np.ascontiguousarray(verts, dtype=np.float32))

    def to_meshes(self, device: torch.device | str = "cpu", colour: str = "display"):
        """A one-mesh PyTorch3D `Meshes`; colourless meshes render in a neutral grey.

        `colour`: "linear" gives the shader linear albedo (sRGB textures and file colours decoded,
        material factors as they are), for a render that encodes its image as sRGB afterwards;
        "display" passes every stored value through unchanged."""
        from pytorch3d.renderer import TexturesUV, TexturesVertex
        from pytorch3d.structures import Meshes

        from render_core.colour import DISPLAY, LINEAR, srgb_to_linear

        if colour not in (LINEAR, DISPLAY):
            raise ValueError(f"colour must be {LINEAR!r} or {DISPLAY!r}, got {colour!r}")
        linear = colour == LINEAR

        verts = torch.as_tensor(self.verts, dtype=torch.float32, device=device)
        faces = torch.as_tensor(self.faces, dtype=torch.int64, device=device)
        if self.texture is not None:
            tex = TexturesUV(
                maps=torch.as_tensor(srgb_to_linear(self.texture.image) if linear else self.texture.image, dtype=torch.float32, device=device)[None],
                faces_uvs=torch.as_tensor(self.texture.faces_uvs, dtype=torch.int64, device=device)[None],
                verts_uvs=torch.as_tensor(self.texture.verts_uvs, dtype=torch.float32, device=device)[None],
                # "border": UVs a hair outside [0, 1] from exporters must not wrap to the far edge.
                padding_mode="border",
            )
        else:
            colors = self.vertex_colors
            if colors is None:
                colors = np.broadcast_to(np.asarray(DEFAULT_GREY, np.float32), self.verts.shape)
            if linear and not (self.vertex_colors_linear and self.vertex_colors is not None):
                colors = srgb_to_linear(np.asarray(colors, np.float32))
            tex = TexturesVertex(torch.as_tensor(np.ascontiguousarray(colors), dtype=torch.float32, device=device)[None])
        return Meshes(verts=[verts], faces=[faces], textures=tex)


UP_AXES = {
    # Rotation taking the named source up axis to +Y (our canonical up, as OBJ/glTF).
    "y": np.eye(3, dtype=np.float32),
    "-y": np.diag([1.0, -1.0, -1.0]).astype(np.float32),
    "z": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float32),
    "-z": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float32),
    "x": np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32),
    "-x": np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=np.float32),
}


def normalize(mesh: MeshData, up_axis: str = "y") -> tuple[MeshData, dict]:
    """Rotate `up_axis` to +Y, centre the bounding box at the origin, scale its longest side to 1.

    Returns the new mesh and a dict with the source extent (in source units), the
    centre and the scale applied, so real-world sizes stay recoverable.
    """
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {sorted(UP_AXES)}, got {up_axis!r}")
    verts = mesh.verts.astype(np.float64) @ UP_AXES[up_axis].T.astype(np.float64)
    lo, hi = verts.min(0), verts.max(0)
    centre = (lo + hi) / 2
    extent = hi - lo
    longest = float(extent.max())
    if not np.isfinite(longest) or longest <= 0:
        raise ValueError("mesh has zero extent (all vertices coincide)")
    scale = 1.0 / longest
    out = (verts - centre) * scale
    info = {"source_extent": [float(x) for x in extent], "source_centre": [float(x) for x in centre], "scale": scale, "up_axis": up_axis}
    return mesh.with_verts(out.astype(np.float32)), info
