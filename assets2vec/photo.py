"""Photo preparation: find the object in a photo, crop it and frame it the way the search expects.

A photo comes from any camera: the object may be small in the frame or off-centre, and stands on
whatever background the photographer had (a plain wall, a floor with its shadow, clutter).
The object's mask comes, in order of trust, from the photo's alpha channel; or from OpenCV's
GrabCut (a colour-model graph cut; well kept, no weights to download) seeded by a user's box, or
with a photo segmenter by its answer inside the box; or, when the run has a photo segmenter
(`assets2vec.photo_segmenter`, a U-Net trained on the run's own meshes), from GrabCut seeded by
the segmenter's probabilities, so the network says where the object is and the cut sets its edge
at the photo's resolution; without one, from a plain background's colour or GrabCut seeded by the
photo's border as background. The photo is then cropped to a square around
the object's box, scaled so the box's longer side fills `FILL` of the crop, and resized to the
run's image size. `Framing` keeps that crop transform, so a camera fitted on the crop is
returned in the original photo's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FILL = 0.6
"""share of the crop's side taken by the longer side of the object's box: room for the refined
camera to move and for parts the segmentation missed"""
MIN_OBJECT_FRACTION = 0.002
"""an object covering less of the photo than this is taken as no object found"""
WORK_SIDE = 320
"""GrabCut runs at this many pixels on the longer side: smaller photos are enlarged (a graph cut
needs a few pixels across a chair leg), larger ones reduced (it is iterative)"""
PLAIN_SPREAD = 6.0
"""a border whose colours lie within this distance (0-255 RGB) of their median, for 95 % of its
pixels, is a plain background: a studio sweep, a product shot, a render on white"""


class PhotoError(ValueError):
    """A photo that cannot be searched: blank, noise, no object found, a bad box."""


@dataclass(frozen=True)
class Framing:
    """Crop transform: crop pixel = (photo pixel - origin) * scale, in continuous pixel coordinates."""

    origin: tuple[float, float]  # (x, y) of the crop's top-left corner in the photo (may be negative: padding)
    scale: float  # crop pixels per photo pixel
    photo_size: tuple[int, int]  # (W, H) of the original photo

    def to_photo(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) crop pixel coordinates (x, y) -> photo pixel coordinates."""
        return np.asarray(uv, np.float64) / self.scale + np.asarray(self.origin)

    def to_crop(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) photo pixel coordinates (x, y) -> crop pixel coordinates."""
        return (np.asarray(uv, np.float64) - np.asarray(self.origin)) * self.scale

    def intrinsics_in_photo(self, K: np.ndarray) -> np.ndarray:
        """Pinhole K (3, 3) of a camera fitted on the crop, as the same camera in the photo's pixels."""
        K = np.asarray(K, np.float64)
        A = np.array([[self.scale, 0, -self.scale * self.origin[0]], [0, self.scale, -self.scale * self.origin[1]], [0, 0, 1]])
        return np.linalg.inv(A) @ K

    def matrix(self, image_scale: float = 1.0) -> np.ndarray:
        """(2, 3) affine from pixel indices of the photo resized by `image_scale` to pixel indices of the
        crop, for OpenCV's warps: they map pixel centres (index i is continuous i + 0.5), so the
        continuous transform gains a half-pixel term."""
        k = self.scale / image_scale
        return np.array([[k, 0, 0.5 * k - 0.5 - self.scale * self.origin[0]],
                         [0, k, 0.5 * k - 0.5 - self.scale * self.origin[1]]], np.float64)


@dataclass
class PreparedPhoto:
    image: np.ndarray  # (S, S, 4) uint8: the crop, alpha = the object's mask
    framing: Framing
    box: tuple[int, int, int, int]  # the object's box in the photo: x0, y0, x1, y1 (exclusive)
    mask: np.ndarray  # (H, W) bool: the object in the photo
    mask_source: str  # "alpha", "box", "segmenter", "plain background" or "segmented"

    @property
    def size(self) -> int:
        return self.image.shape[0]


