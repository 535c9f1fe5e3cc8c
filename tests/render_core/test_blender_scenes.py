"""Scenes through Blender (`--renderer blender`): physics settles objects on the floor, Cycles' own
passes give labels that agree with the rasterizer's on the same settled scene, seeds reproduce
labels and pixels, resumption works, and without Blender the choice is one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from render_core.artifacts import load_npz
from render_core.assets.library import open_library
from render_core.scenes import SceneAsset, config_from_dict, generate_scenes
from render_core.scenes.compose import CLUTTER

# Small and few samples: the test checks labels, physics and determinism, not looks.
CFG = dict(image_size=64, assets_per_scene=[2, 3], clutter={"count": [2, 3]}, blender={"samples": 4, "threads": 2})


@pytest.fixture(scope="module")
def pool(small_library):
    lib = open_library(small_library)
    return [SceneAsset(r.id, lib.path_of(r), r.category, r.family, r.meta["extent_m"][1], tuple(r.meta["extent_m"]))
            for r in lib.records]


def test_blender_scenes_settle_agree_with_the_rasterizer_and_reproduce(pool, tmp_path):
    pytest.importorskip("bpy", reason="Blender is the optional [blender] extra (pip install -e '.[blender]')")
    cfg = config_from_dict(CFG)
    rep = generate_scenes(pool, tmp_path / "a", 2, 0, cfg, progress=False, renderer="blender")
    assert rep["made"] == 2 and not rep["failed_scenes"] and rep["fell_while_settling"] == 0
    header = json.loads((tmp_path / "a" / "artifact.json").read_text())
    assert header["renderer"] == "blender" and header["config"]["blender"]["samples"] == 4
    clutter_moved = 0
    for i in range(2):
        rec = json.loads((tmp_path / "a" / "labels" / f"{i:06d}.json").read_text())
        maps = load_npz(tmp_path / "a" / "labels" / f"{i:06d}.npz")
        check = rec["label_check"]
        # Blender's object-index pass and PyTorch3D, same settled scene and camera: within a pixel at borders.
        assert check["objects"] >= 1 and check["box_max_diff_px"] <= 1 and check["disagree_off_border_px"] == 0, check
        assert check["mask_iou_min"] >= 0.9, check
        for o in rec["objects"]:
            assert o["height_m"] > 0.01 and 0.0 <= o["visible_fraction"] <= 1.0
            if o["annotated"]:
                assert np.array_equal(maps["instance"] == o["instance"], _decode(o["mask_rle"]))
        hit = maps["instance"] > 0
        assert hit.any() and (maps["depth"][hit] > 0).all()
        for o in rec["objects"]:  # each instance carries its object's class; outside them only background, floor, wall
            assert (maps["semantic"][maps["instance"] == o["instance"]] == o["semantic"]).all()
        assert (maps["semantic"][~hit] < CLUTTER).all()
        assert rec["blender"]["samples"] == 4 and rec["blender"]["renderer"].startswith("blender 4.")
        clutter_moved += sum(o["label"] == "clutter" for o in rec["objects"])
    assert clutter_moved >= 1
    # Same seed: identical labels and records; the image to within Cycles' noise (identical in practice).
    generate_scenes(pool, tmp_path / "b", 2, 0, cfg, progress=False, renderer="blender")
    for name in ("labels/000001.json", "labels/000001.npz", "coco.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    a, b = (np.asarray(_png(tmp_path / d / "images" / "000001.png"), np.int16) for d in ("a", "b"))
    assert np.abs(a - b).mean() < 1.0
    # Resumption: only the missing scene is made; a raster run may not write into a Blender folder.
    (tmp_path / "b" / "labels" / "000001.json").unlink()
    again = generate_scenes(pool, tmp_path / "b", 2, 0, cfg, progress=False, renderer="blender")
    assert again["made"] == 1 and again["skipped"] == 1
    with pytest.raises(ValueError, match="different renderer"):
        generate_scenes(pool, tmp_path / "b", 2, 0, cfg, progress=False)


def test_without_blender_the_renderer_is_one_clear_error_and_writes_nothing(pool, tmp_path, monkeypatch):
    import render_core.blender as blender

    def missing():
        raise blender.BlenderMissing(f"the Blender renderer needs Blender's Python module, which is not installed: {blender.INSTALL}")

    monkeypatch.setattr(blender, "require_bpy", missing)
    monkeypatch.setattr("render_core.scenes.blender.require_bpy", missing, raising=False)
    with pytest.raises(ValueError, match=r"not installed: pip install -e '\.\[blender\]'"):
        generate_scenes(pool, tmp_path / "s", 1, 0, config_from_dict(CFG), progress=False, renderer="blender")
    assert not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match="--renderer: must be one of raster, blender"):
        generate_scenes(pool, tmp_path / "s", 1, 0, config_from_dict(CFG), progress=False, renderer="cycles")


def test_blender_settings_are_checked_before_rendering():
    from render_core.scenes import SceneConfigError

    for bad, match in (({"samples": 0}, "blender.samples"), ({"drop_height": [0.2, 0.1]}, "blender.drop_height"),
                       ({"sky": 2}, "blender.sky"), ({"colour": 1}, "blender.colour: unknown setting")):
        with pytest.raises(SceneConfigError, match=match):
            config_from_dict({"blender": bad})
    assert "blender" not in config_from_dict(None).to_json()  # raster folders made before the section still resume


def test_a_blender_scene_record_does_not_claim_the_rasterizers_lights(pool, tmp_path):
    """Blender lights a scene with its own world and lights: the record keeps those (under "blender")
    and not the lights sampled for the rasterizer. Written from a rasterized scene: no Blender needed."""
    from render_core.scenes.compose import compose
    from render_core.scenes.folder import read_record
    from render_core.scenes.generate import MeshCache, _write_scene, semantic_classes
    from render_core.scenes.render import SceneRenderer

    cfg = config_from_dict(CFG)
    sem = {c: i for i, c in enumerate(semantic_classes(pool))}
    scene = compose(0, 1, pool, np.full(len(pool), 1 / len(pool)), cfg, MeshCache(), sem)
    maps = SceneRenderer(cfg.image_size).render(scene)
    blender = {"world": {"kind": "colour", "strength": 0.5}, "lights": [{"type": "sun", "kelvin": 5000}]}
    _write_scene(tmp_path, 0, 1, scene, {**maps, "blender": blender, "label_check": {"objects": 0}}, [], cfg)
    rec = read_record(tmp_path, 0)
    assert "lights" not in rec and "ambient" not in rec and rec["blender"] == blender
    assert rec["background"] == list(scene.background)  # Blender shows it to camera rays leaving the room
    _write_scene(tmp_path, 1, 1, scene, maps, [], cfg)  # the rasterizer's record keeps them
    assert {"lights", "ambient", "background"} <= set(read_record(tmp_path, 1))


def test_blender_threads_do_not_stop_a_resume_and_colour_is_not_recorded(tmp_path):
    """Threads change speed, not scenes; Blender shades in linear light whatever `colour` says."""
    from render_core.artifacts import ArtifactError, make_header
    from render_core.scenes.generate import _check_or_write_header

    def header(**blender):
        cfg = config_from_dict({"colour": "display", "blender": blender})
        return make_header("scenes", producer="test", seed=0, renderer="blender", config=cfg.to_json("blender"),
                           pool_digest="d", pool_digest_version=2, semantic_by="family")

    assert "colour" not in header()["config"]
    _check_or_write_header(tmp_path, header(threads=2), {2: "d"})
    _check_or_write_header(tmp_path, header(threads=8), {2: "d"})
    with pytest.raises(ArtifactError, match=r"different config \(blender.samples: 32 in the folder, 8 now\)"):
        _check_or_write_header(tmp_path, header(threads=2, samples=8), {2: "d"})


def _png(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def _decode(rle):
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)
