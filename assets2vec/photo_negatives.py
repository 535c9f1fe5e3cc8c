"""Near misses: assets the catalog does not hold, made from the ones it does, for the photo encoder to refuse.

An encoder trained only to tell the catalog's assets apart is as sure of itself for a chair it has
never seen as for its own: the softmax spreads all its mass over the catalog whatever the photo shows.
Outlier exposure (Hendrycks, Mazeika and Dietterich, "Deep anomaly detection with outlier exposure",
ICLR 2019) trains it on outliers too, with the uniform distribution as their target, so that a low
top probability comes to mean "none of these". The outliers that teach most are the nearest ones:
a catalog asset with other proportions (one axis stretched or squeezed) or other colours (its hue
turned) or with a part missing (an armrest, a leg, a shelf) is a different asset to a buyer and almost
the same one to a network. They are made from the
catalog's own meshes, so this needs nothing but the catalog, whatever the assets are.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from render_core.assets.mesh import MeshData, normalize

STRETCH = ((0.7, 0.85), (1.18, 1.45))
"""factors one axis is scaled by (before the longest side is scaled back to 1): squeezed or stretched by
more than the proportions of one asset vary between photos of it"""
HUE_TURN = (90.0, 270.0)
"""degrees a recoloured near miss's hue is turned by"""
MIN_SATURATION = 0.2
"""a mesh whose colours are greyer than this (mean HSV saturation) is not recoloured: a grey turned is grey"""
MIN_PART = 0.01
"""a part (connected piece) must hold at least this share of the faces to be removed: a missing bolt is no other asset"""


def parts(mesh: MeshData) -> np.ndarray:
    """(F,) the connected piece each face belongs to, vertices at the same place counted as one (mesh files
    often repeat a vertex per face for flat shading)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, weld = np.unique(np.round(mesh.verts.astype(np.float64) * 1e5).astype(np.int64), axis=0, return_inverse=True)
    faces = weld.reshape(-1)[mesh.faces]
    n = int(faces.max()) + 1 if len(faces) else 0
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    return labels[faces[:, 0]]


def without_part(mesh: MeshData, rng: np.random.Generator) -> MeshData | None:
    """The mesh with one of its pieces other than the largest removed (at least `MIN_PART` of the faces),
    normalised again; None when it is one piece."""
    label = parts(mesh)
    counts = np.bincount(label)
    choices = [p for p in np.flatnonzero(counts >= MIN_PART * len(label)) if p != int(np.argmax(counts))]
    if not choices:
        return None
    keep = label != int(rng.choice(choices))
    texture = mesh.texture if mesh.texture is None else replace(mesh.texture, faces_uvs=np.ascontiguousarray(mesh.texture.faces_uvs[keep]))
    return normalize(replace(mesh, faces=np.ascontiguousarray(mesh.faces[keep]), texture=texture), "y")[0]


def _turn_hue(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """(..., 3) colours in [0, 1] with their hue turned by `degrees`."""
    from skimage.color import hsv2rgb, rgb2hsv

    flat = np.clip(np.asarray(rgb, np.float64).reshape(-1, 1, 3), 0, 1)
    if not len(flat):
        return np.asarray(rgb, np.float32)
    hsv = rgb2hsv(flat)
    hsv[..., 0] = (hsv[..., 0] + degrees / 360.0) % 1.0
    return hsv2rgb(hsv).reshape(np.shape(rgb)).astype(np.float32)


def saturation(mesh: MeshData) -> float:
    """Mean HSV saturation of a mesh's colours (vertex colours, else its texture image; 0 without colour)."""
    rgb = mesh.vertex_colors if mesh.vertex_colors is not None else (mesh.texture.image if mesh.texture is not None else None)
    if rgb is None:
        return 0.0
    rgb = np.asarray(rgb, np.float64).reshape(-1, 3)
    hi, lo = rgb.max(1), rgb.min(1)
    return float(np.mean(np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-9), 0.0)))


def stretched(mesh: MeshData, axis: int, factor: float) -> MeshData:
    """The mesh with one axis scaled by `factor`, normalised again (centred, longest side 1)."""
    scale = np.ones(3, np.float32)
    scale[axis] = factor
    return normalize(mesh.with_verts(mesh.verts * scale), "y")[0]


def recoloured(mesh: MeshData, degrees: float) -> MeshData:
    """The mesh with the hue of its vertex colours and texture turned by `degrees`."""
    out = mesh
    if mesh.vertex_colors is not None:
        out = replace(out, vertex_colors=_turn_hue(mesh.vertex_colors, degrees))
    if mesh.texture is not None:
        out = replace(out, texture=replace(mesh.texture, image=_turn_hue(mesh.texture.image, degrees)))
    return out


def near_miss(mesh: MeshData, rng: np.random.Generator) -> tuple[MeshData, str]:
    """One near miss of a normalised mesh and how it was made: a part removed, recoloured or one axis
    stretched or squeezed, each about a third of the time (stretched when the other two cannot be done:
    a mesh in one piece, colours too grey to turn)."""
    kind = int(rng.integers(3))
    if kind == 0:
        out = without_part(mesh, rng)
        if out is not None:
            return out, "part removed"
    if kind == 1 and saturation(mesh) >= MIN_SATURATION:
        degrees = float(rng.uniform(*HUE_TURN))
        return recoloured(mesh, degrees), f"hue {degrees:+.0f}"
    axis = int(rng.integers(3))
    lo, hi = STRETCH[int(rng.integers(2))]
    factor = float(rng.uniform(lo, hi))
    return stretched(mesh, axis, factor), f"axis {'xyz'[axis]} x{factor:.2f}"


def near_misses(meshes, seed: int = 0):
    """(id, near miss) for each (asset id, normalised mesh or None) of `meshes`: one per asset, drawn from
    `seed` and the asset's id, so a near miss does not depend on the other assets; None stays None."""
    from render_core.multiview import asset_rng

    for asset_id, mesh in meshes:
        if mesh is None:
            yield f"{asset_id}/near-miss", None
            continue
        yield f"{asset_id}/near-miss", near_miss(mesh, asset_rng(seed, f"near-miss/{asset_id}"))[0]