def _check(image: np.ndarray, name: str) -> np.ndarray:
    from assets2vec.images import MAX_PIXELS

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
        raise PhotoError(f"{name}: expected an H x W x 3 or x 4 uint8 image, got {a.dtype} {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise PhotoError(f"{name}: {a.shape[1]}x{a.shape[0]} exceeds the {MAX_PIXELS:,}-pixel limit")
    if min(a.shape[:2]) < 16:
        raise PhotoError(f"{name}: {a.shape[1]}x{a.shape[0]} is too small to find an object in (16 px at least)")
    return a


def _check_box(box, w: int, h: int, name: str) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PhotoError(f"{name}: a box is four numbers x0,y0,x1,y1 in pixels, got {box!r}") from exc
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise PhotoError(f"{name}: the box {tuple(box)} leaves less than 4x4 pixels inside the {w}x{h} photo")
    return x0, y0, x1, y1


def _border(h: int, w: int) -> np.ndarray:
    """(h, w) bool: the band along the image's border that shows what surrounds a framed object."""
    band = max(2, round(0.03 * max(h, w)))
    border = np.zeros((h, w), bool)
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    return border


def grabcut_mask(rgb: np.ndarray, box: tuple[int, int, int, int] | None = None, iterations: int = 5) -> np.ndarray:
    """(H, W) bool: the object segmented by OpenCV's GrabCut.

    With a `box`, everything outside it is background and the inside is to be decided. Without
    one, a band along the photo's border is background: the photographer framed the object, so
    the border shows what surrounds it (wall, floor, clutter), and GrabCut's colour models learn
    the background from it. Runs at most at `WORK_SIDE` px and is resized back."""
    import cv2

    h, w = rgb.shape[:2]
    s = WORK_SIDE / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR) if s != 1 else rgb
    sh, sw = small.shape[:2]
    if box is not None:
        x0, y0, x1, y1 = (int(round(v * s)) for v in box)
        init = np.full((sh, sw), cv2.GC_BGD, np.uint8)
        init[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = cv2.GC_PR_FGD
        if not (init == cv2.GC_BGD).any():
            # a box as large as the photo leaves GrabCut no background to learn from (it refuses to
            # start): the photo's border band becomes probable background, as without a box
            init[_border(sh, sw)] = cv2.GC_PR_BGD
    else:
        border = _border(sh, sw)
        # Pixels that the border's colours explain (the wall, the floor, their seam between the legs)
        # start as probable background, the rest as probable object: GrabCut's object model then
        # starts from the object's colours, not from half the room.
        init = np.where(_looks_like(small, border), cv2.GC_PR_BGD, cv2.GC_PR_FGD).astype(np.uint8)
        init[border] = cv2.GC_BGD
        if not (init == cv2.GC_PR_FGD).any():  # nothing stands out from the border's colours
            return np.zeros((h, w), bool)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation draws from OpenCV's generator
    cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), init, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    fg = (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)
    fg &= ~_shadow(small, fg)
    if s != 1:
        fg = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA if s > 1 else cv2.INTER_LINEAR) > 0.5
    return _main_object(fg)


SURE = 0.1
"""the segmenter's probabilities below this (above one less this) seed GrabCut as sure background
(sure object); between them GrabCut decides, starting from the network's side of one half"""


def work_size(h: int, w: int) -> tuple[int, int]:
    """(W, H) of a photo of h x w px scaled so its longer side is `WORK_SIDE`, where the graph cuts run."""
    s = WORK_SIDE / max(h, w)
    return max(1, round(w * s)), max(1, round(h * s))


