"""Shared fixtures: tiny libraries and datasets made by the code itself."""

from __future__ import annotations

import os

import pytest
import torch

# Two cores: keep torch from oversubscribing when pytest runs.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def small_library(tmp_path_factory):
    """Eight procedural assets (two per family), seed 0."""
    from render_core.assets.procedural.generate import generate_library

    out = tmp_path_factory.mktemp("lib") / "library"
    generate_library(out, 8, 0, progress=False)
    return out


@pytest.fixture(scope="session")
def small_dataset(small_library, tmp_path_factory):
    """The small library rendered at 32x32, 6 views (2 rings x 3)."""
    from render_core.assets.library import open_library
    from render_core.multiview import RenderConfig, render_library
    from render_core.rig import RigConfig

    out = tmp_path_factory.mktemp("ds") / "dataset"
    cfg = RenderConfig(image_size=32, rig=RigConfig(n_views=6, elevations=(10.0, 40.0), floor_views=0))
    render_library(open_library(small_library), out, cfg, progress=False)
    return out


def _tiny_fit(dataset, out, steps: int):
    """Train the tiny preset on `dataset` for `steps` steps into `out`; returns `out`."""
    from assets2vec.configs import preset
    from assets2vec.train import fit

    cfg = preset("tiny")
    cfg.steps = steps
    fit(dataset, out, cfg, progress=False, log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def tiny_fit():
    """`tiny_fit(dataset, out, steps)`: a short fit of the tiny preset, for fixtures that need their own run."""
    return _tiny_fit


@pytest.fixture(scope="session")
def run(small_dataset, tmp_path_factory):
    """A 60-step tiny fit of the small dataset, shared by the catalog tests (codes barely trained)."""
    return _tiny_fit(small_dataset, tmp_path_factory.mktemp("catrun") / "run", 60)


@pytest.fixture()
def catalog(run, tmp_path):
    """A catalog of the shared run, built afresh for each test (tests write tags and predictions)."""
    from assets2vec.catalog.build import build_catalog

    build_catalog(run, tmp_path / "cat", progress=False, log=lambda m: None)
    return tmp_path / "cat"


@pytest.fixture(scope="session")
def small_catalog(small_dataset, tmp_path_factory):
    """A catalog built from a 40-step tiny fit of the small dataset (codes barely trained:
    for plumbing, not for accuracy)."""
    from assets2vec.catalog.build import build_catalog

    root = tmp_path_factory.mktemp("smallcat")
    _tiny_fit(small_dataset, root / "run", 40)
    build_catalog(root / "run", root / "cat", progress=False, log=lambda m: None)
    return root / "cat"
