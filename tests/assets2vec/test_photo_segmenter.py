"""The photo segmenter: composed training photos with their masks, a U-Net that learns to find the
objects on backgrounds it never saw, the graph cut that sets the mask's edge, its file, and its place
in finding the object of a photo."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from assets2vec.photo import PhotoError, grabcut_mask, learned_mask, object_mask
from assets2vec.photo_segmenter import Composer, SegmenterConfig, TrainedSegmenter, distractor_meshes, train_segmenter


def _renders(views: int = 6, size: int = 48) -> np.ndarray:
    """(2, V, S, S, 4) uint8 'renders': a shaded red disc and a green square, a little off-centre."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] + 0.5
    out = np.zeros((2, views, size, size, 4), np.uint8)
    for v in range(views):
        r = size * rng.uniform(0.25, 0.35)
        c = size / 2 + rng.uniform(-3, 3, 2)
        shade = 0.6 + 0.4 * (1 - (yy - c[1] + r) / (2 * r)).clip(0, 1)
        for i, (m, colour) in enumerate([((xx - c[0]) ** 2 + (yy - c[1]) ** 2 < r * r, (210, 50, 40)),
                                         ((abs(xx - c[0]) < r) & (abs(yy - c[1]) < r), (40, 180, 70))]):
            out[i, v][m, :3] = (np.array(colour)[None] * shade[m][:, None]).astype(np.uint8)
            out[i, v][m, 3] = 255
    return out