def learned_mask(rgb: np.ndarray, probability: np.ndarray, iterations: int = 5) -> np.ndarray:
    """(H, W) bool: the object, from a segmenter's `probability` (the photo's size or `work_size`) refined by GrabCut at most
    `WORK_SIDE` px: the network knows what the object is, the cut follows the photo's own edges
    (a thin leg the network blurred, a shadow's border)."""
    import cv2

    h, w = rgb.shape[:2]
    s = WORK_SIDE / max(h, w)
    size = work_size(h, w)
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR) if s != 1 else rgb
    p = np.asarray(probability, np.float32)
    if p.shape[::-1] != size:
        p = cv2.resize(p, size, interpolation=cv2.INTER_LINEAR)
    init = np.where(p > 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    init[p < SURE] = cv2.GC_BGD
    init[p > 1 - SURE] = cv2.GC_FGD
    fg = p > 0.5
    has = lambda v: bool((init == v).any())  # noqa: E731
    # GrabCut needs both models seeded; a network sure of one side only is taken as it is
    if (has(cv2.GC_FGD) or has(cv2.GC_PR_FGD)) and (has(cv2.GC_BGD) or has(cv2.GC_PR_BGD)):
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), init, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
        fg = (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)
    if s != 1:
        fg = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA if s > 1 else cv2.INTER_LINEAR) > 0.5
    return _main_object(fg)


def learned_box_mask(rgb: np.ndarray, box: tuple[int, int, int, int], segmenter) -> np.ndarray:
    """(H, W) bool: the object inside a user's `box`, from the run's segmenter looking at a square
    around the box, framed as a prepared photo frames its object (the box's longer side `FILL` of it),
    and GrabCut refining its answer; nothing outside the box. The segmenter sees the object as large
    as in its training photos and no clutter beyond the box; where it finds nothing in the box, the
    user's word stands and GrabCut decides from the box alone."""
    import cv2

    h, w = rgb.shape[:2]
    # at GrabCut's working size, so the square around a large photo's box stays small
    s = WORK_SIDE / max(h, w)
    size = work_size(h, w)
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR) if s != 1 else rgb
    x0, y0, x1, y1 = (v * s for v in box)
    side = max(2, round(max(x1 - x0, y1 - y0) / FILL))
    left, top = round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2)
    shift = np.float32([[1, 0, -left], [0, 1, -top]])
    square = cv2.warpAffine(np.ascontiguousarray(small), shift, (side, side), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_REPLICATE)
    p = cv2.warpAffine(segmenter.probability(square), shift, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderValue=0.0)
    inside = np.zeros(p.shape, bool)
    inside[round(y0):max(round(y1), round(y0) + 1), round(x0):max(round(x1), round(x0) + 1)] = True
    p[~inside] = 0.0
    if not (p > 0.5).any():
        return grabcut_mask(rgb, box)
    return learned_mask(rgb, p)


def _looks_like(rgb: np.ndarray, region: np.ndarray, components: int = 5, quantile: float = 0.02) -> np.ndarray:
    """(H, W) bool: pixels whose colour a Gaussian mixture of `region`'s colours explains as well as it
    explains most of the region's own pixels (scikit-learn's GaussianMixture, seeded)."""
    from sklearn.mixture import GaussianMixture

    own = rgb[region].reshape(-1, 3).astype(np.float64)
    rng = np.random.default_rng(0)
    fit = own[rng.choice(len(own), min(len(own), 3000), replace=False)]
    gmm = GaussianMixture(components, covariance_type="full", reg_covar=4.0, random_state=0).fit(fit)
    level = np.quantile(gmm.score_samples(fit), quantile)
    return (gmm.score_samples(rgb.reshape(-1, 3).astype(np.float64)) >= level).reshape(rgb.shape[:2])


def plain_background_mask(rgb: np.ndarray) -> np.ndarray | None:
    """(H, W) bool: what differs from a plain background, or None when the background is not plain.

    On one flat colour the object is simply what differs from it, down to a thin grey leg on white
    that a colour-model cut would give to the background; clutter, backdrops and gradients go to GrabCut."""
    band = max(2, round(0.03 * max(rgb.shape[:2])))
    border = np.concatenate([rgb[:band].reshape(-1, 3), rgb[-band:].reshape(-1, 3),
                             rgb[:, :band].reshape(-1, 3), rgb[:, -band:].reshape(-1, 3)]).astype(np.float32)
    median = np.median(border, 0)
    spread = float(np.quantile(np.linalg.norm(border - median, axis=1), 0.95))
    if spread > PLAIN_SPREAD:
        return None
    distance = np.linalg.norm(rgb.astype(np.float32) - median, axis=-1)
    return distance > max(3 * spread, 2 * PLAIN_SPREAD)


