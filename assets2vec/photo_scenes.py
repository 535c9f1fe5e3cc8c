"""One-asset scenes of a run's assets, cut as photos frame their object: training photos for the segmenter.

A composed photo (`assets2vec.photo_segmenter.Composer`) pastes a render over a background drawn in
2D: it teaches what the catalog's objects look like against anything else, but the background never
recedes in perspective, and the clutter is never lit, shadowed or scaled as the object is. A scene of
the scene generator (`render_core.scenes`) is a small room: a floor and walls in perspective, the
asset standing on the floor among primitives of its own scale, one set of lights on all of it. The
segmenter is fine-tuned on a mix of both (`SegmenterConfig.scenes`).

Each scene holds one asset; it is cut to squares that frame the asset as the photos a user searches
with do (its box 25-80 % of the side, up to 15 % off-centre), with the asset's visible pixels as the mask.
"""

from __future__ import annotations

import numpy as np

# The scene generator's defaults frame a room with several assets from afar; photos of one object
# are taken closer and lower, in rooms with more on the floor. Checked by `render_core.scenes.config`.
SCENE_CONFIG = {
    "image_size": 256,
    "assets_per_scene": [1, 1],
    "min_visible_pixels": 16,
    "floor": {"size": [4.0, 5.0], "walls": 2},
    "placement": {"area": 0.3},
    "clutter": {"count": [3, 8], "size": [0.12, 0.45]},
    "camera": {"distance": [1.6, 3.6], "elevation_deg": [0, 50], "azimuth_deg": [-60, 60], "fov_deg": [25, 60],
               "target_jitter": 0.15},
}
BOX = (0.25, 0.8)
"""the asset's box's longer side, as a share of the crop's side"""
OFFSET = 0.15
"""the asset's centre is at most this share of the crop's side off its centre"""
MIN_PIXELS = 150
"""an asset seen by fewer pixels is too small to be cut out as a photo of it"""


def run_pool(run, failed: list | None = None) -> list:
    """The scene generator's assets (`render_core.scenes.compose.SceneAsset`) for an opened `Run`: the
    meshes its dataset was rendered from. An asset missing from the dataset's manifest is appended to
    `failed` as (asset id, reason) and left out."""
    from pathlib import Path

    from assets2vec.catalog.scene_pool import scene_asset
    from render_core.dataset import RenderedDataset

    dataset = RenderedDataset(run.dataset)
    library = Path(dataset.header["source_library"])
    pool = []
    for asset_id in run.asset_ids:
        try:
            rec = dataset.record(asset_id)
        except KeyError as exc:
            if failed is None:
                raise
            failed.append((asset_id, str(exc)))
            continue
        pool.append(scene_asset(rec, library, rec.category, "asset"))
    return pool


def _cut(image: np.ndarray, mask: np.ndarray, box: list[int], size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size, 3) uint8 crop of `image` and the (size, size) bool crop of `mask` around the
    object's `box` [x, y, w, h], framed at random within `BOX` and `OFFSET`."""
    import cv2

    x, y, w, h = box
    side = max(w, h) / rng.uniform(*BOX)
    cx = x + w / 2 + rng.uniform(-OFFSET, OFFSET) * side
    cy = y + h / 2 + rng.uniform(-OFFSET, OFFSET) * side
    s = size / side
    M = np.float32([[s, 0, -s * (cx - side / 2)], [0, s, -s * (cy - side / 2)]])
    # Shrinking without a blur first would alias the floor's patterns into textures no camera makes.
    src = cv2.GaussianBlur(image, (0, 0), 0.5 / s) if s < 1 else image
    crop = cv2.warpAffine(src, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = cv2.warpAffine(mask.astype(np.float32), M, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return crop, m > 0.5


def scene_crops(pool: list, n: int, seed: int, size: int, crops: int = 2, device="cpu", progress: bool = True,
                log=print, config: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (M, size, size, 3) uint8, masks (M, size, size) bool, scene index (M,) int) from
    scenes 0..n-1 of `pool` drawn with `seed`, `crops` per scene; `config`: the scene generator's
    config (`SCENE_CONFIG` by default). A scene whose asset is cut by the
    frame, hidden to fewer than `MIN_PIXELS`, or whose mesh does not load gives none (so M may be 0);
    the meshes that do not load are named in one line."""
    from tqdm.auto import tqdm

    from render_core.scenes.compose import compose
    from render_core.scenes.config import config_from_dict
    from render_core.scenes.generate import MeshCache, check_fits, check_loadable, normalise_weights, scene_seed, semantic_classes
    from render_core.scenes.labels import box_of
    from render_core.scenes.render import SceneRenderer

    cfg = config_from_dict(SCENE_CONFIG if config is None else config)
    check_fits(pool, cfg)
    weights = normalise_weights(pool, None)
    cache = MeshCache(size=len(pool))  # every asset is drawn again and again: keep them all
    check_loadable(pool, weights, cache)
    semantic_of = {name: i for i, name in enumerate(semantic_classes(pool))}
    renderer = SceneRenderer(cfg.image_size, cfg.supersample, device, cfg.colour)
    images, masks, index = [], [], []
    for i in tqdm(range(n), desc="segmenter scenes", unit="scene", disable=not progress):
        s = scene_seed(seed, i)
        scene = compose(i, s, pool, weights, cfg, cache, semantic_of)
        assets = [o for o in scene.objects if o.asset is not None]
        if len(assets) != 1:  # its mesh did not load, or found no floor space
            continue
        maps = renderer.render(scene)
        mask = maps["instance"] == assets[0].instance
        box = box_of(mask)
        if box is None or mask.sum() < MIN_PIXELS:
            continue
        x, y, w, h = box
        H, W = mask.shape
        if x == 0 or y == 0 or x + w == W or y + h == H:  # cut by the frame: not a photo of it
            continue
        rng = np.random.default_rng(s)
        for _ in range(crops):
            crop, m = _cut(maps["rgb"], mask, box, size, rng)
            images.append(crop)
            masks.append(m)
            index.append(i)
    if cache.failed:
        shown = "; ".join(f"{k}: {v}" for k, v in list(cache.failed.items())[:5])
        log(f"segmenter scenes: {len(cache.failed)} asset(s) left out, their meshes could not be read ({shown})")
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), bool), np.zeros(0, np.int64)
    return np.stack(images), np.stack(masks), np.asarray(index)
