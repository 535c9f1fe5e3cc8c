"""Load OBJ/MTL, PLY, GLB/GLTF and STL files into validated `MeshData`.

Every file is untrusted: sizes are capped before and after parsing, texture and
material references resolve only inside the asset's own folder, images are
size-checked from their header before decoding, and NaN/inf vertices, bad face
indices, missing textures and empty meshes are errors naming the file.
Degenerate faces are dropped with a warning (artist meshes often carry a few).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from render_core.assets.mesh import MeshData, UVTexture

SUPPORTED_EXTENSIONS = (".obj", ".ply", ".glb", ".gltf", ".stl")
_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".webp", ".gif"}


class AssetLoadError(ValueError):
    """An asset file cannot become a usable mesh; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class LoadLimits:
    max_file_bytes: int = 512 * 1024 * 1024  # refuse before parsing: parsers hold it all in memory
    max_faces: int = 1_000_000  # ~16 s per 18 views at 128^2 on 2 cores; above, decimate first
    max_texture_pixels: int = 64 * 1024 * 1024  # decompression-bomb guard, checked from the header
    texture_side: int = 2048  # larger textures are downsampled: renders are at most 256^2


def _contained_resolver(folder: Path, limits: LoadLimits):
    from trimesh.resolvers import FilePathResolver

    class _ContainedResolver(FilePathResolver):
        """Serves files only from the asset's own folder and records what it refused."""

        def __init__(self):
            super().__init__(str(folder))
            self.parent = folder.resolve()
            self.limits = limits
            self.missing: list[str] = []
            self.escaped: list[str] = []
            self.too_large: list[str] = []

        def get(self, name: str) -> bytes:
            name = name.strip().replace("\\", "/")
            path = (self.parent / name).resolve()
            if not path.is_relative_to(self.parent):
                self.escaped.append(name)
                raise FileNotFoundError(name)
            if not path.is_file():
                self.missing.append(name)
                raise FileNotFoundError(name)
            if path.suffix.lower() in _IMAGE_EXTENSIONS:
                try:
                    with Image.open(path) as im:  # reads the header only
                        w, h = im.size
                except Exception:
                    w = h = 0
                if w * h > self.limits.max_texture_pixels:
                    self.too_large.append(f"{name} ({w}x{h})")
                    raise FileNotFoundError(name)
            return path.read_bytes()

        def namespaced(self, namespace):
            return self

        def keys(self):
            return []

    return _ContainedResolver()


def _load_trimesh(path: Path, resolver):
    import trimesh

    # trimesh logs and carries on where a texture cannot be read; we turn that into an error below.
    logging.getLogger("trimesh").setLevel(logging.ERROR)
    ext = path.suffix.lower().lstrip(".")
    with open(path, "rb") as f:
        scene = trimesh.load_scene(f, file_type=ext, resolver=resolver, process=False)
    # Merging the parts packs their materials, which decodes every image (as float64 where a colour
    # factor applies): images embedded in the file never meet the resolver, so their headers are
    # checked here, before anything is decoded.
    for name, geometry in scene.geometry.items():
        material = getattr(getattr(geometry, "visual", None), "material", None)
        for image in _material_images(material):
            w, h = image.size
            if w * h > resolver.limits.max_texture_pixels:
                raise AssetLoadError(path, f"texture image {w}x{h} of part {name!r} is above "
                                           f"{resolver.limits.max_texture_pixels} pixels")
    return scene.to_mesh()


def _material_images(material) -> list:
    """The PIL images a trimesh material holds (a simple material's image, a PBR material's textures)."""
    from PIL import Image

    names = ("image", "baseColorTexture", "metallicRoughnessTexture", "normalTexture", "occlusionTexture", "emissiveTexture")
    found = (getattr(material, n, None) for n in names) if material is not None else ()
    return [v for v in found if isinstance(v, Image.Image)]


def _appearance(tm, path: Path, limits: LoadLimits) -> tuple[np.ndarray | None, UVTexture | None, bool]:
    """(vertex colours, texture, whether the vertex colours are linear: a material factor)."""
    visual = getattr(tm, "visual", None)
    if visual is None:
        return None, None, False
    kind = getattr(visual, "kind", None)
    n_verts = len(tm.vertices)
    if kind == "texture":
        material = visual.material
        if hasattr(material, "to_simple"):
            material = material.to_simple()
        image = getattr(material, "image", None)
        uv = getattr(visual, "uv", None)
        if image is not None and uv is not None and len(uv) == n_verts:
            w, h = image.size  # header only: embedded (GLB, data: URI) images never meet the resolver
            if w * h > limits.max_texture_pixels:
                raise AssetLoadError(path, f"texture image {w}x{h} is above {limits.max_texture_pixels} pixels")
            image = image.convert("RGB")
            if max(image.size) > limits.texture_side:
                image.thumbnail((limits.texture_side, limits.texture_side), Image.Resampling.LANCZOS)
            img = np.asarray(image, dtype=np.float32) / 255.0
            uv = np.asarray(uv, dtype=np.float64)
            if not np.isfinite(uv).all():
                raise AssetLoadError(path, "texture coordinates contain NaN/inf")
            texture = UVTexture(
                verts_uvs=uv.astype(np.float32),
                faces_uvs=np.asarray(tm.faces, dtype=np.int64),
                image=img,
            )
            return None, texture, False
        diffuse = getattr(material, "diffuse", None)
        if diffuse is not None:
            rgb = np.asarray(diffuse, dtype=np.float32).reshape(-1)[:3] / 255.0
            return np.broadcast_to(rgb, (n_verts, 3)).copy(), None, True
        return None, None, False
    if kind in ("vertex", "face"):
        colors = np.asarray(visual.vertex_colors, dtype=np.float32)[:, :3] / 255.0
        return colors, None, False
    return None, None, False


