"""The colour pipeline: sRGB transfer functions, linear shading with an sRGB image, old datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from render_core.artifacts import ArtifactError
from render_core.assets.library import open_library
from render_core.assets.loaders import load_mesh
from render_core.assets.mesh import normalize
from render_core.colour import linear_to_srgb, srgb_to_linear
from render_core.dataset import RenderedDataset
from render_core.lighting import Lighting
from render_core.multiview import MultiviewRenderer, RenderConfig, render_library
from render_core.rig import RigConfig

FLAT = Lighting(ambient=1.0, diffuse=0.0, specular=0.0)  # every surface shows its albedo exactly
RIG = RigConfig(n_views=1, elevations=(0.0,), floor_views=0)


def test_transfer_functions_round_trip_and_match_the_standard():
    x = np.linspace(0, 1, 257, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    np.testing.assert_allclose(srgb_to_linear(np.float32([0.5, 0.04045, 1.0])), [0.21404, 0.0031308, 1.0], atol=1e-5)
    t = torch.linspace(0, 1, 257)
    np.testing.assert_allclose(srgb_to_linear(t).numpy(), srgb_to_linear(x), atol=1e-6)
    np.testing.assert_allclose(linear_to_srgb(t).numpy(), linear_to_srgb(x), atol=1e-6)


def _slab(folder, mtl: str, texture: tuple[int, int, int] | None = None):
    """A thin slab facing +Z (the rig's azimuth 0) with its material."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.mtl").write_text(mtl)
    if texture is not None:
        Image.fromarray(np.full((4, 4, 3), texture, np.uint8)).save(folder / "tex.png")
    uv = "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
    (folder / "m.obj").write_text("mtllib m.mtl\nusemtl mat\nv -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\n" + uv +
                                  "f 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    return folder / "m.obj"


def _centre(path, colour: str) -> np.ndarray:
    mesh, _ = normalize(load_mesh(path))
    out = MultiviewRenderer(RenderConfig(image_size=32, rig=RIG, colour=colour)).render(mesh, FLAT)
    return out["rgb"][0, 16, 16].astype(float)


def test_material_factor_is_linear_and_the_image_is_srgb(tmp_path):
    """An MTL Kd is linear albedo: a camera (or Blender) shows Kd 0.38 0.01 0.07 pink, not maroon."""
    path = _slab(tmp_path / "kd", "newmtl mat\nKd 0.38 0.01 0.07\n")
    kd = np.round(np.array([0.38, 0.01, 0.07]) * 255) / 255  # the loader keeps 8 bits of a factor
    np.testing.assert_allclose(_centre(path, "linear"), linear_to_srgb(kd) * 255, atol=1.5)
    np.testing.assert_allclose(_centre(path, "display"), kd * 255, atol=1.5)


def test_texture_colours_come_back_as_stored(tmp_path):
    """A texture is sRGB: decoded for shading, encoded again in the image, so a flat-lit texel keeps its value."""
    path = _slab(tmp_path / "tex", "newmtl mat\nKd 1 1 1\nmap_Kd tex.png\n", texture=(10, 200, 30))
    np.testing.assert_allclose(_centre(path, "linear"), [10, 200, 30], atol=1.5)


def test_file_vertex_colours_are_display_values(tmp_path):
    m = trimesh.creation.box(extents=(1.0, 1.0, 0.2))
    m.visual.vertex_colors = np.tile(np.array([[200, 30, 40, 255]], np.uint8), (len(m.vertices), 1))
    m.export(tmp_path / "box.ply")
    np.testing.assert_allclose(_centre(tmp_path / "box.ply", "linear"), [200, 30, 40], atol=1.5)


def test_header_records_the_pipeline_and_old_datasets_read_as_rendered(small_library, tmp_path):
    out = tmp_path / "ds"
    cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0))
    render_library(open_library(small_library), out, cfg, progress=False)
    header = json.loads((out / "artifact.json").read_text())
    assert header["render"]["colour"] == "linear" and RenderedDataset(out).config.colour == "linear"
    # A dataset rendered before the pipeline existed has no key: it was shaded on display values.
    del header["render"]["colour"]
    (out / "artifact.json").write_text(json.dumps(header))
    assert RenderedDataset(out).config.colour == "display"
    with pytest.raises(ArtifactError, match="different settings"):
        render_library(open_library(small_library), out, cfg, progress=False)
    report = render_library(open_library(small_library), out, RenderConfig(image_size=16, rig=cfg.rig, colour="display"),
                            progress=False)
    assert report["rendered"] == 0 and report["skipped"] == len(open_library(small_library).records)


def test_unknown_pipeline_is_refused():
    with pytest.raises(ValueError, match="colour must be one of"):
        RenderConfig(colour="aces")
