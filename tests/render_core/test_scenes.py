"""Scene generator: labels agree with geometry, COCO loads, seeds reproduce, bad input fails early."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from render_core.artifacts import load_npz
from render_core.assets.library import open_library
from render_core.scenes import SceneAsset, SceneConfigError, config_from_dict, generate_scenes, load_config
from render_core.scenes.compose import STUFF_CLASSES, compose
from render_core.scenes.generate import MeshCache, semantic_classes
from render_core.scenes.labels import annotate, box_of
from render_core.scenes.placement import rectangles_overlap
from render_core.scenes.render import SceneRenderer

CFG = dict(image_size=96, assets_per_scene=[3, 5], clutter={"count": [1, 2]})


@pytest.fixture(scope="module")
def pool(small_library):
    lib = open_library(small_library)
    return [SceneAsset(r.id, lib.path_of(r), r.category, r.family, r.meta["extent_m"][1], tuple(r.meta["extent_m"]))
            for r in lib.records]


def _scene(pool, seed, cfg=None):
    cfg = cfg or config_from_dict(CFG)
    classes = semantic_classes(pool)
    sem = {c: i for i, c in enumerate(classes)}
    scene = compose(0, seed, pool, np.full(len(pool), 1 / len(pool)), cfg, MeshCache(), sem)
    return scene, classes, cfg


def test_objects_stand_on_the_floor_without_interpenetrating(pool):
    for seed in range(6):
        scene, _, cfg = _scene(pool, seed)
        assert len(scene.objects) >= 3
        for o in scene.objects:
            assert abs(float(o.mesh.verts[:, 1].min())) < 1e-5  # standing on y = 0
        corners = [o.footprint.corners() for o in scene.objects]
        for i in range(len(corners)):
            for j in range(i + 1, len(corners)):
                assert not rectangles_overlap(corners[i], corners[j], cfg.placement.margin * 0.99)
        # Footprints are the meshes' true extents: vertices stay inside their rectangle.
        for o in scene.objects:
            c = o.footprint.corners()
            lo, hi = c.min(0) - 1e-4, c.max(0) + 1e-4
            xz = o.mesh.verts[:, [0, 2]]
            assert (xz >= lo).all() and (xz <= hi).all()


def test_instance_masks_agree_with_depth_ordering(pool):
    scene, classes, cfg = _scene(pool, 3)
    maps = SceneRenderer(cfg.image_size).render(scene, keep_layers=True)
    Z, inst_of = maps["layer_depth"], maps["layer_instance"]
    nearest = Z.min(0)
    inst = maps["instance"]
    assert (inst > 0).sum() > 200
    for k in np.unique(inst[inst > 0]):
        layer = int(np.nonzero(inst_of == k)[0][0])
        m = inst == k
        np.testing.assert_allclose(maps["depth"][m], Z[layer][m], rtol=1e-6)
        np.testing.assert_allclose(Z[layer][m], nearest[m], rtol=1e-6)  # nothing in front of it
    # Where an object's own silhouette is covered by another instance, that one is nearer.
    for li, k in enumerate(inst_of):
        if k == 0:
            continue
        hidden = np.isfinite(Z[li]) & (inst != k) & (inst > 0)
        assert (maps["depth"][hidden] <= Z[li][hidden] + 1e-6).all()
    assert (maps["depth"][np.isfinite(nearest)] > 0).all() and (maps["depth"][~np.isfinite(nearest)] == 0).all()


def test_stored_camera_and_depth_reproduce_the_geometry(pool):
    """Depth, K and c2w as stored (OpenGL c2w, pixel centres at +0.5) put floor pixels on the floor
    and object pixels inside their footprints; projected vertices of a fully visible object land
    in its box."""
    from render_core.rig import project, unproject
    from render_core.scenes.compose import FLOOR

    scene, classes, cfg = _scene(pool, 7)
    maps = SceneRenderer(cfg.image_size).render(scene)
    floor = np.where(maps["semantic"] == FLOOR, maps["depth"], 0)
    pts = unproject(floor, maps["c2w"], maps["K"])
    assert len(pts) > 100 and np.abs(pts[:, 1]).max() < 1e-3
    objects = annotate(scene, maps, classes, 1)
    for o, rec in zip(scene.objects, objects):
        own = np.where(maps["instance"] == o.instance, maps["depth"], 0)
        p = unproject(own, maps["c2w"], maps["K"])
        if len(p):
            c = o.footprint.corners()
            assert (p[:, [0, 2]] >= c.min(0) - 1e-3).all() and (p[:, [0, 2]] <= c.max(0) + 1e-3).all()
            assert p[:, 1].min() > -1e-3 and p[:, 1].max() < rec["height_m"] + 1e-3
        if rec["annotated"] and rec["visible_fraction"] == 1.0:
            uv, z = project(o.mesh.verts.astype(np.float64), maps["c2w"], maps["K"])
            x, y, w, h = rec["bbox"]
            inside = (uv[:, 0] >= 0) & (uv[:, 0] <= cfg.image_size) & (uv[:, 1] >= 0) & (uv[:, 1] <= cfg.image_size)
            if inside.all():
                assert uv[:, 0].min() > x - 1.5 and uv[:, 0].max() < x + w + 1.5
                assert uv[:, 1].min() > y - 1.5 and uv[:, 1].max() < y + h + 1.5


def test_boxes_and_rle_match_masks(pool):
    scene, classes, cfg = _scene(pool, 5)
    maps = SceneRenderer(cfg.image_size).render(scene)
    objects = annotate(scene, maps, classes, 1)
    annotated = [o for o in objects if o["annotated"]]
    assert annotated
    for o in annotated:
        m = maps["instance"] == o["instance"]
        assert o["bbox"] == box_of(m)
        x, y, w, h = o["bbox"]
        assert m[y:y + h, x:x + w].sum() == m.sum()  # tight box holds the whole mask
        assert m[y, x:x + w].any() and m[y + h - 1, x:x + w].any() and m[y:y + h, x].any() and m[y:y + h, x + w - 1].any()
        rle = dict(o["mask_rle"], counts=o["mask_rle"]["counts"].encode())
        assert np.array_equal(mask_utils.decode(rle).astype(bool), m)
        assert 0 < o["visible_fraction"] <= 1 and o["visible_pixels"] <= o["amodal_pixels"]
        assert classes[o["semantic"]] == o["label"]
        assert (maps["semantic"][m] == o["semantic"]).all()


def test_generate_writes_loadable_coco_and_is_reproducible(pool, tmp_path):
    cfg = config_from_dict(CFG)
    rep = generate_scenes(pool, tmp_path / "a", 4, 0, cfg, progress=False)
    assert rep["made"] == 4 and rep["scenes_per_second"] > 0 and not rep["failed_scenes"]
    coco = COCO(str(tmp_path / "a" / "coco.json"))
    assert len(coco.getImgIds()) == 4 and coco.getAnnIds()
    names = {c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert names == {a.label for a in pool}
    ann = coco.loadAnns(coco.getAnnIds())[0]
    img = coco.loadImgs(ann["image_id"])[0]
    labels = load_npz(tmp_path / "a" / "labels" / f"{img['id'] - 1:06d}.npz")
    rec = json.loads((tmp_path / "a" / "labels" / f"{img['id'] - 1:06d}.json").read_text())
    inst = next(o["instance"] for o in rec["objects"] if o.get("annotated") and o["asset_id"] == ann["asset_id"]
                and o["bbox"] == ann["bbox"])
    assert np.array_equal(coco.annToMask(ann).astype(bool), labels["instance"] == inst)
    assert rec["seed"] != 0 and len(rec["camera"]["c2w"]) == 4
    header = json.loads((tmp_path / "a" / "artifact.json").read_text())
    assert header["semantic_classes"][: len(STUFF_CLASSES)] == list(STUFF_CLASSES)

    # Same seed (0 included) -> byte-identical files; resuming remakes only what is missing.
    generate_scenes(pool, tmp_path / "b", 4, 0, cfg, progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file() and p.name != "report.json")
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    (tmp_path / "b" / "labels" / "000002.json").unlink()
    again = generate_scenes(pool, tmp_path / "b", 4, 0, cfg, progress=False)
    assert again["made"] == 1 and again["skipped"] == 3
    assert (tmp_path / "b" / "labels" / "000002.json").read_bytes() == (tmp_path / "a" / "labels" / "000002.json").read_bytes()
    generate_scenes(pool, tmp_path / "c", 2, 1, cfg, progress=False)
    assert (tmp_path / "c" / "images" / "000000.png").read_bytes() != (tmp_path / "a" / "images" / "000000.png").read_bytes()
    with pytest.raises(ValueError, match="different seed"):
        generate_scenes(pool, tmp_path / "a", 4, 1, cfg, progress=False)


CUBE_OBJ = "".join(f"v {x} {y} {z}\n" for x in (0, 1) for y in (0, 1) for z in (0, 1)) + (
    "f 1 2 4 3\nf 5 7 8 6\nf 1 5 6 2\nf 3 4 8 7\nf 1 3 7 5\nf 2 6 8 4\n")


def test_a_scene_whose_asset_does_not_load_is_not_written_and_a_rerun_makes_it(pool, tmp_path):
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 0\nf 1 2 3\n")
    bad = SceneAsset("broken-asset", broken, "chair", "chair", None, None)
    weights = np.array([1.0] * len(pool) + [3.0])
    cfg, out = config_from_dict(CFG), tmp_path / "s"
    rep = generate_scenes(pool + [bad], out, 4, 0, cfg, weights, progress=False)
    failed = [f["index"] for f in rep["failed_scenes"]]
    assert failed and rep["made"] == 4 - len(failed) > 0, rep
    for f in rep["failed_scenes"]:
        assert f["failed_assets"] == ["broken-asset"] and "broken.obj" in f["error"] and "rerun" in f["error"]
    assert [f["asset_id"] for f in rep["failed_assets"]] == ["broken-asset"] and "broken.obj" in rep["failed_assets"][0]["error"]
    assert not any((out / "labels" / f"{i:06d}.json").exists() or (out / "images" / f"{i:06d}.png").exists() for i in failed)
    recs = [json.loads(p.read_text()) for p in sorted((out / "labels").glob("*.json"))]
    assert all(d["asset_id"] != "broken-asset" for r in recs for d in r["dropped"])
    # Once the file loads, a rerun makes exactly the scenes that failed, with the asset in them.
    broken.write_text(CUBE_OBJ)
    again = generate_scenes(pool + [bad], out, 4, 0, cfg, weights, progress=False)
    assert again["made"] == len(failed) and again["skipped"] == 4 - len(failed) and not again["failed_scenes"]
    for i in failed:
        rec = json.loads((out / "labels" / f"{i:06d}.json").read_text())
        assert any(o["asset_id"] == "broken-asset" for o in rec["objects"] + rec["dropped"])


def test_a_pool_where_no_mesh_loads_is_refused_before_anything_is_written(tmp_path):
    lib = tmp_path / "gone_library"
    pool = [SceneAsset(f"a{i}", lib / "meshes" / f"a{i}" / "model.obj", "chair", "chair", None, None) for i in range(3)]
    with pytest.raises(ValueError, match=r"gone_library.*none of the 3 assets' meshes loads \(first, a0: .*model.obj"):
        generate_scenes(pool, tmp_path / "out", 2, 0, config_from_dict(CFG), progress=False)
    assert not (tmp_path / "out").exists()


def test_linear_colour_shades_differently_but_keeps_background_and_labels(pool):
    # No walls and a far camera: the floor ends inside the picture, so the backdrop shows.
    scene, _, cfg = _scene(pool, 3, config_from_dict({**CFG, "floor": {"walls": 0}, "camera": {"distance": [9, 9]}}))
    assert cfg.colour == "linear"  # the default, as datasets and Blender scenes
    linear = SceneRenderer(cfg.image_size).render(scene)
    display = SceneRenderer(cfg.image_size, colour="display").render(scene)
    for key in ("instance", "semantic", "depth"):
        assert np.array_equal(linear[key], display[key]), key
    empty = linear["semantic"] == STUFF_CLASSES.index("background")
    assert empty.sum() > 20
    expected = np.asarray(scene.background) * 255
    for maps in (linear, display):  # the backdrop is drawn as given, whatever the pipeline
        assert np.abs(maps["rgb"][empty] - expected).max() <= 1.0
    lit = ~empty
    assert np.abs(linear["rgb"][lit].astype(int) - display["rgb"][lit]).mean() > 5


def test_folders_made_before_the_colour_setting_resume_only_as_display(pool, tmp_path):
    display = config_from_dict({**CFG, "colour": "display"})
    generate_scenes(pool, tmp_path / "old", 1, 0, display, progress=False)
    assert "colour" not in json.loads((tmp_path / "old" / "artifact.json").read_text())["config"]  # as before the key
    assert generate_scenes(pool, tmp_path / "old", 2, 0, display, progress=False)["made"] == 1
    with pytest.raises(ValueError, match=r"different config \(colour: .*'display'.*'linear'; add `colour: display`"):
        generate_scenes(pool, tmp_path / "old", 3, 0, config_from_dict(CFG), progress=False)
    generate_scenes(pool, tmp_path / "new", 1, 0, config_from_dict(CFG), progress=False)
    assert json.loads((tmp_path / "new" / "artifact.json").read_text())["config"]["colour"] == "linear"
    with pytest.raises(ValueError, match=r"colour: .*'linear'.*'display'"):
        generate_scenes(pool, tmp_path / "new", 1, 0, display, progress=False)


def test_resume_refuses_a_pool_whose_heights_changed_and_accepts_old_digests(pool, tmp_path):
    from dataclasses import replace

    from render_core.artifacts import ArtifactError
    from render_core.scenes.generate import normalise_weights, pool_digest

    cfg, out = config_from_dict(CFG), tmp_path / "s"
    generate_scenes(pool, out, 1, 0, cfg, progress=False)
    for changed in ([replace(a, metric_height=a.metric_height * 1.1) for a in pool], [replace(a, category="sofa") for a in pool]):
        with pytest.raises(ArtifactError, match="different pool_digest"):
            generate_scenes(changed, out, 1, 0, cfg, progress=False)
    w = normalise_weights(pool, None)
    assert pool_digest([replace(a, path=a.path.with_name("other.obj")) for a in pool], w) != pool_digest(pool, w)
    # A folder made before the digest had a version holds the version-1 digest: it still resumes.
    header = json.loads((out / "artifact.json").read_text())
    del header["pool_digest_version"]
    header["pool_digest"] = pool_digest(pool, normalise_weights(pool, None), version=1)
    (out / "artifact.json").write_text(json.dumps(header))
    assert generate_scenes(pool, out, 2, 0, cfg, progress=False)["made"] == 1


@pytest.mark.parametrize("override, match", [
    ({"assets_per_scene": [40, 40], "floor": {"size": [0.2, 0.25]}}, "assets_per_scene: 40 assets need"),
    ({"sizes": {"chair": [-0.5, 1.0]}}, "sizes.chair: must be positive"),
    ({"camera": {"fov_deg": [60, 30]}}, "camera.fov_deg: low 60 is above high 30"),
    ({"camera": {"zoom": 2}}, "camera.zoom: unknown setting"),
    ({"lights": {"types": ["area"]}}, "lights.types"),
    ({"assets_per_scene": [0, 2]}, "assets_per_scene"),
])
def test_impossible_config_fails_before_rendering(pool, tmp_path, override, match):
    with pytest.raises(SceneConfigError, match=match):
        generate_scenes(pool, tmp_path / "out", 2, 0, config_from_dict({**CFG, **override}), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override, match", [
    ({"supersample": True}, "supersample: must be an odd integer"),
    ({"image_size": True}, "image_size: must be an integer"),
    ({"placement": {"attempts": True}}, "placement.attempts: must be a positive integer"),
    ({"min_visible_pixels": True}, "min_visible_pixels: must be a positive integer"),
    ({"floor": {"walls": True}}, "floor.walls: must be 0, 1 or 2"),
    ({"image_size": 2048, "supersample": 5}, r"supersample: 5 x image_size 2048 = 10240 .* 8192"),
    ({"lights": {"types": "point"}}, r"lights.types: expected a list such as \[point, directional\], got 'point'"),
    ({"colour": "srgb"}, "colour: must be 'linear' or 'display'"),
])
def test_settings_of_the_wrong_kind_are_refused(override, match):
    with pytest.raises(SceneConfigError, match=match):
        config_from_dict(override)


@pytest.mark.parametrize("text, kind", [("[]\n", "list"), ("0\n", "int"), ("false\n", "bool"), ("just words\n", "str")])
def test_a_config_file_that_is_not_a_mapping_names_the_file(tmp_path, text, kind):
    p = tmp_path / "scenes.yaml"
    p.write_text(text)
    with pytest.raises(SceneConfigError, match=rf"scenes.yaml: config: expected a mapping .* got {kind}"):
        load_config(p)
    p.write_text("# nothing set\n")  # an empty file is the defaults
    assert load_config(p) == load_config(None)


def test_config_file_errors_name_the_file(tmp_path):
    p = tmp_path / "scenes.yaml"
    p.write_text("camera: {distance: [5, 2]}\n")
    with pytest.raises(SceneConfigError, match=r"scenes.yaml: camera.distance: low 5 is above high 2"):
        load_config(p)
    p.write_text("camera: [unclosed\n")
    with pytest.raises(SceneConfigError, match="not valid YAML"):
        load_config(p)
    assert load_config(None).image_size == 256


def test_mesh_cache_stays_bounded(pool):
    cache = MeshCache(size=3)
    for a in pool:
        cache(a)
    assert len(cache.meshes) == 3
