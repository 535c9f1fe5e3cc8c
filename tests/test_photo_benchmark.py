"""The search-by-photo benchmark's own parts: the box it draws for a photo as a user would, the
match rule it chooses on development photos, and the folder of other people's meshes it photographs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

_spec = importlib.util.spec_from_file_location("photo_search", Path(__file__).resolve().parents[1] / "benchmarks" / "photo_search.py")
photo_search = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(photo_search)
_spec = importlib.util.spec_from_file_location("photo_rescore", Path(__file__).resolve().parents[1] / "benchmarks" / "photo_rescore.py")
photo_rescore = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(photo_rescore)
_spec = importlib.util.spec_from_file_location("foreign_meshes", Path(__file__).resolve().parents[1] / "benchmarks" / "foreign_meshes.py")
foreign_meshes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(foreign_meshes)


def test_drawn_box_holds_the_object_loosely_and_is_the_same_every_run():
    truth = np.zeros((120, 160), bool)
    truth[40:90, 50:110] = True  # box x 50-110, y 40-90: 60 x 50
    box = photo_search.drawn_box(truth, "chair-s0-00000__2")
    x0, y0, x1, y1 = box
    assert 50 - 0.12 * 60 - 1 <= x0 <= 50 - 0.02 * 60 and 110 + 0.02 * 60 <= x1 <= 110 + 0.12 * 60 + 1
    assert 40 - 0.12 * 50 - 1 <= y0 <= 40 - 0.02 * 50 and 90 + 0.02 * 50 <= y1 <= 90 + 0.12 * 50 + 1
    assert photo_search.drawn_box(truth, "chair-s0-00000__2") == box
    assert photo_search.drawn_box(truth, "chair-s0-00000__1") != box
    edge = np.zeros((120, 160), bool)
    edge[0:30, 140:160] = True  # at the photo's corner: the box stays inside the photo
    x0, y0, x1, y1 = photo_search.drawn_box(edge, "x")
    assert y0 == 0 and x1 == 160 and x0 < 140 and y1 > 30


def test_chosen_rule_flags_the_most_outsiders_within_the_budget():
    rows = [{"in_catalog": True, "confidence": {"loss": 0.01 * i, "iou": 0.9, "probability": 0.9}} for i in range(1, 21)]
    rows += [{"in_catalog": False, "confidence": {"loss": 0.05 + 0.01 * i, "iou": 0.5, "probability": 0.9}} for i in range(20)]
    rule = photo_search.choose_rule(rows, max_wrongly_flagged=0.05)
    assert rule["wrongly_flagged"] <= 0.05 and rule["flagged"] >= 0.95
    # Only the familiarity tells these apart: the rule finds its threshold and leaves the others open.
    rows = [{"in_catalog": True, "confidence": {"loss": 0.1, "iou": 0.9, "probability": 0.5, "familiarity": 0.8 + 0.005 * i}}
            for i in range(20)]
    rows += [{"in_catalog": False, "confidence": {"loss": 0.1, "iou": 0.9, "probability": 0.5, "familiarity": 0.3 + 0.02 * i}}
             for i in range(20)]
    rule = photo_search.choose_rule(rows, max_wrongly_flagged=0.05)
    assert rule["flagged"] == 1.0 and rule["wrongly_flagged"] == 0.0 and 0.68 <= rule["min_familiarity"] <= 0.8


def _obj(path: Path, mtl: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((f"mtllib {mtl}\n" if mtl else "") + "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")


def test_foreign_meshes_are_copied_with_their_materials_into_a_library(tmp_path):
    """A stand-in for pybullet_data: each mesh lands in its own folder with the MTL and texture it
    names (and nothing it does not), and the folder opens as a library of that many assets."""
    from render_core.assets.library import open_library

    data = tmp_path / "pybullet_data"
    for _, rel in foreign_meshes.HAND_MADE:
        _obj(data / rel)
    _obj(data / "duck.obj", "duck.mtl")
    (data / "duck.mtl").write_text("newmtl m\nKd 1 1 0\nmap_Kd -s 1 1 1 duckCM.png\n")
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(data / "duckCM.png")
    (data / "unrelated.png").write_bytes(b"x")
    for i in range(3):
        _obj(data / "random_urdfs" / f"{i:03d}" / f"{i:03d}.obj")
    names = foreign_meshes.copy_meshes(data, tmp_path / "lib", len(foreign_meshes.HAND_MADE) + 2)
    assert names[0] == "duck" and names[-2:] == ["random-000", "random-001"] and len(set(names)) == len(names)
    assert sorted(p.name for p in (tmp_path / "lib" / "duck").iterdir()) == ["duck.mtl", "duck.obj", "duckCM.png"]
    assert len(open_library(tmp_path / "lib").records) == len(names)
    # The development folder: random objects only, none of the default folder's.
    for i in (foreign_meshes.DEV_FIRST, foreign_meshes.DEV_FIRST + 1):
        _obj(data / "random_urdfs" / f"{i:03d}" / f"{i:03d}.obj")
    dev = foreign_meshes.copy_meshes(data, tmp_path / "dev", 5, dev=True)
    assert dev == [f"random-{foreign_meshes.DEV_FIRST}", f"random-{foreign_meshes.DEV_FIRST + 1}"]


def test_summary_gives_each_outside_folder_its_share_flagged():
    row = lambda folder, inside, match: {"photo": f"{folder}/x", "setting": "studio", "in_catalog": inside,  # noqa: E731
                                         "match": match, "seconds": 1.0, "mask_iou": 0.9, "top1": True, "top5": True}
    rows = [row("in", True, "a"), row("near", False, None), row("near", False, "a"),
            row("foreign", False, None), row("foreign", False, None)]
    s = photo_search.summarise(rows)
    assert s["studio/not-in-catalog"]["flagged"] == 0.75 and s["studio/in-catalog"]["wrongly_flagged"] == 0
    assert s["flagged_by_folder"] == {"foreign": {"studio": 1.0}, "near": {"studio": 0.5}}
    assert "flagged_by_folder" not in photo_search.summarise(rows[:3])


def test_rescored_rows_match_by_the_rule_with_familiarity_and_unfitted_rows_only_by_the_encoder(tmp_path):
    from assets2vec.photo_fit import MatchRule

    conf = lambda loss, fam: {"loss": loss, "iou": 0.9, "probability": 0.5, "familiarity": fam}  # noqa: E731
    rows = [{"photo": "in/a__0", "setting": "studio", "in_catalog": True, "answer": ["a", "b"], "confidence": conf(0.1, 0.9)},
            {"photo": "out/c__0", "setting": "studio", "in_catalog": False, "answer": ["a"], "confidence": conf(0.1, 0.4)},
            {"photo": "out/d__0", "setting": "studio", "in_catalog": False, "answer": ["b"], "confidence": conf(0.9, 0.9)},
            {"photo": "in/e__0", "setting": "studio", "in_catalog": True, "error": "refused"}]
    out = photo_rescore.rescore(rows, MatchRule(max_loss=0.5, min_familiarity=0.6))
    assert [r.get("match") for r in out] == ["a", None, None, None] and "match" not in rows[0]  # the input is left as it was
    folder = tmp_path / "photos_foreign_dev"
    folder.mkdir()
    (folder / "photos.jsonl").write_text('{"asset_id": "duck", "j": 0, "setting": "studio"}\n{"asset_id": "a", "j": 1, "setting": "clutter"}\n')
    unfitted = photo_rescore.unfitted_rows(folder, {"a"})
    assert [(r["photo"], r["in_catalog"]) for r in unfitted] == [("photos_foreign_dev/duck__0", False), ("photos_foreign_dev/a__1", True)]
    assert MatchRule(max_loss=0.01, min_iou=0.99)(SimpleNamespace(**unfitted[0]["confidence"]))  # the fit terms pass any rule
    for r, fam in zip(unfitted, (0.3, 0.9)):
        r["confidence"].update(probability=0.5, familiarity=fam)
        r["asset_named"] = "a"
    assert photo_rescore.unfitted_flagged(photo_rescore.rescore(unfitted, MatchRule(min_familiarity=0.6))) == \
        {"photos_foreign_dev": {"clutter": 0.0, "studio": 1.0}}