def _shadow(rgb: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """(H, W) bool: foreground pixels that are the background under a shadow.

    A cast shadow dims the surface it falls on without changing its hue, so GrabCut, which sees
    a new colour, keeps it with the object. The background under the object is estimated by
    inpainting it from the pixels around (OpenCV's Telea method); a pixel darker than that estimate
    by a common factor in every channel (brightness and chromaticity distortion, as background
    subtractors test for shadows) is background."""
    import cv2

    if not fg.any() or fg.all():
        return np.zeros_like(fg)
    bg = cv2.inpaint(np.ascontiguousarray(rgb), fg.astype(np.uint8), 5, cv2.INPAINT_TELEA).astype(np.float32) + 1.0
    p = rgb.astype(np.float32) + 1.0
    ratio = (p * bg).sum(-1) / (bg * bg).sum(-1)  # the brightness that best explains the pixel
    chroma = np.linalg.norm(p - ratio[..., None] * bg, axis=-1) / np.linalg.norm(bg, axis=-1)
    shadow = fg & (ratio > 0.25) & (ratio < 0.95) & (chroma < 0.05)
    # A grey object on a lighter grey floor passes the same test everywhere: a "shadow" that
    # would leave little of the object is the object.
    return shadow if (fg & ~shadow).sum() >= 0.25 * fg.sum() else np.zeros_like(fg)


def _main_object(mask: np.ndarray) -> np.ndarray:
    """The largest connected region, with the regions near it that are not specks (a chair's
    legs may be cut off from its seat by a thin shadowless gap)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    main = 1 + int(np.argmax(areas))
    x, y, w, h = (stats[main, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    pad = 0.1 * max(w, h)
    keep = [main]
    for i in range(1, n):
        if i == main or areas[i - 1] < 0.02 * areas[main - 1]:
            continue
        bx, by, bw, bh = (stats[i, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
        if bx < x + w + pad and bx + bw > x - pad and by < y + h + pad and by + bh > y - pad:
            keep.append(i)
    return np.isin(labels, keep)


def object_mask(image: np.ndarray, box=None, name: str = "photo", segmenter=None) -> tuple[np.ndarray, str]:
    """(H, W) bool mask of the object and where it came from ("alpha", "box", "segmenter", "plain
    background" or "segmented"). `segmenter`: the run's `TrainedSegmenter`, if it has one.

    Raises `PhotoError` for a blank photo or when no single object stands out."""
    a = _check(image, name)
    h, w = a.shape[:2]
    # a cut-out (a meaningful share transparent), not a photo with a transparent edge or rounded corners
    if a.shape[2] == 4 and (a[..., 3] < 128).mean() > 0.01 and a[..., 3].max() > 5:
        mask, source = a[..., 3] >= 128, "alpha"
        if box is not None:
            x0, y0, x1, y1 = _check_box(box, w, h, name)
            inside = np.zeros_like(mask)
            inside[y0:y1, x0:x1] = True
            mask &= inside
    else:
        rgb = a[..., :3]
        if float(rgb.reshape(-1, 3).std(0).max()) < 2.0:
            raise PhotoError(f"{name}: the photo is blank (one flat colour): there is no object to search for")
        cleaned = None if box is None else _check_box(box, w, h, name)
        plain = plain_background_mask(rgb) if box is None and segmenter is None else None
        if box is None and segmenter is not None:
            # a photo larger than GrabCut's working size gets its probabilities at that size, not at full size
            width = work_size(h, w)[0] if max(h, w) > WORK_SIDE else None
            mask, source = learned_mask(rgb, segmenter.probability(rgb, width)), "segmenter"
        elif segmenter is not None:
            mask, source = learned_box_mask(rgb, cleaned, segmenter), "box"
        elif plain is not None:
            mask, source = _main_object(plain), "plain background"
        else:
            mask, source = grabcut_mask(rgb, cleaned), "box" if box is not None else "segmented"
    total = int(mask.sum())
    if total < MIN_OBJECT_FRACTION * h * w:
        raise PhotoError(f"{name}: no object found (the {source} mask covers {total} of {h * w} pixels); "
                         f"give a box around the object (--box x0,y0,x1,y1)")
    return mask, source


def _speckled(mask: np.ndarray) -> bool:
    """A mask made of many specks, none of them most of it, as a segmentation of noise is, is no object."""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return True
    areas = stats[1:, cv2.CC_STAT_AREA]
    return n > 50 and areas.max() < 0.5 * areas.sum()


def prepare_photo(image: np.ndarray, size: int, box=None, fill: float = FILL, name: str = "photo",
                  segmenter=None) -> PreparedPhoto:
    """Find the object in `image` (H, W, 3|4) uint8, crop a square around it so its box's longer side
    fills `fill` of the crop, and resize to `size` px; the crop's alpha is the object's mask.
    `box`: optional (x0, y0, x1, y1) in photo pixels around the object, for cluttered photos.
    `segmenter`: the run's photo segmenter, if it has one (see `object_mask`)."""
    import cv2

    if not 0.1 <= fill <= 1.0:
        raise PhotoError(f"{name}: fill must be in [0.1, 1], got {fill}")
    mask, source = object_mask(image, box, name, segmenter)
    if source != "alpha" and _speckled(mask):
        raise PhotoError(f"{name}: no single object stands out (the segmentation is scattered specks, as on noise); "
                         f"give a box around the object (--box x0,y0,x1,y1)")
    a = np.asarray(image)
    h, w = a.shape[:2]
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    side = max(x1 - x0, y1 - y0) / fill
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    framing = Framing(origin=(cx - side / 2, cy - side / 2), scale=size / side, photo_size=(w, h))
    # One affine warp does crop, padding and resize. It samples without averaging, so a photo
    # that shrinks is low-passed first (a Gaussian as wide as the photo pixels one crop pixel spans).
    M = framing.matrix()
    rgb, soft = a[..., :3], mask.astype(np.float32)
    if framing.scale < 1:
        sigma = 0.5 / framing.scale
        rgb, soft = cv2.GaussianBlur(rgb, (0, 0), sigma), cv2.GaussianBlur(soft, (0, 0), sigma)
    crop = cv2.warpAffine(rgb, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(soft, M, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    out = np.dstack([crop, (np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8)])
    return PreparedPhoto(image=out, framing=framing, box=(x0, y0, x1, y1), mask=mask, mask_source=source)


def overlay(image: np.ndarray, framing: Framing, render: np.ndarray, max_side: int = 512) -> np.ndarray:
    """(H', W', 3) uint8: the photo with a render of the crop (S, S, 4) floats (rgb, coverage) laid over
    it where it covers, and its silhouette outlined, at most `max_side` px on the longer side.

    The crop is an affine map of the photo, so warping the crop's render back is the render the
    fitted camera makes in the photo's own pixels."""
    import cv2

    a = np.asarray(image)[..., :3]
    h, w = a.shape[:2]
    s = min(1.0, max_side / max(h, w))
    out_w, out_h = max(1, round(w * s)), max(1, round(h * s))
    photo = cv2.resize(a, (out_w, out_h), interpolation=cv2.INTER_AREA) if s < 1 else a.copy()
    warped = cv2.warpAffine(np.ascontiguousarray(render, np.float32), framing.matrix(s), (out_w, out_h),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=(0, 0, 0, 0))
    cover = np.clip(warped[..., 3:4], 0, 1)
    rgb = (np.clip(warped[..., :3], 0, 1) * 255).astype(np.float32)
    blended = photo.astype(np.float32) * (1 - 0.6 * cover) + rgb * 0.6 * cover
    out = np.clip(blended, 0, 255).astype(np.uint8)
    edge = cv2.morphologyEx((cover[..., 0] > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edge] = (0, 220, 255)
    return out
