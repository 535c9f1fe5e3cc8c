"""Write a textured triangle mesh as OBJ + MTL + PNG with byte-stable output."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from render_core.artifacts import atomic_write_bytes, atomic_write_text


def write_textured_obj(folder: Path, verts: np.ndarray, faces: np.ndarray, verts_uvs: np.ndarray, faces_uvs: np.ndarray, image: np.ndarray, header: str = "") -> Path:
    """Write model.obj / model.mtl / texture.png into `folder`; returns the OBJ path.

    Fixed-precision text and PIL's deterministic PNG encoder make the files
    byte-identical for identical inputs.
    """
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    atomic_write_bytes(folder / "texture.png", buf.getvalue())
    atomic_write_text(
        folder / "model.mtl",
        "newmtl material0\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\nd 1.0\nillum 1\nmap_Kd texture.png\n",
    )
    out = io.StringIO()
    if header:
        out.write("".join(f"# {line}\n" for line in header.splitlines()))
    out.write("mtllib model.mtl\no model\n")
    np.savetxt(out, verts, fmt="v %.5f %.5f %.5f")
    np.savetxt(out, verts_uvs, fmt="vt %.5f %.5f")
    out.write("usemtl material0\n")
    corner = np.stack([faces + 1, faces_uvs + 1], axis=-1).reshape(len(faces), 6)
    np.savetxt(out, corner, fmt="f %d/%d %d/%d %d/%d")
    path = folder / "model.obj"
    atomic_write_text(path, out.getvalue())
    return path
