"""Mesh loading: every supported format, and every kind of bad input named in the report."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from render_core.assets.library import open_library, stable_id
from render_core.assets.loaders import AssetLoadError, LoadLimits, load_mesh
from render_core.assets.mesh import normalize


def cube(colours: bool = False) -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    if colours:
        m.visual.vertex_colors = np.tile(np.array([[200, 30, 40, 255]], dtype=np.uint8), (len(m.vertices), 1))
    return m


def write_textured_obj(folder, texture_ref="tex.png", write_texture=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.mtl").write_text(f"newmtl mat\nKd 1 1 1\nmap_Kd {texture_ref}\n")
    if write_texture:
        Image.fromarray(np.full((8, 8, 3), (10, 200, 30), np.uint8)).save(folder / "tex.png")
    (folder / "m.obj").write_text(
        "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl mat\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n"
    )
    return folder / "m.obj"


def test_obj_with_uv_texture(tmp_path):
    mesh = load_mesh(write_textured_obj(tmp_path / "a"))
    assert mesh.n_faces == 2 and mesh.texture is not None
    assert mesh.texture.image.shape == (8, 8, 3)
    np.testing.assert_allclose(mesh.texture.image[0, 0], [10 / 255, 200 / 255, 30 / 255], atol=1e-6)


def test_obj_with_kd_colour_only(tmp_path):
    (tmp_path / "m.mtl").write_text("newmtl red\nKd 0.8 0.1 0.1\n")
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nusemtl red\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    mesh = load_mesh(tmp_path / "m.obj")
    assert mesh.texture is None and mesh.vertex_colors is not None
    assert mesh.vertex_colors[0, 0] > 0.7 and mesh.vertex_colors[0, 1] < 0.2


@pytest.mark.parametrize("ext", ["ply", "glb", "stl"])
def test_other_formats(tmp_path, ext):
    m = cube(colours=ext != "stl")
    path = tmp_path / f"cube.{ext}"
    m.export(path)
    mesh = load_mesh(path)
    assert mesh.n_faces == 12
    np.testing.assert_allclose(mesh.verts.max(0) - mesh.verts.min(0), [2.0, 1.0, 0.5], atol=1e-5)
    if ext == "ply":
        assert mesh.vertex_colors is not None and mesh.vertex_colors[0, 0] == pytest.approx(200 / 255)


def test_gltf_with_external_buffer(tmp_path):
    scene = trimesh.Scene(cube())
    files = scene.export(file_type="gltf")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert load_mesh(tmp_path / "model.gltf").n_faces == 12


def test_normalize_unit_box_and_up_axis():
    m = load_mesh_from(cube())
    out, info = normalize(m, "y")
    ext = out.verts.max(0) - out.verts.min(0)
    assert ext.max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose((out.verts.max(0) + out.verts.min(0)) / 2, 0, atol=1e-6)
    assert info["scale"] == pytest.approx(0.5)
    # A Z-up source: its Z extent becomes the Y extent.
    z_up, _ = normalize(m, "z")
    ext_z = z_up.verts.max(0) - z_up.verts.min(0)
    assert ext_z[1] == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(ValueError, match="up_axis"):
        normalize(m, "w")


def load_mesh_from(tm):
    from render_core.assets.mesh import MeshData

    return MeshData(verts=np.asarray(tm.vertices, np.float32), faces=np.asarray(tm.faces, np.int64))


# ---- bad input: each is a clear error naming the file and the reason ----


def test_empty_file(tmp_path):
    (tmp_path / "e.obj").write_bytes(b"")
    with pytest.raises(AssetLoadError, match="empty file"):
        load_mesh(tmp_path / "e.obj")


def test_unreadable_file(tmp_path):
    (tmp_path / "junk.glb").write_bytes(b"\x00\x01 this is not a glb" * 10)
    with pytest.raises(AssetLoadError, match="unreadable GLB") as info:
        load_mesh(tmp_path / "junk.glb")
    assert "junk.glb" in str(info.value)


def test_obj_without_faces(tmp_path):
    (tmp_path / "pts.obj").write_text("v 0 0 0\nv 1 0 0\n")
    with pytest.raises(AssetLoadError, match="no triangles"):
        load_mesh(tmp_path / "pts.obj")


def test_nan_vertices(tmp_path):
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 1 1 inf\nf 1 2 3\nf 1 3 4\n")
    with pytest.raises(AssetLoadError, match="NaN/inf"):
        load_mesh(tmp_path / "nan.obj")


def test_missing_texture(tmp_path):
    path = write_textured_obj(tmp_path / "a", write_texture=False)
    with pytest.raises(AssetLoadError, match="missing texture.*tex.png"):
        load_mesh(path)


def test_texture_outside_asset_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(secret)
    path = write_textured_obj(tmp_path / "asset", texture_ref="../secret.png", write_texture=False)
    with pytest.raises(AssetLoadError, match="outside its folder"):
        load_mesh(path)


def test_oversized_texture_is_refused_from_header(tmp_path):
    path = write_textured_obj(tmp_path / "a")
    Image.new("RGB", (300, 300)).save(tmp_path / "a" / "tex.png")
    with pytest.raises(AssetLoadError, match="above 10000 pixels"):
        load_mesh(path, LoadLimits(max_texture_pixels=10_000))


def test_degenerate_faces_dropped_with_warning(tmp_path):
    (tmp_path / "d.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 2 0 0\nf 1 2 3\nf 1 2 4\nf 1 1 3\n")
    mesh = load_mesh(tmp_path / "d.obj")
    assert mesh.n_faces == 1
    assert "dropped 2 degenerate" in mesh.warnings[0]


def test_all_faces_degenerate(tmp_path):
    (tmp_path / "d.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    with pytest.raises(AssetLoadError, match="all 1 faces are degenerate"):
        load_mesh(tmp_path / "d.obj")


def test_too_many_faces(tmp_path):
    trimesh.creation.icosphere(subdivisions=3).export(tmp_path / "big.ply")  # 1280 faces
    with pytest.raises(AssetLoadError, match="1,280 faces, above the limit of 1,000"):
        load_mesh(tmp_path / "big.ply", LoadLimits(max_faces=1000))


def test_file_size_limit(tmp_path):
    cube().export(tmp_path / "c.stl")
    with pytest.raises(AssetLoadError, match="MiB limit"):
        load_mesh(tmp_path / "c.stl", LoadLimits(max_file_bytes=10))


def test_unsupported_extension(tmp_path):
    (tmp_path / "a.fbx").write_bytes(b"x")
    with pytest.raises(AssetLoadError, match="unsupported file type"):
        load_mesh(tmp_path / "a.fbx")


def test_folder_scan_categories_and_stable_ids(tmp_path):
    (tmp_path / "chairs").mkdir()
    cube().export(tmp_path / "chairs" / "c1.stl")
    cube().export(tmp_path / "loose.ply")
    lib = open_library(tmp_path)
    by_path = {r.path: r for r in lib.records}
    assert by_path["chairs/c1.stl"].category == "chairs"
    assert by_path["loose.ply"].category == "uncategorized"
    assert by_path["chairs/c1.stl"].id == stable_id("chairs/c1.stl") == open_library(tmp_path).records[0].id


def test_folder_scan_with_manifest_csv(tmp_path):
    cube().export(tmp_path / "a.stl")
    (tmp_path / "labels.csv").write_text("path,category,legs\na.stl,stool,3\n")
    rec = open_library(tmp_path, tmp_path / "labels.csv").records[0]
    assert rec.category == "stool" and rec.attributes == {"legs": "3"}


def test_open_library_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_library(tmp_path / "nope")
    with pytest.raises(ValueError, match="no mesh files"):
        open_library(tmp_path)


def test_truncated_texture_is_a_clear_error(tmp_path):
    path = write_textured_obj(tmp_path / "a")
    tex = tmp_path / "a" / "tex.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tex)
    tex.write_bytes(tex.read_bytes()[: tex.stat().st_size // 2])  # a download cut short
    with pytest.raises(AssetLoadError):
        load_mesh(path)


def test_embedded_glb_texture_size_is_checked(tmp_path):
    m = trimesh.creation.box()
    img = Image.new("RGB", (200, 200), (10, 20, 30))
    m.visual = trimesh.visual.TextureVisuals(uv=np.random.default_rng(0).random((len(m.vertices), 2)), image=img)
    m.export(tmp_path / "t.glb")
    assert load_mesh(tmp_path / "t.glb").texture is not None
    with pytest.raises(AssetLoadError, match="above 1000 pixels"):
        load_mesh(tmp_path / "t.glb", LoadLimits(max_texture_pixels=1000))


def test_embedded_textures_of_every_part_are_checked_before_merging(tmp_path, monkeypatch):
    """Merging a GLB's parts decodes every part's image; each header is checked first."""
    rng = np.random.default_rng(0)
    parts = []
    for offset, colour in ((0.0, (10, 20, 30)), (3.0, (200, 20, 30))):
        m = trimesh.creation.box()
        m.apply_translation((offset, 0, 0))
        m.visual = trimesh.visual.TextureVisuals(uv=rng.random((len(m.vertices), 2)), image=Image.new("RGB", (200, 200), colour))
        parts.append(m)
    trimesh.Scene(parts).export(tmp_path / "two.glb")
    assert load_mesh(tmp_path / "two.glb").texture is not None
    decoded = []
    original = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or original(self))
    with pytest.raises(AssetLoadError, match="of part .* above 1000 pixels"):
        load_mesh(tmp_path / "two.glb", LoadLimits(max_texture_pixels=1000))
    assert decoded == []  # refused from the headers alone


def test_library_manifest_cannot_point_outside(tmp_path):
    from render_core.assets.procedural.generate import generate_library

    lib = tmp_path / "lib"
    generate_library(lib, 1, 0, progress=False)
    manifest = (lib / "manifest.jsonl").read_text()
    (lib / "manifest.jsonl").write_text(manifest.replace('"path": "meshes/', '"path": "../../meshes/'))
    with pytest.raises(ValueError, match="points outside the library"):
        open_library(lib)
    (lib / "manifest.jsonl").write_text(manifest.replace('"id": "chair-s0-00000"', '"id": "../../evil"'))
    with pytest.raises(ValueError, match="not a safe file name"):
        open_library(lib)
