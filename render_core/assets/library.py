"""Open an asset library: a generated one (artifact.json + manifest) or any folder of mesh files."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from render_core.artifacts import HEADER_NAME, read_header
from render_core.assets.loaders import SUPPORTED_EXTENSIONS
from render_core.assets.records import AssetRecord, manifest_entry_problem, read_manifest, safe_id

MANIFEST = "manifest.jsonl"


@dataclass
class Library:
    root: Path
    records: list[AssetRecord]
    header: dict | None  # None for a plain folder of files

    def path_of(self, record: AssetRecord) -> Path:
        return self.root / record.path


def stable_id(rel_path: str) -> str:
    """Readable and stable across runs: the file stem plus a hash of its relative path."""
    stem = safe_id(Path(rel_path).stem if Path(rel_path).stem not in ("model", "mesh", "scene") else Path(rel_path).parent.name or "asset")
    return f"{stem}-{hashlib.sha1(rel_path.encode('utf-8')).hexdigest()[:8]}"


def _read_category_manifest(path: Path) -> dict[str, dict[str, str]]:
    """CSV with a `path` column (relative to the library root), `category` and any attribute columns."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ValueError(f"{path}: manifest CSV needs a 'path' column (and usually 'category')")
            rows = {}
            for row in reader:
                rel = Path((row.pop("path") or "").strip()).as_posix()
                rows[rel] = {k: (v or "").strip() for k, v in row.items() if isinstance(k, str) and k and isinstance(v, (str, type(None)))}
            return rows
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); save the manifest as UTF-8 CSV") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV manifest ({exc})") from None


def scan_folder(root: Path, manifest_csv: Path | None = None) -> list[AssetRecord]:
    """One record per supported mesh file below `root`; category from the CSV or the first sub-folder."""
    extra = _read_category_manifest(manifest_csv) if manifest_csv else {}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS)
    records = []
    seen: set[str] = set()
    for p in files:
        rel = p.relative_to(root).as_posix()
        info = dict(extra.get(rel, {}))
        category = info.pop("category", "") or (rel.split("/")[0] if "/" in rel else "uncategorized")
        asset_id = stable_id(rel)
        if asset_id in seen:  # a hash collision on 32 bits: extend rather than drop an asset
            asset_id = f"{asset_id}-{hashlib.sha1(rel.encode()).hexdigest()[8:16]}"
        seen.add(asset_id)
        records.append(AssetRecord(id=asset_id, path=rel, category=safe_id(category), attributes={k: v for k, v in info.items() if v}))
    return records


def _check_contained(root: Path, records: list[AssetRecord]) -> None:
    """A manifest is user data: ids become file names and paths are opened, so both must stay inside."""
    base = root.resolve()
    for r in records:
        problem = manifest_entry_problem(root / MANIFEST, r)
        if problem is not None:
            raise ValueError(problem)
        if not (base / r.path).resolve().is_relative_to(base):
            raise ValueError(f"{root / MANIFEST}: asset {r.id!r} points outside the library ({r.path!r})")


def open_library(path: str | Path, manifest_csv: str | Path | None = None) -> Library:
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if root.is_file():
        raise ValueError(f"{root}: expected a folder of assets, found a file")
    if (root / HEADER_NAME).is_file():
        header = read_header(root, "library")
        records = read_manifest(root / MANIFEST)
        _check_contained(root, records)
        return Library(root, records, header)
    records = scan_folder(root, Path(manifest_csv) if manifest_csv else None)
    if not records:
        raise ValueError(f"{root}: no mesh files found (looked for {', '.join(SUPPORTED_EXTENSIONS)})")
    return Library(root, records, None)
