"""Scenes from a catalog (selection, classes, weights) and the weak-spots loop."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from pycocotools.coco import COCO

from assets2vec import Catalog
from assets2vec.catalog.store import CatalogError
from render_core.scenes import SceneConfigError, config_from_dict

CFG = config_from_dict({"image_size": 64, "assets_per_scene": [2, 3], "clutter": {"count": [0, 1]}})


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "assets2vec.cli.main", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_scenes_from_a_filtered_catalog_via_cli(small_catalog, tmp_path):
    out = tmp_path / "scenes"
    r = _cli("scenes", "generate", small_catalog, out, "--n", "3", "--seed", "0", "--where", "family=chair", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["made"] == 3
    recs = [json.loads(p.read_text()) for p in sorted((out / "labels").glob("*.json"))]
    objs = [o for rec in recs for o in rec["objects"] if o["asset_id"]]
    assert objs and {o["label"] for o in objs} == {"chair"}
    with Catalog.open(small_catalog) as cat:
        chairs = set(cat.filter("family=chair"))
    assert {o["asset_id"] for o in objs} <= chairs
    assert COCO(str(out / "coco.json")).getAnnIds()
    assert (out / "preview.png").stat().st_size > 1000


def test_semantic_classes_by_any_tag_and_similarity_selection(small_catalog, tmp_path):
    copy = tmp_path / "cat"
    shutil.copytree(small_catalog, copy)  # tags are written: keep the shared catalog untouched
    with Catalog.open(copy) as cat:
        some = cat.ids[:4]
        cat.set_tags("style", {a: ("modern" if i % 2 else "classic") for i, a in enumerate(some)})
        sel = cat.select(like=cat.ids[0], k=3)
        assert sel[0] == cat.ids[0] and len(sel) == 3
        cfg = config_from_dict({"image_size": 64, "assets_per_scene": [2, 2], "semantic_by": "style"})
        cat.generate_scenes(tmp_path / "s", 2, 0, cfg, ids=some, progress=False)
        header = json.loads((tmp_path / "s" / "artifact.json").read_text())
        assert set(header["semantic_classes"][4:]) == {"classic", "modern"}
        bad = config_from_dict({"image_size": 64, "semantic_by": "no_such_tag"})
        with pytest.raises(CatalogError, match="no attribute or tag named 'no_such_tag'"):
            cat.generate_scenes(tmp_path / "t", 1, 0, bad, progress=False)
        with pytest.raises(CatalogError, match="no attribute or tag named 'colr'"):
            cat.generate_scenes(tmp_path / "t", 1, 0, CFG, where="colr=red", progress=False)
        with pytest.raises(SceneConfigError):
            cat.generate_scenes(tmp_path / "t", 1, 0, config_from_dict({"assets_per_scene": [40, 40], "floor": {"size": [0.2, 0.25]}}),
                                progress=False)
        assert not (tmp_path / "t").exists()


def test_weights_steer_which_assets_are_drawn(small_catalog, tmp_path):
    with Catalog.open(small_catalog) as cat:
        target = cat.ids[2]
        weights = tmp_path / "w.csv"
        weights.write_text("id,weight\n" + "".join(f"{a},{1.0 if a == target else 0.0}\n" for a in cat.ids))
        cat.generate_scenes(tmp_path / "s", 2, 0, CFG, weights=weights, progress=False)
        recs = [json.loads(p.read_text()) for p in sorted((tmp_path / "s" / "labels").glob("*.json"))]
        assert {o["asset_id"] for r in recs for o in r["objects"] if o["asset_id"]} == {target}
        weights.write_text("id,weight\nnot-an-asset,1\n")
        with pytest.raises(CatalogError, match="not in this catalog"):
            cat.generate_scenes(tmp_path / "u", 1, 0, CFG, weights=weights, progress=False)
        weights.write_text(f"id,weight\n{target},-1\n")
        with pytest.raises(CatalogError, match="finite number >= 0"):
            cat.generate_scenes(tmp_path / "u", 1, 0, CFG, weights=weights, progress=False)


def test_weak_spots_finds_the_failing_family_and_reweights_toward_it(small_catalog, tmp_path):
    with Catalog.open(small_catalog) as cat:
        fam = dict(zip(cat.ids, cat.values("family")))
        errors = tmp_path / "errors.csv"
        # Per-crop rows: the model fails on lamps, several rows per asset are averaged.
        errors.write_text("asset_id,error\n" + "".join(f"{a},{0.9 if f == 'lamp' else 0.05}\n{a},{0.7 if f == 'lamp' else 0.0}\n"
                                                       for a, f in fam.items()))
    out = tmp_path / "ws"
    # Regions of one asset: the tiny test model's codes are too untrained for neighbourhoods to mean much.
    r = _cli("weak-spots", small_catalog, errors, "--out", out, "-n", "2", "--size", "1", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert [fam[reg["centre"]] for reg in summary["regions"]] == ["lamp", "lamp"]
    assert all(reg["observed_error"] == pytest.approx(0.8) for reg in summary["regions"])
    assert summary["share_after"] > summary["share_before"]
    w = dict(line.split(",") for line in (out / "weights.csv").read_text().splitlines()[1:])
    lamp_mass = sum(float(v) for a, v in w.items() if fam[a] == "lamp")
    assert lamp_mass > 0.5 and abs(sum(map(float, w.values())) - 1) < 1e-6
    assert (out / "weights_before_after.png").stat().st_size > 5000
    # The weights feed the scene generator: lamps now dominate the draws.
    with Catalog.open(small_catalog) as cat:
        cat.generate_scenes(tmp_path / "s", 4, 0, CFG, weights=out / "weights.csv", progress=False)
    recs = [json.loads(p.read_text()) for p in sorted((tmp_path / "s" / "labels").glob("*.json"))]
    drawn = [fam[o["asset_id"]] for rec in recs for o in rec["objects"] if o["asset_id"]]
    assert drawn.count("lamp") > len(drawn) / 2


def test_default_reweighting_moves_most_draws_to_a_modestly_weaker_quarter():
    """k-NN predicted errors differ between regions by tens of percent, not by multiples: the default
    weighting must still move most draws there, and keep every asset drawable."""
    from assets2vec.catalog.weak_spots import KEEP_UNIFORM, reweight

    pred = np.full(400, 0.30)
    pred[:100] = 0.42  # a quarter of the assets, 40 % weaker
    w = reweight(pred)
    assert w.sum() == pytest.approx(1.0)
    assert w[:100].sum() > 0.8
    assert w.min() >= KEEP_UNIFORM / len(pred) - 1e-12
    # The old default (sharpness 2, 30 % kept uniform) moved this quarter only to about a third.
    assert reweight(pred, sharpness=2.0, keep_uniform=0.3)[:100].sum() < 0.4
    # Steep exponents on errors spanning many orders of magnitude stay finite.
    wide = np.geomspace(1e-30, 1e3, 50)
    w = reweight(wide, sharpness=40.0)
    assert np.isfinite(w).all() and w.sum() == pytest.approx(1.0) and w.argmax() == 49
    assert reweight(np.zeros(5)) == pytest.approx(np.full(5, 0.2))


def test_weak_spots_per_image_errors_and_bad_files(small_catalog, tmp_path):
    with Catalog.open(small_catalog) as cat:
        cat.generate_scenes(tmp_path / "s", 3, 0, CFG, progress=False)
        per_image = tmp_path / "img.csv"
        per_image.write_text("image,error\n000000.png,1.0\n000001.png,0.0\n000002.png,0.5\n")
        res = cat.weak_spots(per_image, scenes=tmp_path / "s", n=1, size=2, proposals=0)
        assert res["scored_assets"] >= 2 and np.isclose(res["after"].sum(), 1)
        with pytest.raises(CatalogError, match="need the SCENES folder"):
            cat.weak_spots(per_image)
        bad = tmp_path / "bad.csv"
        bad.write_text("asset_id,error\nnobody,1\n")
        with pytest.raises(CatalogError, match="not in this catalog"):
            cat.weak_spots(bad)
        bad.write_text("asset,score\nx,1\n")
        with pytest.raises(CatalogError, match="needs an 'asset_id'"):
            cat.weak_spots(bad)
        bad.write_text(f"asset_id,error\n{cat.ids[0]},oops\n")
        with pytest.raises(CatalogError, match="bad.csv:2: error 'oops' is not a number"):
            cat.weak_spots(bad)


def test_sparse_writes_coverage_weights_for_the_scene_generator(small_catalog, tmp_path):
    w_path = tmp_path / "cov.csv"
    r = _cli("sparse", small_catalog, "-n", "1", "--samples", "1", "--weights", w_path)
    assert r.returncode == 0, r.stderr
    w = {a: float(v) for a, v in (line.split(",") for line in w_path.read_text().splitlines()[1:])}
    with Catalog.open(small_catalog) as cat:
        iso = dict(zip(cat.ids, cat.isolation("shape")))
        assert set(w) == set(cat.ids) and abs(sum(w.values()) - 1) < 1e-6
        most, least = max(iso, key=iso.get), min(iso, key=iso.get)
        assert w[most] > w[least]  # the isolated asset is drawn more often
        rep = cat.generate_scenes(tmp_path / "s", 1, 0, CFG, weights=w_path, progress=False)
    assert rep["made"] == 1
