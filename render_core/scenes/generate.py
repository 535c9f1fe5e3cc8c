"""Generate a SCENES folder: labelled randomized scenes of catalog assets, resumable.

Layout:
    artifact.json         kind "scenes": config, seed, semantic classes, asset pool digest, selection
    images/000000.png     RGB
    labels/000000.npz     depth (H,W) float32 (view-axis z in metres, 0 where nothing),
                          instance (H,W) uint16 (0: no object; values match the JSON's objects),
                          semantic (H,W) uint16 (index into artifact.json's semantic_classes)
    labels/000000.json    the scene: seed, camera (eye, target, fov, K, c2w), lights (the rasterizer's; a
                          Blender scene's world and lights are under "blender"), floor, objects
                          (asset id, class, pose, scale, box, visible fraction, RLE mask), dropped assets
    coco.json             COCO instances (boxes + RLE masks, one category per object class)
    report.json           last run: scenes made/skipped, assets that failed to load, scenes/s
    preview.png           the first scenes with masks and boxes drawn

A scene's JSON is written last, so its presence marks the scene done; a rerun skips finished
scenes, and an interrupted run loses at most the scene in flight. A scene that drew an asset whose
mesh does not load is not written (the run lists it under failed_scenes), so once the file is fixed
a rerun makes it as its seed says instead of keeping it without that asset. Scene i's seed is
derived from (--seed, i) alone, so any subset of scenes can be (re)made in any order with the same result.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from render_core.artifacts import (
    ArtifactError,
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_json,
    load_npz,
    make_header,
    read_header,
    sweep_stale_temps,
    write_header,
)
from render_core.assets.loaders import LoadLimits, load_mesh
from render_core.assets.mesh import MeshData, normalize
from render_core.colour import DISPLAY
from render_core.scenes.compose import STUFF_CLASSES, SceneAsset, compose
from render_core.scenes.config import SceneConfig, SceneConfigError
from render_core.scenes.folder import done_indices, has_scene, image_path, maps_path, read_record, record_path, scene_name
from render_core.scenes.labels import annotate, coco, read_scene_records
from render_core.scenes.overlay import overlay, sheet
from render_core.scenes.render import SceneRenderer

REPORT = "report.json"


def scene_seed(seed: int, index: int) -> int:
    """The seed of scene `index` of a run seeded with `seed` (0 is a seed like any other)."""
    # 64 bits: with 32, two of 100k scenes would share a seed with probability ~0.7 (birthday bound).
    hi, lo = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return (int(hi) << 32) | int(lo)


def semantic_classes(pool: list[SceneAsset]) -> list[str]:
    return list(STUFF_CLASSES) + sorted({a.label for a in pool})


def normalise_weights(pool: list[SceneAsset], weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.full(len(pool), 1.0 / len(pool))
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(pool),):
        raise ValueError(f"weights: {w.shape[0] if w.ndim == 1 else w.shape} values for {len(pool)} assets")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError("weights: every weight must be a finite number >= 0")
    if w.sum() <= 0:
        raise ValueError("weights: all zero over the chosen assets; nothing could be drawn")
    return w / w.sum()


def footprint_at(asset: SceneAsset, height: float) -> float:
    """Floor area (m^2) of `asset` scaled to `height`, from its bounding box when known."""
    if asset.extent is None:
        return 0.25 * height * height  # unknown proportions: a slender object, to stay permissive
    from render_core.assets.mesh import UP_AXES

    ex, ey, ez = np.abs(UP_AXES.get(asset.up_axis, UP_AXES["y"]) @ np.asarray(asset.extent))  # to +Y up
    if ey <= 0:
        return 0.25 * height * height
    return float((ex / ey * height) * (ez / ey * height))


def check_fits(pool: list[SceneAsset], cfg: SceneConfig) -> None:
    """Refuse, before rendering, a config whose smallest scene cannot fit on its largest floor."""
    if not pool:
        raise SceneConfigError("no assets to compose scenes from (the selection is empty)")
    smallest = min(footprint_at(a, cfg.size_range(a.category)[0]) for a in pool)
    side = float(np.sqrt(smallest)) + cfg.placement.margin  # each footprint keeps the margin free around it
    # Centres stay in the central `area` of the floor, so footprints fill at most that square
    # grown by one footprint, and never more than the floor itself.
    usable = min(float(cfg.floor.size[1]), cfg.placement.area * float(cfg.floor.size[1]) + side) ** 2
    need = int(cfg.assets_per_scene[0]) * side * side
    if need > usable:
        raise SceneConfigError(
            f"assets_per_scene: {int(cfg.assets_per_scene[0])} assets need at least {need:.2f} m^2 of floor "
            f"(smallest footprint {smallest:.3f} m^2 plus the {cfg.placement.margin:g} m margin), more than the "
            f"{usable:.2f} m^2 usable on a {cfg.floor.size[1]:g} m floor with placement.area {cfg.placement.area:g}; "
            "lower assets_per_scene or raise floor.size / placement.area")


class MeshCache:
    """Normalised meshes by asset id, least recently used dropped first (flat memory over long runs);
    load failures are remembered so a broken file is parsed once."""

    def __init__(self, limits: LoadLimits = LoadLimits(), size: int = 64):
        self.limits, self.size = limits, size
        self.meshes: OrderedDict[str, MeshData] = OrderedDict()
        self.failed: dict[str, str] = {}

    def __call__(self, asset: SceneAsset) -> MeshData:
        if asset.id in self.failed:
            raise ValueError(self.failed[asset.id])
        if asset.id in self.meshes:
            self.meshes.move_to_end(asset.id)
            return self.meshes[asset.id]
        try:
            mesh, _ = normalize(load_mesh(asset.path, self.limits), asset.up_axis)
        except Exception as exc:
            self.failed[asset.id] = str(exc)
            raise
        self.meshes[asset.id] = mesh
        if len(self.meshes) > self.size:
            self.meshes.popitem(last=False)
        return mesh


class AssetsFailedToLoad(RuntimeError):
    """A scene drew assets whose meshes do not load; it is reported, not written."""

    def __init__(self, dropped: list[dict]):
        self.dropped = dropped
        super().__init__("not written, so a rerun makes it once the mesh loads: "
                         + "; ".join(f"asset {d['asset_id']} {d['reason']}" for d in dropped))


def check_loadable(pool: list[SceneAsset], weights: np.ndarray, load: Callable[[SceneAsset], MeshData]) -> None:
    """Refuse, before anything is written, a pool none of whose drawable meshes loads: every scene
    would fail. Stops at the first mesh that loads (one load when the library is sound)."""
    tried = []
    for asset, w in zip(pool, weights):
        if w <= 0:
            continue
        try:
            load(asset)
            return
        except Exception as exc:  # any reason a mesh does not load counts the same here
            tried.append((asset, exc))
    try:
        where = os.path.commonpath([str(a.path) for a, _ in tried])
    except ValueError:  # relative and absolute paths mixed
        where = str(tried[0][0].path.parent)
    first, exc = tried[0]
    raise ValueError(f"{where}: none of the {len(tried)} assets' meshes loads (first, {first.id}: {exc}); "
                     "was the library moved or deleted? Restore it or choose other assets")


# Version 2 added category, metric height (both set object heights) and the mesh file name; folders
# whose header has no version were made with version 1 and are compared with it, so they still resume.
POOL_DIGEST_VERSION = 2


def pool_digest(pool: list[SceneAsset], weights: np.ndarray, version: int = POOL_DIGEST_VERSION) -> str:
    """A digest of everything about the pool that a folder's scenes depend on."""
    h = hashlib.sha256()
    for a, w in zip(pool, weights):
        line = f"{a.id}\t{a.label}\t{a.up_axis}\t{w:.12g}"
        if version >= 2:
            metric = "none" if a.metric_height is None else f"{a.metric_height:.12g}"
            line += f"\t{a.category}\t{metric}\t{Path(a.path).name}"
        h.update((line + "\n").encode("utf-8"))
    return h.hexdigest()


