"""One-asset scenes of a run's assets, cut as photos frame their object, for the segmenter."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from assets2vec.photo_scenes import BOX, OFFSET, SCENE_CONFIG, run_pool, scene_crops

SMALL = {**SCENE_CONFIG, "image_size": 128}  # cut to 64 or 48: finer renders would not show


@pytest.fixture(scope="module")
def pool(run):
    from assets2vec.run import Run

    return run_pool(Run.open(run))


def test_the_pool_is_the_runs_meshes(run, pool):
    from assets2vec.run import Run

    assert [a.id for a in pool] == Run.open(run).asset_ids
    assert all(a.path.is_file() and a.label == "asset" for a in pool)
    assert all(a.metric_height is not None and a.metric_height > 0 for a in pool)  # procedural assets know their size


def test_crops_frame_the_asset_as_photos_do_and_are_seeded(pool):
    # The small library's assets often stand at the frame's edge at these cameras: those scenes give none.
    images, masks, index = scene_crops(pool, 16, 0, 64, progress=False, config=SMALL)
    assert images.shape[1:] == (64, 64, 3) and images.dtype == np.uint8 and masks.shape == images.shape[:3]
    assert len(images) == len(masks) == len(index) >= 4 and len(images) % 2 == 0  # two crops per usable scene
    assert set(index.tolist()) <= set(range(16))
    for img, m in zip(images, masks):
        rows, cols = np.nonzero(m)
        side = max(np.ptp(rows) + 1, np.ptp(cols) + 1) / 64
        assert BOX[0] - 0.05 <= side <= BOX[1] + 0.05
        # The box's centre: at most OFFSET off the crop's centre (the mask's box, not the mean, is what was framed).
        cy, cx = (rows.min() + rows.max() + 1) / 2 / 64, (cols.min() + cols.max() + 1) / 2 / 64
        assert abs(cx - 0.5) <= OFFSET + 0.03 and abs(cy - 0.5) <= OFFSET + 0.03
        assert img[~m].std() > 3  # a room around it, not a blank sweep
    again = scene_crops(pool, 16, 0, 64, progress=False, config=SMALL)
    assert all(np.array_equal(a, b) for a, b in zip((images, masks, index), again))
    other = scene_crops(pool, 16, 1, 64, progress=False, config=SMALL)
    assert not np.array_equal(other[0][:2], images[:2])


def test_a_mesh_that_does_not_load_is_named_and_the_others_go_on(pool, tmp_path):
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 nonsense\n")
    said = []
    bad = replace(pool[0], id="broken-asset", path=broken)
    images, masks, index = scene_crops(pool + [bad] * 4, 16, 0, 48, progress=False, log=said.append, config=SMALL)
    assert len(images) > 0 and "broken-asset" in " ".join(said)
    with pytest.raises(ValueError, match="none of the 2 assets' meshes loads"):
        scene_crops([bad, replace(bad, id="also-broken")], 4, 0, 48, progress=False, config=SMALL)
