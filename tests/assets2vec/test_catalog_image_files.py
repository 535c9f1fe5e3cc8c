"""Figures and animations are written atomically: a failure leaves neither a partial file nor a
temp file behind, and temp names are ones `sweep_stale_temps` recognises."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from assets2vec.catalog.latent_map import plot_map
from assets2vec.latent import save_animation


def _frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)


def test_figures_and_animations_are_complete_files(tmp_path):
    plot_map(np.random.default_rng(0).normal(size=(10, 2)), ["a"] * 5 + [None] * 5, tmp_path / "map.png")
    save_animation(tmp_path / "spin.gif", _frames())
    assert Image.open(tmp_path / "map.png").format == "PNG" and Image.open(tmp_path / "spin.gif").n_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png", "spin.gif"]


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        plot_map(np.zeros((4, 2)), ["a"] * 4, tmp_path / "map.png")
    with pytest.raises(OSError):
        save_animation(tmp_path / "spin.gif", _frames())
    assert list(tmp_path.iterdir()) == []
