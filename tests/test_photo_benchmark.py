"""The search-by-photo benchmark's own parts: the box it draws for a photo as a user would, and the
match rule it chooses on development photos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("photo_search", Path(__file__).resolve().parents[1] / "benchmarks" / "photo_search.py")
photo_search = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(photo_search)


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