_UNSET = object()


def _resume_config(config: dict | None) -> dict | None:
    """A header's config without the settings that change speed but not scenes (blender.threads)."""
    if not isinstance(config, dict) or not isinstance(config.get("blender"), dict):
        return config
    return {**config, "blender": {k: v for k, v in config["blender"].items() if k != "threads"}}


def _config_difference(old, new, prefix: str = "") -> str | None:
    """The first setting that differs between two header configs, said for a person, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            d = _config_difference(old.get(k, _UNSET), new.get(k, _UNSET), f"{prefix}{k}.")
            if d:
                return d
        return None
    if old == new:
        return None
    key = prefix.rstrip(".")
    if key == "colour":  # absent: the rasterizer's colour pipeline before the setting existed (to_json omits it)
        was, now = (DISPLAY if v is _UNSET else v for v in (old, new))
        return (f"colour: its scenes were shaded with colour {was!r} and this config says {now!r}; add "
                f"`colour: {was}` to the config to resume it")
    said = lambda v: "not set" if v is _UNSET else repr(v)  # noqa: E731
    return f"{key}: {said(old)} in the folder, {said(new)} now"


def _check_or_write_header(out: Path, header: dict, pool_digests: dict[int, str]) -> None:
    """Write `header` into a new folder, or check that an existing one was made the same way.
    `pool_digests`: this pool's digest by version, for folders made before the current one."""
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: is a file; scenes need a folder")
    if not (out / "artifact.json").exists() and (out / "labels").exists():
        raise ArtifactError(f"{out}: holds labels but no artifact.json (not a scenes folder of ours); use a new folder")
    if (out / "artifact.json").exists():
        old = read_header(out, "scenes")
        new = {**header, "pool_digest": pool_digests.get(old.get("pool_digest_version", 1))}
        for key in ("renderer", "seed", "config", "pool_digest", "semantic_by"):
            if key == "config":
                diff = _config_difference(_resume_config(old.get("config")), _resume_config(new.get("config")))
                if diff:
                    raise ArtifactError(f"{out}: already holds scenes made with a different config ({diff}); "
                                        "generate into a new folder or delete it")
            elif old.get(key) != new.get(key):
                raise ArtifactError(f"{out}: already holds scenes made with a different {key} "
                                    f"({old.get(key)!r}); generate into a new folder or delete it")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_header(out, header)