def _distractors(size: int = 48) -> np.ndarray:
    """(2, S, S, 4) grey primitives: a bar and a triangle."""
    out = np.zeros((2, size, size, 4), np.uint8)
    out[0, size // 3: 2 * size // 3, 4:-4] = (200, 200, 200, 255)
    tri = np.array([[size // 2, 4], [4, size - 4], [size - 4, size - 4]], np.int32)
    m = np.zeros((size, size), np.uint8)
    cv2.fillPoly(m, [tri], 1)
    out[1][m.astype(bool)] = (170, 170, 170, 255)
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_composed_photos_carry_the_visible_object_and_are_seeded():
    cfg = SegmenterConfig(size=64, box=(0.3, 0.6), offset=0.1)
    views = torch.as_tensor(_renders().reshape(-1, 48, 48, 4))
    clutter = torch.as_tensor(_distractors())
    a_img, a_mask = Composer(64, torch.Generator().manual_seed(0), clutter, cfg).compose(views)
    b_img, b_mask = Composer(64, torch.Generator().manual_seed(0), clutter, cfg).compose(views)
    c_img, _ = Composer(64, torch.Generator().manual_seed(1), clutter, cfg).compose(views)
    assert a_img.shape == (12, 3, 64, 64) and a_mask.shape == (12, 1, 64, 64)
    assert torch.equal(a_img, b_img) and torch.equal(a_mask, b_mask) and not torch.equal(a_img, c_img)
    assert 0 <= a_img.min() and a_img.max() <= 1 and set(a_mask.unique().tolist()) <= {0.0, 1.0}
    m = a_mask[:, 0] > 0.5
    assert m.flatten(1).any(1).all()  # every photo shows its object (distractors hide at most part of it)
    # The object's box spans the configured share of the frame, near its centre (occluders only shrink it).
    side = torch.maximum(m.any(1).sum(1), m.any(2).sum(1)).float() / 64
    assert side.max() <= 0.6 + 2 / 64 and side.median() >= 0.25
    ys, xs = torch.nonzero(m[0], as_tuple=True)
    assert abs(float(xs.float().mean()) / 64 - 0.5) < 0.25 and abs(float(ys.float().mean()) / 64 - 0.5) < 0.25


def test_distractors_are_normalised_primitives():
    meshes = list(distractor_meshes())
    assert len(meshes) >= 5
    for _, mesh in meshes:
        lo, hi = mesh.bounds()
        assert mesh.n_faces > 0 and abs(float((hi - lo).max()) - 1) < 1e-3


@pytest.fixture(scope="module")
def segmenter():
    cfg = SegmenterConfig(size=48, width=8, steps=250, batch=12, lr=5e-3, box=(0.3, 0.7), offset=0.15, distractors=2)
    return train_segmenter(_renders(), _distractors(), cfg, progress=False, log=lambda m: None)


def _disc_photo(h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A red disc, larger than any training view, on a blue wall over a checker floor it was never shown on."""
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (70, 90, 160)
    floor = yy > 70
    checks = ((xx // 12 + yy // 12) % 2).astype(bool)
    img[floor & checks], img[floor & ~checks] = (200, 200, 190), (120, 110, 100)
    disc = (xx - 90) ** 2 + (yy - 60) ** 2 < 30 ** 2
    img[disc] = (190, 60, 45)
    return img, disc


def test_segmenter_finds_the_object_on_a_background_it_never_saw(segmenter):
    assert segmenter.history[-1]["held_out_iou"] > 0.6
    img, truth = _disc_photo()
    p = segmenter.probability(img)
    assert p.shape == truth.shape and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    assert p[truth].mean() > 0.6 and p[~truth].mean() < 0.2
    mask, source = object_mask(img, segmenter=segmenter)
    assert source == "segmenter" and _iou(mask, truth) > 0.85


def test_the_cut_sets_the_edge_of_a_coarse_probability():
    """A network's blurry answer at a quarter of the photo's resolution: the graph cut takes it to the
    photo's own edges, thin legs included."""
    from tests.assets2vec.test_photo import backdrop, chair_mask

    img, truth = backdrop(), chair_mask()
    small = cv2.resize(truth.astype(np.float32), (40, 30), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (truth.shape[1], truth.shape[0]))
    assert _iou(coarse > 0.5, truth) < 0.87
    mask = learned_mask(img, coarse)
    assert _iou(mask, truth) > 0.95 and mask[170:200, 155:163].mean() > 0.8  # a leg


def test_alpha_and_a_box_come_before_the_segmenter(segmenter):
    img, truth = _disc_photo()
    rgba = np.dstack([img, (truth * 255).astype(np.uint8)])
    assert object_mask(rgba, segmenter=segmenter)[1] == "alpha"
    assert object_mask(img, box=(55, 25, 125, 95), segmenter=segmenter)[1] == "box"
    with pytest.raises(PhotoError, match="blank"):
        object_mask(np.full((80, 80, 3), 40, np.uint8), segmenter=segmenter)


def test_a_box_keeps_the_segmenter_to_the_object_inside_it(segmenter):
    """A user's box holds the object and a grey triangle like the clutter the segmenter was trained to
    leave out; a second disc lies outside the box. The mask is the boxed disc alone, where a colour cut
    from the box takes the triangle in."""
    img, truth = _disc_photo()
    yy, xx = np.mgrid[:120, :160]
    other = (xx - 25) ** 2 + (yy - 40) ** 2 < 18 ** 2
    img[other] = (190, 60, 45)
    tri = np.zeros(truth.shape, np.uint8)
    cv2.fillPoly(tri, [np.array([[130, 30], [123, 80], [143, 80]], np.int32)], 1)
    img[tri.astype(bool)] = (170, 170, 170)
    box = (52, 22, 150, 98)
    inside = np.zeros_like(truth)
    inside[22:98, 52:150] = True
    assert grabcut_mask(img, box)[tri.astype(bool)].mean() > 0.5
    mask, source = object_mask(img, box=box, segmenter=segmenter)
    assert source == "box" and _iou(mask, truth) > 0.85
    assert not (mask & ~inside).any() and mask[tri.astype(bool)].mean() < 0.1
    # a photo larger than GrabCut's working size: the same answer, at the photo's own size
    big = cv2.resize(img, (640, 480), interpolation=cv2.INTER_NEAREST)
    mask, _ = object_mask(big, box=tuple(4 * v for v in box), segmenter=segmenter)
    assert mask.shape == (480, 640) and _iou(mask, cv2.resize(truth.astype(np.uint8), (640, 480)) > 0) > 0.85


def test_a_box_where_the_segmenter_finds_nothing_is_cut_by_colour():
    """The user says the object is in the box: a segmenter that sees nothing there does not overrule them."""

    class Blind:
        def probability(self, rgb, width=None):
            return np.zeros(rgb.shape[:2], np.float32)

    img, truth = _disc_photo()
    box = (55, 25, 125, 95)
    mask, source = object_mask(img, box=box, segmenter=Blind())
    assert source == "box" and np.array_equal(mask, grabcut_mask(img, box)) and _iou(mask, truth) > 0.85


def test_segmenter_file_round_trips_and_refuses_pickles(segmenter, tmp_path):
    path = segmenter.save(tmp_path / "seg.pt")
    back = TrainedSegmenter.load(path)
    img, _ = _disc_photo()
    assert back.config == segmenter.config and back.history == segmenter.history
    assert np.allclose(back.probability(img), segmenter.probability(img), atol=1e-6)

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"format": 1, "state": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable photo segmenter"):
        TrainedSegmenter.load(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        TrainedSegmenter.load(tmp_path / "junk.pt")


def test_probabilities_come_at_the_size_asked(segmenter):
    img, truth = _disc_photo()  # 120 x 160
    full, small = segmenter.probability(img), segmenter.probability(img, 80)
    assert small.shape == (60, 80)
    assert np.abs(cv2.resize(full, (80, 60), interpolation=cv2.INTER_AREA) - small).mean() < 0.05


def _ring_scenes(n: int, size: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, masks, scene index) of `n` 'scenes': a blue ring, a shape no training render or
    distractor has, standing in a room of random colours."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:size, :size] + 0.5
    images, masks = np.zeros((n, size, size, 3), np.uint8), np.zeros((n, size, size), bool)
    for i in range(n):
        horizon = rng.uniform(0.3, 0.6) * size
        images[i] = np.where((yy > horizon)[..., None], rng.integers(0, 256, 3), rng.integers(0, 256, 3))
        c, r = size / 2 + rng.uniform(-4, 4, 2), size * rng.uniform(0.2, 0.35)
        d = np.hypot(xx - c[0], yy - c[1])
        masks[i] = (d < r) & (d > 0.55 * r)
        images[i][masks[i]] = (40, 60, 200)
    return images, masks, np.arange(n)


def test_fine_tuning_on_scenes_teaches_what_composed_photos_do_not(segmenter):
    """The scene crops enter training: after the fine-tune the segmenter finds, in held-out scenes, an
    object the composed photos never showed; the one trained without them does not."""
    from assets2vec.photo_segmenter import HOLD_OUT, _iou

    scenes = _ring_scenes(3 * HOLD_OUT)
    cfg = replace(segmenter.config, scene_steps=150)
    tuned = train_segmenter(_renders(), _distractors(), cfg, progress=False, log=lambda m: None, scenes=scenes)
    entry = tuned.history[-1]
    assert entry["scene_steps"] == 150 and entry["scene_crops"] == 3 * HOLD_OUT - 3
    held = scenes[2] % HOLD_OUT == HOLD_OUT - 1
    img = torch.as_tensor(scenes[0][held]).permute(0, 3, 1, 2).float() / 255
    truth = torch.as_tensor(scenes[1][held])[:, None].float()
    before = _iou(segmenter.net, img, truth)
    assert entry["held_out_scene_iou"] == pytest.approx(_iou(tuned.net, img, truth), abs=1e-4)
    assert entry["held_out_scene_iou"] > 0.6 and entry["held_out_scene_iou"] > before + 0.3
    assert entry["held_out_iou"] > 0.5  # and it still finds the catalog's objects in composed photos
    # A segmenter saved before scenes existed reads as trained without them.
    old = {k: v for k, v in segmenter.config.to_json().items() if not k.startswith("scene")}
    assert SegmenterConfig.from_json(old).scenes == 0 and SegmenterConfig.from_json(tuned.config.to_json()).scene_steps == 150
