"""Near misses for the photo encoder: catalog meshes with other proportions or other colours."""

from __future__ import annotations

import numpy as np

from assets2vec.photo_negatives import MIN_SATURATION, near_miss, near_misses, parts, recoloured, saturation, stretched, without_part
from render_core.assets.mesh import MeshData, UVTexture, normalize


def _box(colours=True) -> MeshData:
    verts = np.array([[x, y, z] for x in (0, 1) for y in (0, 2) for z in (0, 0.5)], np.float32)
    faces = np.array([[0, 1, 2], [1, 3, 2], [4, 6, 5], [5, 6, 7], [0, 4, 1], [1, 4, 5]], np.int64)
    vc = np.tile(np.array([[0.8, 0.1, 0.1]], np.float32), (8, 1)) if colours else None
    return normalize(MeshData(verts, faces, vertex_colors=vc))[0]


def test_stretched_changes_the_proportions_and_stays_normalised():
    mesh = _box()
    lo, hi = mesh.bounds()
    out = stretched(mesh, 0, 1.5)
    olo, ohi = out.bounds()
    assert np.isclose((ohi - olo).max(), 1.0) and np.allclose((olo + ohi) / 2, 0, atol=1e-6)
    ratio, oratio = (hi - lo)[0] / (hi - lo)[1], (ohi - olo)[0] / (ohi - olo)[1]
    assert np.isclose(oratio / ratio, 1.5, rtol=1e-4)
    assert np.array_equal(out.faces, mesh.faces) and np.array_equal(out.vertex_colors, mesh.vertex_colors)


def _two_boxes() -> MeshData:
    """A large box and a small one beside it, each face with its own three vertices (as flat-shaded files
    store them), the vertices in one array."""
    big, small = _box(), _box()
    small = small.with_verts(small.verts * 0.3 + np.array([0.8, 0, 0], np.float32))
    verts = np.concatenate([big.verts[big.faces].reshape(-1, 3), small.verts[small.faces].reshape(-1, 3)])
    faces = np.arange(len(verts)).reshape(-1, 3)
    colours = np.tile(np.array([[0.1, 0.2, 0.9]], np.float32), (len(verts), 1))
    return MeshData(verts, faces, vertex_colors=colours)


def test_a_part_is_removed_and_a_mesh_in_one_piece_has_none_to_lose():
    two = _two_boxes()
    label = parts(two)
    assert sorted(np.bincount(label).tolist()) == [6, 6] and len(set(label[:6])) == 1  # welded by position
    two.texture = UVTexture(np.random.default_rng(0).random((4, 2), np.float32), np.arange(12 * 3).reshape(12, 3) % 4,
                            np.full((4, 4, 3), 0.5, np.float32))
    out = without_part(two, np.random.default_rng(0))
    assert out is not None and out.n_faces == 6 and len(out.texture.faces_uvs) == 6  # the texture's faces follow
    out.to_meshes()  # and PyTorch3D takes it
    # Only the smaller piece may go: here both are six faces, so the one kept is the first largest (the big box).
    lo, hi = out.bounds()
    assert np.isclose((hi - lo).max(), 1.0)
    assert without_part(_box(), np.random.default_rng(0)) is None


def test_recoloured_turns_the_hue_of_vertex_colours_and_texture():
    mesh = _box()
    tex = UVTexture(np.zeros((3, 2), np.float32), np.zeros((6, 3), np.int64), np.full((4, 4, 3), (0.1, 0.6, 0.1), np.float32))
    mesh.texture = tex
    out = recoloured(mesh, 120.0)  # red -> green, green -> blue
    assert np.allclose(out.vertex_colors[0], [0.1, 0.8, 0.1], atol=1e-5)
    assert np.allclose(out.texture.image[0, 0], [0.1, 0.1, 0.6], atol=1e-5)
    assert np.array_equal(out.verts, mesh.verts) and np.allclose(mesh.vertex_colors[0], [0.8, 0.1, 0.1])  # the original is untouched


def test_near_misses_are_seeded_per_asset_and_grey_meshes_are_only_stretched():
    red, grey = _box(), _box(colours=False)
    assert saturation(red) > MIN_SATURATION and saturation(grey) == 0.0
    kinds = {near_miss(grey, np.random.default_rng(s))[1].split()[0] for s in range(20)}
    assert kinds == {"axis"}
    kinds = {near_miss(red, np.random.default_rng(s))[1].split()[0] for s in range(20)}
    assert kinds == {"axis", "hue"}  # one piece: no part to remove
    kinds = {near_miss(_two_boxes(), np.random.default_rng(s))[1].split()[0] for s in range(30)}
    assert kinds == {"axis", "hue", "part"}
    a = dict(near_misses([("a", red), ("b", red), ("c", None)], seed=0))
    b = dict(near_misses([("b", red)], seed=0))
    assert a["c/near-miss"] is None and list(a) == ["a/near-miss", "b/near-miss", "c/near-miss"]
    same = lambda m, n: np.array_equal(m.verts, n.verts) and np.array_equal(m.vertex_colors, n.vertex_colors)  # noqa: E731
    assert same(a["b/near-miss"], b["b/near-miss"])  # does not depend on the other assets
    ids = [(f"asset-{i}", red) for i in range(6)]
    s0, s0_again, s1 = (list(near_misses(ids, seed=s)) for s in (0, 0, 1))
    assert all(same(m, n) for (_, m), (_, n) in zip(s0, s0_again))  # 0 is a seed like any other
    assert not all(same(m, n) for (_, m), (_, n) in zip(s0, s1))
    assert not all(same(s0[0][1], m) for _, m in s0[1:])  # each asset draws its own