def _png(image: np.ndarray | Image.Image) -> bytes:
    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format="PNG")
    return buf.getvalue()


RENDERERS = ("raster", "blender")


def generate_scenes(pool: list[SceneAsset], out: str | Path, n: int, seed: int, cfg: SceneConfig,
                    weights: np.ndarray | None = None, selection: dict | None = None,
                    device: torch.device | str = "cpu", progress: bool = True, preview: int = 8,
                    on_scene: Callable[[int, int], None] | None = None, renderer: str = "raster") -> dict:
    """Make scenes 0..n-1 in `out` (skipping finished ones); returns the run report.
    `renderer`: "raster" (PyTorch3D, fast) or "blender" (Cycles after physics; `render_core.scenes.blender`).
    `on_scene(done, n)` is called after each scene (for progress displays other than the bar)."""
    if renderer not in RENDERERS:
        raise ValueError(f"--renderer: must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"--n: need at least one scene, got {n!r}")
    if seed is None or int(seed) < 0:
        raise ValueError(f"--seed: must be a non-negative integer, got {seed!r}")
    check_fits(pool, cfg)
    w = normalise_weights(pool, weights)
    cache = MeshCache()
    check_loadable(pool, w, cache)
    classes = semantic_classes(pool)
    semantic_of = {name: i for i, name in enumerate(classes)}
    out = Path(out)
    if renderer == "blender":
        from render_core.scenes.blender import BlenderSceneRenderer

        scene_renderer = BlenderSceneRenderer(cfg)  # before the header: without Blender, nothing is written
        extra = {"renderer": "blender"}
    else:
        scene_renderer, extra = SceneRenderer(cfg.image_size, cfg.supersample, device, cfg.colour), {}
    _check_or_write_header(out, make_header(
        "scenes", producer="assets2vec scenes generate", seed=int(seed), config=cfg.to_json(renderer), **extra,
        semantic_by=cfg.semantic_by, semantic_classes=classes, first_object_class=len(STUFF_CLASSES),
        pool_size=len(pool), pool_digest=pool_digest(pool, w), pool_digest_version=POOL_DIGEST_VERSION,
        selection=selection or {},
        camera_convention="c2w: OpenGL (camera looks along -Z, +Y up); K in pixels, pixel centres at +0.5; "
                          "depth is z along the view axis in metres"), {v: pool_digest(pool, w, v) for v in range(1, POOL_DIGEST_VERSION + 1)})
    image_path(out, 0).parent.mkdir(exist_ok=True)
    record_path(out, 0).parent.mkdir(exist_ok=True)
    sweep_stale_temps(out)  # left by a run killed mid-write
    made, skipped, failed_scenes = [], [], []
    dropped_assets: dict[str, str] = {}
    no_space = fell = 0
    t0 = time.time()
    interrupted = False
    bar = tqdm(range(n), desc="scenes", unit="scene", disable=not progress)
    try:
        for i in bar:
            if has_scene(out, i):
                skipped.append(i)
                continue
            s = scene_seed(seed, i)
            try:
                scene, maps, objects = _make_scene(i, s, pool, w, cfg, cache, semantic_of, scene_renderer, classes)
            except AssetsFailedToLoad as exc:
                dropped_assets.update((d["asset_id"], d["reason"]) for d in exc.dropped)
                failed_scenes.append({"index": i, "seed": s, "error": str(exc),
                                      "failed_assets": sorted({d["asset_id"] for d in exc.dropped})})
                continue
            except Exception as exc:  # one scene must not stop the batch; Ctrl-C still does
                failed_scenes.append({"index": i, "seed": s, "error": f"{type(exc).__name__}: {exc}"})
                continue
            for d in scene.dropped:
                if d["reason"].startswith("fell"):
                    fell += 1
                else:
                    no_space += 1
            _write_scene(out, i, s, scene, maps, objects, cfg)
            made.append(i)
            if on_scene is not None:
                on_scene(i + 1, n)
            bar.set_postfix(scenes_per_s=f"{len(made) / max(time.time() - t0, 1e-9):.2f}", dropped=len(dropped_assets))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        elapsed = time.time() - t0
        report = {
            "made": len(made), "skipped": len(skipped), "total_in_folder": len(done_indices(out)),
            "failed_scenes": failed_scenes,
            "failed_assets": [{"asset_id": k, "error": v} for k, v in sorted(dropped_assets.items())],
            "dropped_for_floor_space": no_space,  # drawn assets left out because no free spot was found
            **({"fell_while_settling": fell} if renderer == "blender" else {}),
            "seconds": round(elapsed, 2),
            "scenes_per_second": round(len(made) / elapsed, 3) if elapsed > 0 and made else None,
            "interrupted": interrupted,
        }
        _write_summaries(out, report)
    if interrupted:
        raise KeyboardInterrupt
    done = done_indices(out)
    if done:
        atomic_write_bytes(out / "preview.png", _png(sheet([scene_overlay(out, i) for i in done[:preview]])))
    return report


def _make_scene(i: int, s: int, pool, w, cfg: SceneConfig, cache, semantic_of, renderer, classes):
    """(scene, rendered maps, object annotations) of scene `i` drawn with seed `s`; raises
    `AssetsFailedToLoad` before rendering when a drawn asset's mesh does not load."""
    scene = compose(i, s, pool, w, cfg, cache, semantic_of)
    failed = [d for d in scene.dropped if d["reason"].startswith("failed to load")]
    if failed:
        raise AssetsFailedToLoad(failed)
    maps = renderer.render(scene)
    return scene, maps, annotate(scene, maps, classes, cfg.min_visible_pixels)


def _write_scene(out: Path, i: int, s: int, scene, maps, objects, cfg: SceneConfig) -> None:
    """The scene's image, maps and record; the record last, since it marks the scene done."""
    record = {
        "index": i, "seed": s, "image": f"{scene_name(i)}.png", "width": cfg.image_size, "height": cfg.image_size,
        "camera": {**scene.camera.to_json(), "K": maps["K"].tolist(), "c2w": maps["c2w"].tolist()},
        "lights": [light.to_json() for light in scene.lights], "ambient": scene.ambient,
        "background": list(scene.background), "floor_size": scene.floor_size,
        "objects": objects, "dropped": scene.dropped,
    }
    if "blender" in maps:  # what Blender drew, and how far its labels are from the rasterizer's
        # Blender lights the scene with its own world and lights (under "blender"), not the lights and
        # ambient sampled for the rasterizer; the background it does show, to camera rays leaving the room.
        del record["lights"], record["ambient"]
        record.update(blender=maps["blender"], label_check=maps["label_check"])
    atomic_write_bytes(image_path(out, i), _png(maps["rgb"]))
    atomic_save_npz(maps_path(out, i), depth=maps["depth"], instance=maps["instance"], semantic=maps["semantic"])
    atomic_write_json(record_path(out, i), record)


def _write_summaries(out: Path, report: dict) -> None:
    """The run report and the COCO file of every scene in the folder (also after Ctrl-C)."""
    atomic_write_json(out / REPORT, report)
    header = read_header(out, "scenes")
    atomic_write_json(out / "coco.json", coco(read_scene_records(out), header["semantic_classes"], header["first_object_class"]))


def scene_overlay(folder: str | Path, index: int) -> Image.Image:
    """Scene `index` of a SCENES folder with its masks, boxes and labels drawn."""
    record = read_record(folder, index)
    rgb = np.asarray(Image.open(image_path(folder, index)).convert("RGB"))
    return overlay(rgb, load_npz(maps_path(folder, index))["instance"], record["objects"])