def drop_degenerate_faces(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, int]:
    """Faces with a repeated vertex or (relative to the mesh size) zero area; returns (keep mask, n dropped)."""
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    tri = verts[faces].astype(np.float64)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area2 = np.einsum("ij,ij->i", cross, cross)
    diag2 = float(np.sum((verts.max(0) - verts.min(0)) ** 2)) if len(verts) else 0.0
    tiny = area2 <= (1e-12 * diag2) ** 2 + 1e-30
    keep = ~(repeated | tiny)
    return keep, int((~keep).sum())


def load_mesh(path: str | Path, limits: LoadLimits = LoadLimits()) -> MeshData:
    """Load and validate one mesh file. Raises `AssetLoadError` naming the file and the problem."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise AssetLoadError(path, f"unsupported file type {ext!r} (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    if not path.is_file():
        raise AssetLoadError(path, "file not found")
    size = path.stat().st_size
    if size == 0:
        raise AssetLoadError(path, "empty file (0 bytes)")
    if size > limits.max_file_bytes:
        raise AssetLoadError(path, f"file is {size / 2**20:.0f} MiB, above the {limits.max_file_bytes / 2**20:.0f} MiB limit")

    resolver = _contained_resolver(path.parent, limits)
    try:
        tm = _load_trimesh(path, resolver)
    except AssetLoadError:
        raise
    except Exception as exc:  # parsers raise anything on malformed input
        raise AssetLoadError(path, f"unreadable {ext[1:].upper()} file ({type(exc).__name__}: {exc})") from exc

    if resolver.escaped:
        raise AssetLoadError(path, f"refers to files outside its folder: {', '.join(sorted(set(resolver.escaped)))}")
    if resolver.missing:
        raise AssetLoadError(path, f"missing texture/material file(s): {', '.join(sorted(set(resolver.missing)))}")
    if resolver.too_large:
        raise AssetLoadError(
            path, f"texture image(s) above {limits.max_texture_pixels} pixels: {', '.join(resolver.too_large)}"
        )

    try:
        faces = np.asarray(getattr(tm, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
        verts = np.asarray(getattr(tm, "vertices", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    except (ValueError, TypeError, OverflowError) as exc:  # ragged faces, lists that are not x y z
        raise AssetLoadError(path, f"malformed vertex or face arrays ({exc})") from exc
    if len(faces) == 0 or len(verts) == 0:
        raise AssetLoadError(path, "contains no triangles (empty mesh or point cloud)")
    if len(faces) > limits.max_faces:
        raise AssetLoadError(
            path, f"has {len(faces):,} faces, above the limit of {limits.max_faces:,} (raise --max-faces or decimate)"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(verts.astype(np.float32)).all(axis=1)  # rendered in float32: 1e300 is inf there
    if bad.any():
        raise AssetLoadError(path, f"{int(bad.sum())} of {len(verts)} vertices have NaN/inf coordinates (or beyond float32's range)")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise AssetLoadError(path, f"face indices out of range [0, {len(verts)})")

    try:
        vertex_colors, texture, colors_linear = _appearance(tm, path, limits)
    except AssetLoadError:
        raise
    except Exception as exc:  # PIL decodes lazily: a truncated texture fails here, not in the parser
        raise AssetLoadError(path, f"unreadable texture ({type(exc).__name__}: {exc})") from exc
    keep, n_bad = drop_degenerate_faces(verts, faces)
    warnings = []
    if n_bad:
        if n_bad == len(faces):
            raise AssetLoadError(path, f"all {len(faces)} faces are degenerate (zero area)")
        warnings.append(f"dropped {n_bad} degenerate face(s) of {len(faces)}")
        faces = faces[keep]
        if texture is not None:
            texture.faces_uvs = texture.faces_uvs[keep]
    return MeshData(
        verts=verts.astype(np.float32),
        faces=faces,
        vertex_colors=vertex_colors,
        texture=texture,
        vertex_colors_linear=colors_linear,
        warnings=warnings,
    )
