"""`AssetRecord` and the JSON Lines manifest that lists a library's or dataset's assets."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterable

from render_core.artifacts import atomic_write_text

_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class AssetRecord:
    id: str  # stable, filename-safe
    path: str  # mesh file, POSIX path relative to the library root
    category: str
    family: str | None = None  # procedural family, None for ingested files
    attributes: dict[str, str] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)  # generator parameters (procedural only)
    n_verts: int | None = None
    n_faces: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "AssetRecord":
        known = {k: obj[k] for k in cls.__dataclass_fields__ if k in obj}
        return cls(**known)


def safe_id(text: str) -> str:
    """A filename-safe id fragment: anything outside [A-Za-z0-9_.-] becomes '_'."""
    out = _ID_SAFE.sub("_", text).strip("._")
    return out or "asset"


def manifest_entry_problem(manifest: Path, record: AssetRecord) -> str | None:
    """Why entry `record` of a library's or dataset's `manifest` is unsafe to use, or None when it is fine.

    A manifest is user data: ids become file names (a dataset's assets/<id>.npz, thumbs/<id>.png) and
    paths are opened inside the library, so an id must be a safe file name and a path relative, without
    '..'. This is the check on the text alone; a library also resolves each path (a link may leave it)."""
    if not isinstance(record.id, str) or safe_id(record.id) != record.id:
        return f"{manifest}: asset id {record.id!r} is not a safe file name"
    path = record.path
    if not isinstance(path, str) or not path.strip():
        return f"{manifest}: asset {record.id!r} has no usable mesh path ({path!r})"
    if "\x00" in path:
        return f"{manifest}: asset {record.id!r} has a NUL byte in its path ({path!r})"
    if (PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute()
            or ".." in PurePosixPath(path.replace("\\", "/")).parts):
        return (f"{manifest}: asset {record.id!r} has mesh path {path!r}, which points outside the library "
                "(paths must be relative to the library, without '..')")
    return None


def write_manifest(path: str | Path, records: Iterable[AssetRecord]) -> None:
    lines = [json.dumps(r.to_json(), sort_keys=True) for r in records]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_manifest(path: str | Path) -> list[AssetRecord]:
    records = []
    try:
        text = Path(path).read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); not a library manifest") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(AssetRecord.from_json(json.loads(line)))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{path}:{lineno}: bad manifest line ({type(exc).__name__}: {exc})") from exc
    return records
