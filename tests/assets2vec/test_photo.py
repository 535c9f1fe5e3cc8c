"""Photo preparation: the object found (alpha, segmentation, box), cropped and framed, and the crop's camera
mapped back to the photo; photos with nothing in them are clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from assets2vec.photo import FILL, Framing, PhotoError, object_mask, prepare_photo
from render_core.rig import project

H, W = 240, 320
RED = (180, 40, 60)


def chair_mask() -> np.ndarray:
    """A seat-and-back block on two thin legs, right of centre."""
    m = np.zeros((H, W), np.uint8)
    cv2.rectangle(m, (150, 60), (230, 150), 1, -1)
    cv2.rectangle(m, (155, 150), (162, 200), 1, -1)
    cv2.rectangle(m, (218, 150), (225, 200), 1, -1)
    return m.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def studio() -> np.ndarray:
    img = np.full((H, W, 3), 235, np.uint8)
    img[chair_mask()] = RED
    return img


def backdrop() -> np.ndarray:
    """A blue wall, a sand floor and the object's cast shadow on it."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:150], img[150:] = (90, 140, 200), (200, 170, 120)
    shadow = np.zeros((H, W), np.uint8)
    cv2.ellipse(shadow, (200, 205), (60, 10), 0, 0, 360, 1, -1)
    img[shadow.astype(bool)] = (img[shadow.astype(bool)] * 0.6).astype(np.uint8)
    img[chair_mask()] = RED
    return img


def clutter(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 255, (H // 16, W // 16, 3)).astype(np.uint8)
    img = cv2.resize(tiles, (W, H), interpolation=cv2.INTER_NEAREST)
    img[chair_mask()] = RED
    return img


@pytest.mark.parametrize("photo,how", [(studio, "plain background"), (backdrop, "segmented")],
                         ids=["studio", "backdrop-with-shadow"])
def test_segmentation_finds_the_object_without_help(photo, how):
    mask, source = object_mask(photo())
    assert source == how and iou(mask, chair_mask()) > 0.95


def test_thin_light_parts_on_white_are_kept():
    """A pale grey leg on white is object: the plain-background path keeps what a colour-model cut loses."""
    img = np.full((H, W, 3), 255, np.uint8)
    img[chair_mask()] = (225, 225, 228)
    mask, source = object_mask(img)
    assert source == "plain background" and iou(mask, chair_mask()) > 0.98


def test_a_box_finds_the_object_in_clutter():
    mask, source = object_mask(clutter(), box=(140, 50, 240, 210))
    assert source == "box" and iou(mask, chair_mask()) > 0.75
    assert not mask[:, :140].any() and not mask[:, 240:].any()


def test_alpha_is_the_mask_when_there_is_one():
    rgba = np.dstack([clutter(), np.where(chair_mask(), 255, 0).astype(np.uint8)])
    mask, source = object_mask(rgba)
    assert source == "alpha" and iou(mask, chair_mask()) == 1.0


def test_crop_frames_the_object_and_keeps_the_transform():
    p = prepare_photo(backdrop(), 64)
    assert p.image.shape == (64, 64, 4) and p.box == (150, 60, 231, 201)
    alpha = p.image[..., 3] > 127
    ys, xs = np.nonzero(alpha)
    # the box's longer side (141 px tall) fills FILL of the crop, centred
    assert abs((ys.max() + 1 - ys.min()) - FILL * 64) <= 1.5
    assert abs((xs.min() + xs.max() + 1) / 2 - 32) <= 1.0 and abs((ys.min() + ys.max() + 1) / 2 - 32) <= 1.0
    # background pixels keep the photo's colours (the search reads the mask, not "white")
    assert (p.image[..., :3][~alpha] != 255).any()
    corners = np.array([[150, 60], [231, 201]], float)
    np.testing.assert_allclose(p.framing.to_photo(p.framing.to_crop(corners)), corners, atol=1e-9)


def test_a_camera_fitted_on_the_crop_is_the_same_camera_in_the_photo():
    """Projecting with the crop's K and mapping to the photo equals projecting with the photo's K."""
    rng = np.random.default_rng(0)
    framing = Framing(origin=(-13.5, 40.25), scale=0.37, photo_size=(320, 240))
    K_crop = np.array([[70.0, 0, 33.0], [0, 70.0, 30.5], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[:3, 3] = (0.1, -0.2, 2.5)
    pts = rng.uniform(-0.5, 0.5, (50, 3))
    uv_crop, _ = project(pts, c2w, K_crop)
    uv_photo, _ = project(pts, c2w, framing.intrinsics_in_photo(K_crop))
    np.testing.assert_allclose(framing.to_photo(uv_crop), uv_photo, atol=1e-9)


def test_photos_with_nothing_to_search_are_clear_errors():
    with pytest.raises(PhotoError, match="blank"):
        prepare_photo(np.full((100, 120, 3), 128, np.uint8), 64, name="blank.png")
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3)).astype(np.uint8)
    with pytest.raises(PhotoError, match="noise.png: no (single )?object"):
        prepare_photo(noise, 64, name="noise.png")
    empty_alpha = np.zeros((64, 64, 4), np.uint8)
    empty_alpha[..., 3] = 0
    empty_alpha[0, 0, 3] = 255  # one opaque pixel: an alpha channel with almost nothing in it
    with pytest.raises(PhotoError, match="no object found"):
        prepare_photo(empty_alpha, 64, name="empty.png")


def test_bad_boxes_and_inputs_are_named():
    with pytest.raises(PhotoError, match="less than 4x4"):
        prepare_photo(studio(), 64, box=(10, 10, 11, 300))
    with pytest.raises(PhotoError, match="four numbers"):
        prepare_photo(studio(), 64, box=("a", 1, 2, 3))
    with pytest.raises(PhotoError, match="uint8"):
        prepare_photo(studio().astype(np.float32), 64)
    with pytest.raises(PhotoError, match="too small"):
        prepare_photo(np.zeros((8, 8, 3), np.uint8), 64)


def test_untrusted_photo_files_keep_their_limits(tmp_path, monkeypatch):
    import io

    from PIL import Image

    from assets2vec import images

    with pytest.raises(ValueError, match="not a readable image"):
        images.read_image(b"\x89PNG not really", "fake.png")
    with pytest.raises(FileNotFoundError, match="no such image"):
        images.read_image(tmp_path / "missing.png")
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 10, 10)).save(buf, format="PNG")
    monkeypatch.setattr(images, "MAX_PIXELS", 50_000)
    with pytest.raises(ValueError, match="300x200 exceeds the 50,000-pixel limit"):
        images.read_image(buf.getvalue(), "big.png")
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 100)
    with pytest.raises(ValueError, match="big.png: .* MB exceeds"):
        images.read_image(buf.getvalue(), "big.png")
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[10:30, 10:40] = (255, 0, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 32 << 20)
    assert images.read_image(buf.getvalue()).shape == (40, 50, 4)  # transparency kept: it is the object's mask


