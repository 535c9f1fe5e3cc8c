"""`RenderedDataset`: read a DATASET folder (what `assets2vec render` wrote) for training and inspection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from render_core.artifacts import ArtifactError, load_npz, read_header
from render_core.assets.records import AssetRecord, manifest_entry_problem, read_manifest
from render_core.multiview import MANIFEST, REPORT, RenderConfig


@dataclass
class AssetViews:
    """All views of one asset. Shapes: V views of H x W pixels."""

    record: AssetRecord
    rgb: np.ndarray  # (V, H, W, 3) uint8, composited on white, anti-aliased
    alpha: np.ndarray  # (V, H, W) float32 in [0, 1], pixel coverage
    mask: np.ndarray  # (V, H, W) bool, the mesh is at the pixel centre
    depth: np.ndarray  # (V, H, W) float32, z along the view axis, 0 off the mesh
    normals: np.ndarray  # (V, H, W, 3) float32, world space, towards the camera
    c2w: np.ndarray  # (V, 4, 4) float32, OpenGL convention
    intrinsics: np.ndarray  # (3, 3) float32, pixels
    elevation: np.ndarray  # (V,) degrees
    azimuth: np.ndarray  # (V,) degrees

    @property
    def n_views(self) -> int:
        return int(self.rgb.shape[0])


class RenderedDataset:
    """A rendered dataset; `ds[i]` or `ds.load(asset_id)` gives `AssetViews`."""

    def __init__(self, path: str | Path):
        self.root = Path(path)
        self.header = read_header(self.root, "dataset")
        self.config = RenderConfig.from_json(self.header["render"])
        manifest = self.root / MANIFEST
        if not manifest.is_file():
            raise ArtifactError(f"{self.root}: dataset has no {MANIFEST} (was its render interrupted? rerun it to finish)")
        self.records = read_manifest(manifest)
        for r in self.records:
            problem = manifest_entry_problem(manifest, r)
            if problem is not None:
                raise ArtifactError(problem)
        self._index = {r.id: i for i, r in enumerate(self.records)}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def asset_ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def n_views(self) -> int:
        return self.config.rig.total_views

    def __getitem__(self, i: int) -> AssetViews:
        return self.load(self.records[i].id)

    def __iter__(self) -> Iterator[AssetViews]:
        for r in self.records:
            yield self.load(r.id)

    def record(self, asset_id: str) -> AssetRecord:
        if asset_id not in self._index:
            raise KeyError(f"asset {asset_id!r} is not in dataset {self.root}")
        return self.records[self._index[asset_id]]

    def load(self, asset_id: str) -> AssetViews:
        record = self.record(asset_id)
        z = load_npz(self.root / "assets" / f"{asset_id}.npz")
        return AssetViews(
            record=record,
            rgb=z["rgb"],
            alpha=z["alpha"].astype(np.float32) / 255.0 if "alpha" in z else z["mask"].astype(np.float32),
            mask=z["mask"].astype(bool),
            depth=z["depth"],
            normals=z["normals"].astype(np.float32),
            c2w=z["c2w"],
            intrinsics=z["intrinsics"],
            elevation=z["elevation"],
            azimuth=z["azimuth"],
        )

    def report(self) -> dict | None:
        import json

        p = self.root / REPORT
        return json.loads(p.read_text()) if p.is_file() else None
