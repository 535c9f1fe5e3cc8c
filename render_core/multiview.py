"""Render every asset of a library from a camera rig into a DATASET folder.

Layout of a DATASET:
    artifact.json        kind "dataset": render config, rig, source library, seed
    manifest.jsonl       one AssetRecord per rendered asset (counts, normalisation, warnings)
    report.json          last run: rendered / skipped / failed (with reasons)
    assets/<id>.npz      rgb (V,H,W,3) uint8 on white (anti-aliased), alpha (V,H,W) uint8 coverage,
                         mask (V,H,W) uint8 (mesh at the pixel centre), depth (V,H,W) float32
                         (z along the view axis, 0 off the mesh), normals (V,H,W,3) float16
                         (world space, towards the camera), c2w (V,4,4), intrinsics (3,3),
                         elevation (V,), azimuth (V,), record_json (the asset's record)
    thumbs/<id>.png      one view per asset
    contact_sheet.png    a grid of the first assets, for people

Resumable: each asset file is written atomically, a rerun skips assets whose file
exists, and an interrupted run loses at most the asset in flight.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from render_core.artifacts import (
    ArtifactError,
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_json,
    make_header,
    read_header,
    sweep_stale_temps,
    write_header,
)
from render_core.assets.library import Library
from render_core.assets.loaders import AssetLoadError, LoadLimits, load_mesh
from render_core.assets.mesh import MeshData, normalize
from render_core.assets.records import AssetRecord, write_manifest
from render_core.colour import DISPLAY, LINEAR, PIPELINES, linear_to_srgb
from render_core.rig import RigConfig, intrinsics, make_cameras, rig_angles
from render_core.lighting import Lighting, random_lighting

MANIFEST = "manifest.jsonl"
REPORT = "report.json"


@dataclass(frozen=True)
class RenderConfig:
    image_size: int = 64
    rig: RigConfig = field(default_factory=RigConfig)
    lighting: str = "fixed"  # "fixed" or "random" (per asset, from the seed and the asset id)
    seed: int = 0
    up_axis: str = "y"
    # Odd supersampling factor: RGB and alpha average s x s samples per pixel; the centre sample
    # sits exactly on the pixel centre, so mask, depth and normals stay point-sampled and exact.
    supersample: int = 3
    # "linear": shade in linear light and write sRGB, as a camera or Blender does (render_core.colour);
    # "display": shade stored colour values as they are (what a header without this key was rendered with).
    colour: str = LINEAR

    def __post_init__(self):
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise ValueError(f"supersample must be an odd integer >= 1, got {self.supersample}")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image size must be in [16, 1024], got {self.image_size}")
        if self.lighting not in ("fixed", "random"):
            raise ValueError(f"lighting must be 'fixed' or 'random', got {self.lighting!r}")
        if self.seed is None or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.colour not in PIPELINES:
            raise ValueError(f"colour must be one of {PIPELINES}, got {self.colour!r}")

    def to_json(self) -> dict:
        return {"image_size": self.image_size, "rig": self.rig.to_json(), "lighting": self.lighting, "seed": self.seed, "up_axis": self.up_axis, "supersample": self.supersample,
                "colour": self.colour}

    @classmethod
    def from_json(cls, d: dict) -> "RenderConfig":
        return cls(image_size=d["image_size"], rig=RigConfig.from_json(d["rig"]), lighting=d["lighting"], seed=d["seed"], up_axis=d["up_axis"], supersample=d.get("supersample", 1),
                   colour=d.get("colour", DISPLAY))


def asset_rng(seed: int, asset_id: str) -> np.random.Generator:
    """A stream that depends only on (seed, asset id): results do not depend on order or resumption."""
    digest = int.from_bytes(hashlib.sha256(asset_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), digest]))


class MultiviewRenderer:
    """Renders a normalised `MeshData` from every camera of a rig in one batched call."""

    def __init__(self, config: RenderConfig, device: torch.device | str = "cpu"):
        from render_core.shading import make_renderer  # PyTorch3D loads only where something renders

        self.config = config
        self.device = torch.device(device)
        self.cameras, self.c2w, self.elev, self.azim = make_cameras(config.rig, self.device)  # the fixed rings
        self.K = intrinsics(config.rig.fov_deg, config.image_size)
        self.renderer = make_renderer(self.cameras, config.image_size * config.supersample, self.device)

    # Rendered samples per chunk of views: bounds peak memory (fragments, shading) at large sizes.
    max_samples_per_chunk = 6_000_000

    def cameras_for(self, mesh: MeshData):
        """(cameras, c2w, elev, azim) for this mesh: the fixed rings, then the floor ring at its lowest y."""
        if not self.config.rig.floor_views:
            return self.cameras, self.c2w, self.elev, self.azim
        return make_cameras(self.config.rig, self.device, floor=float(mesh.verts[:, 1].min()))

    @torch.no_grad()
    def render(self, mesh: MeshData, lighting: Lighting = Lighting()) -> dict[str, np.ndarray]:
        cameras, c2w, elev, azim = self.cameras_for(mesh)
        V = len(elev)
        per_view = (self.config.image_size * self.config.supersample) ** 2
        step = max(1, self.max_samples_per_chunk // per_view)
        chunks = [self.render_views(mesh, lighting, cameras[list(range(i, min(i + step, V)))]) for i in range(0, V, step)]
        out = {k: np.concatenate([c[k] for c in chunks]) for k in ("rgb", "alpha", "mask", "depth", "normals")}
        out.update(c2w=c2w.numpy().astype(np.float32), intrinsics=self.K, elevation=elev, azimuth=azim)
        return out

    def render_views(self, mesh: MeshData, lighting: Lighting, cameras) -> dict[str, np.ndarray]:
        """rgb, alpha, mask, depth and normals of `mesh` seen from PyTorch3D `cameras` (any, not only the rig's)."""
        from render_core import shading

        V, s, H = len(cameras), self.config.supersample, self.config.image_size
        linear = self.config.colour == LINEAR
        meshes = mesh.to_meshes(self.device, self.config.colour).extend(V)
        images, fragments = self.renderer(meshes, cameras=cameras, lights=lighting.lights(self.device))
        hit = fragments.pix_to_face[..., :1] >= 0  # (V, sH, sW, 1)
        # Samples average in linear light (a pixel collects light), then the pixel is encoded.
        rgb = images[..., :3].clamp(0, 1).reshape(V, H, s, H, s, 3).mean((2, 4))  # (V, H, W, 3)
        rgb = linear_to_srgb(rgb) if linear else rgb
        alpha = hit.float().reshape(V, H, s, H, s).mean((2, 4))  # (V, H, W)
        c = s // 2  # the centre sample of each block is the native pixel centre
        p2f = fragments.pix_to_face[:, c::s, c::s]  # (V, H, W, K)
        zbuf = fragments.zbuf[:, c::s, c::s, 0]
        mask = p2f[..., 0] >= 0  # (V, H, W)
        depth = torch.where(mask, zbuf, torch.zeros_like(zbuf))
        normals = shading.face_normals_towards_camera(meshes, p2f, cameras)
        return {
            "rgb": (rgb * 255 + 0.5).to(torch.uint8).cpu().numpy(),
            "alpha": (alpha * 255 + 0.5).to(torch.uint8).cpu().numpy(),
            "mask": mask.to(torch.uint8).cpu().numpy(),
            "depth": depth.float().cpu().numpy(),
            "normals": normals.to(torch.float16).cpu().numpy(),
        }


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def thumbnail_view(rig: RigConfig) -> int:
    """The view of the middle ring closest to a three-quarter front view (azimuth 35 deg)."""
    elev, azim = rig_angles(rig)
    middle = rig.elevations[len(rig.elevations) // 2]
    off = np.abs((azim - 35.0 + 180.0) % 360.0 - 180.0) + 1000.0 * (elev != middle)
    return int(np.argmin(off))


def _check_or_write_header(out: Path, config: RenderConfig, library: Library, device, shard=None) -> None:
    if (out / "artifact.json").exists():
        header = read_header(out, "dataset")
        if header.get("shard") != (str(shard) if shard else None):
            raise ArtifactError(f"{out}: holds shard {header.get('shard') or '(all)'} of a render, not "
                                f"{shard or '(all)'}; render each shard into its own folder")
        if header.get("source_library") != str(library.root.resolve()):
            raise ArtifactError(
                f"{out}: already holds a dataset rendered from {header.get('source_library')}, "
                f"not {library.root.resolve()}; render into a new folder"
            )
        if RenderConfig.from_json(header["render"]).to_json() != config.to_json():
            raise ArtifactError(
                f"{out}: already holds a dataset rendered with different settings "
                f"({header.get('render')}); render into a new folder or delete it"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_header(
        out,
        make_header(
            "dataset",
            producer="assets2vec render",
            seed=config.seed,
            render=config.to_json(),
            source_library=str(library.root.resolve()),
            **({"shard": str(shard)} if shard else {}),
            camera_convention="c2w: OpenGL/nerfstudio (camera looks along -Z, +Y up); intrinsics in pixels, centres at +0.5",
        ),
    )


def render_library(
    library: Library,
    out: str | Path,
    config: RenderConfig = RenderConfig(),
    limits: LoadLimits = LoadLimits(),
    device: torch.device | str = "cpu",
    progress: bool = True,
    sheet_count: int = 48,
    shard=None,
) -> dict:
    """Render every asset of `library` into `out`; returns the run report (also written to report.json).
    `shard` (a `render_core.shards.Shard`): only the assets it owns, for one of several workers."""
    out = Path(out)
    _check_or_write_header(out, config, library, device, shard)
    sweep_stale_temps(out)  # left by a render killed mid-write
    records = library.records if shard is None else [r for r in library.records if shard.owns(r.id)]
    (out / "assets").mkdir(exist_ok=True)
    (out / "thumbs").mkdir(exist_ok=True)
    renderer = MultiviewRenderer(config, device)
    thumb_idx = thumbnail_view(config.rig)

    rendered, skipped, failed, warnings = [], [], [], []
    t0 = time.time()
    interrupted = False
    bar = tqdm(records, desc="render" if shard is None else f"render {shard}", unit="asset", disable=not progress)
    try:
        for record in bar:
            target = out / "assets" / f"{record.id}.npz"
            if target.exists() and _read_record(target) is not None:
                skipped.append(record.id)
                continue
            try:
                mesh = load_mesh(library.path_of(record), limits)
                mesh, norm = normalize(mesh, config.up_axis)
                lighting = random_lighting(asset_rng(config.seed, record.id)) if config.lighting == "random" else Lighting()
                views = renderer.render(mesh, lighting)
            except AssetLoadError as exc:
                failed.append({"id": record.id, "path": record.path, "error": exc.reason})
                bar.set_postfix(failed=len(failed))
                continue
            except Exception as exc:  # one asset must never stop the batch; Ctrl-C still does
                failed.append({"id": record.id, "path": record.path, "error": f"{type(exc).__name__}: {exc}"})
                bar.set_postfix(failed=len(failed))
                continue
            done = replace(
                record,
                n_verts=mesh.n_verts,
                n_faces=mesh.n_faces,
                meta={**record.meta, "normalization": norm, "warnings": mesh.warnings, "lighting": asdict(lighting)},
            )
            if mesh.warnings:
                warnings.append({"id": record.id, "warnings": mesh.warnings})
            atomic_write_bytes(out / "thumbs" / f"{record.id}.png", _png(views["rgb"][thumb_idx]))
            # The asset file goes last: its presence is what marks the asset done.
            atomic_save_npz(target, **views, record_json=np.array(json.dumps(done.to_json(), sort_keys=True)))
            rendered.append(record.id)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        elapsed = time.time() - t0
        records = collect_records(out)
        write_manifest(out / MANIFEST, records)
        report = {
            "rendered": len(rendered),
            "skipped": len(skipped),
            "failed": failed,
            "warnings": warnings,
            "total_in_dataset": len(records),
            "seconds": round(elapsed, 2),
            "assets_per_second": round(len(rendered) / elapsed, 3) if elapsed > 0 else None,
            "interrupted": interrupted,
        }
        atomic_write_json(out / REPORT, report)
    if interrupted:
        raise KeyboardInterrupt
    if records:
        from render_core.contact_sheet import dataset_contact_sheet

        atomic_write_bytes(out / "contact_sheet.png", _png(dataset_contact_sheet(out, records[:sheet_count])))
    return report


def collect_records(out: Path) -> list[AssetRecord]:
    """Records of every finished asset file in a dataset folder, sorted by id."""
    records = (_read_record(p) for p in sorted((out / "assets").glob("*.npz")))
    return [r for r in records if r is not None]


def _read_record(path: Path) -> AssetRecord | None:
    """The record stored in an asset file, or None if the file is unreadable (then it is re-rendered)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return AssetRecord.from_json(json.loads(str(z["record_json"])))
    except Exception:
        return None