def test_a_box_as_large_as_the_photo_still_segments():
    """GrabCut refuses to start with no background pixel; a box over the whole photo (or past its
    edges, as a drag in the app can be) falls back to the photo's border band."""
    for box in [(0, 0, W, H), (-50, -50, 10_000, 10_000)]:
        mask, source = object_mask(backdrop(), box=box)
        assert source == "box" and iou(mask, chair_mask()) > 0.8


def test_infinite_boxes_are_named():
    with pytest.raises(PhotoError, match="four numbers"):
        prepare_photo(studio(), 64, box=(0, 0, float("inf"), 100))
    import argparse

    from assets2vec.cli.search_cmd import _box

    with pytest.raises(argparse.ArgumentTypeError, match="finite"):
        _box("0,0,inf,100")


def test_a_transparent_edge_is_not_a_cut_out():
    """Rounded corners or a 1-px transparent edge: the alpha says nothing about the object."""
    rgba = np.dstack([studio(), np.full((H, W), 255, np.uint8)])
    rgba[0, :, 3] = 0
    mask, source = object_mask(rgba)
    assert source == "plain background" and iou(mask, chair_mask()) > 0.95


def test_photo_files_are_read_upright_and_at_full_depth(tmp_path):
    """A phone's portrait JPEG (landscape pixels + an EXIF orientation) reads as it is shown, and a
    16-bit grey PNG is scaled to 8 bits instead of clipped to white."""
    import io

    from PIL import Image

    from assets2vec.images import read_image

    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255  # a white band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", exif=exif, quality=95)
    upright = read_image(buf.getvalue(), "portrait.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[:10].mean() > 200 and upright[-20:].mean() < 50  # the left band is now the top

    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    grey = read_image(path)
    assert grey.shape == (64, 64, 3) and grey.dtype == np.uint8
    assert (grey[..., 0] == 255).mean() < 0.01 and abs(grey.mean() - 127.5) < 2


def test_the_crop_warp_follows_the_framing_to_the_pixel():
    """A photo shrunk 8x into the crop: a dot at a known photo point lands where `to_crop` says,
    to a tenth of a crop pixel (OpenCV's warps map pixel centres, the framing continuous coordinates)."""
    import cv2

    big = np.full((800, 800, 3), 235, np.uint8)
    big[200:600, 300:500] = RED
    p = prepare_photo(big, 64)
    dot = np.zeros((800, 800), np.float32)
    cv2.circle(dot, (351, 263), 12, 1.0, -1)  # continuous centre (351.5, 263.5)
    warped = cv2.warpAffine(cv2.GaussianBlur(dot, (0, 0), 0.5 / p.framing.scale), p.framing.matrix(), (64, 64))
    ys, xs = np.mgrid[:64, :64] + 0.5
    seen = np.array([(warped * xs).sum(), (warped * ys).sum()]) / warped.sum()
    np.testing.assert_allclose(seen, p.framing.to_crop(np.array([[351.5, 263.5]]))[0], atol=0.1)
