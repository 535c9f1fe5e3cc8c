"""The layout of a SCENES folder, written and read in one place.

    images/000000.png     RGB
    labels/000000.npz     depth, instance, semantic maps
    labels/000000.json    the scene's record (seed, camera, lights, objects); written last, so
                          its presence marks the scene done
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


def scene_name(index: int) -> str:
    return f"{int(index):06d}"


def image_path(folder: str | Path, index: int) -> Path:
    return Path(folder) / "images" / f"{scene_name(index)}.png"


def maps_path(folder: str | Path, index: int) -> Path:
    return Path(folder) / "labels" / f"{scene_name(index)}.npz"


def record_path(folder: str | Path, index: int) -> Path:
    return Path(folder) / "labels" / f"{scene_name(index)}.json"


def index_of_image(name: str) -> int | None:
    """The scene index of an image file name like "000012.png" (any folder), or None."""
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None


def done_indices(folder: str | Path) -> list[int]:
    """Indices of the finished scenes, ascending."""
    return sorted(int(p.stem) for p in (Path(folder) / "labels").glob("*.json") if p.stem.isdigit())


def has_scene(folder: str | Path, index: int) -> bool:
    return record_path(folder, index).is_file()


def read_record(folder: str | Path, index: int) -> dict:
    return json.loads(record_path(folder, index).read_text("utf-8"))


def read_records(folder: str | Path) -> Iterator[dict]:
    """Every finished scene's record, in index order."""
    for i in done_indices(folder):
        yield read_record(folder, i)
