"""Split a library's rendering across workers and merge their datasets into one.

A shard is `i/n`: the assets whose id hashes to i modulo n. Hashing the id (not the position in
the library) keeps every asset in the same shard when the library grows or is listed in another
order, so a shard rerun after new assets arrive resumes instead of reshuffling. Each shard renders
into its own DATASET folder (workers never write the same file), and `merge_datasets` combines
them: same render settings and source library required, every shard 0..n-1 present, each asset
once (identical copies from overlapping runs are fine; conflicting ones are an error).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from render_core.artifacts import (
    ArtifactError,
    atomic_write_bytes,
    atomic_write_json,
    make_header,
    read_header,
    sweep_stale_temps,
    write_header,
)


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'i/n' with 0 <= i < n."""
        try:
            i, n = (int(x) for x in str(text).split("/"))
        except ValueError:
            raise ValueError(f"--shard: expected i/n (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard: need 0 <= i < n, got {text!r}")
        return cls(i, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, asset_id: str) -> bool:
        return shard_of(asset_id, self.count) == self.index


def shard_of(asset_id: str, count: int) -> int:
    return int.from_bytes(hashlib.sha256(asset_id.encode("utf-8")).digest()[:8], "little") % count


def _same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def _place(src: Path, dst: Path) -> bool:
    """Put src at dst (hard link when on one file system, else an atomic copy); False if dst
    already holds the same bytes. Differing bytes under one name are an error."""
    if dst.exists():
        if _same_file(src, dst):
            return False
        raise ArtifactError(f"{dst.name}: two shards hold different files for it ({src} and {dst}); "
                            "were they rendered with different settings?")
    tmp = dst.with_name(f".{dst.name}.merge")
    try:
        tmp.unlink(missing_ok=True)  # left by a merge killed between its link and its rename
        os.link(src, tmp)
    except OSError:
        atomic_write_bytes(dst, src.read_bytes())  # names dst, not src, when the disk is full
        return True
    os.replace(tmp, dst)
    return True


def merge_datasets(shards: list[Path], out: Path) -> dict:
    """Merge shard DATASET folders into `out` (created or extended); returns the merge report."""
    from render_core.multiview import MANIFEST, REPORT, _png, collect_records
    from render_core.assets.records import write_manifest

    if not shards:
        raise ValueError("merge: no shard folders given")
    headers = [read_header(p, "dataset") for p in shards]
    first = headers[0]
    for p, h in zip(shards[1:], headers[1:]):
        for key in ("render", "source_library"):
            if h.get(key) != first.get(key):
                raise ArtifactError(f"{p}: {key} differs from {shards[0]}'s; only shards of one render can be merged")
    specs = {h.get("shard") for h in headers}
    counts = {Shard.parse(s).count for s in specs if s}
    if len(counts) > 1:
        raise ArtifactError(f"merge: shards of different splits ({sorted(s for s in specs if s)}); merge one split at a time")
    if counts:
        n = counts.pop()
        missing = sorted(set(range(n)) - {Shard.parse(s).index for s in specs if s})
        if missing:
            raise ArtifactError(f"merge: shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing; "
                                "their assets would be lost (render them, or pass their folders)")
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(out)  # left by a merge killed mid-copy
    if (out / "artifact.json").exists():
        h = read_header(out, "dataset")
        if h.get("render") != first.get("render") or h.get("source_library") != first.get("source_library"):
            raise ArtifactError(f"{out}: already holds a dataset with other settings or another library")
    else:
        write_header(out, make_header("dataset", producer="assets2vec merge", seed=first.get("seed"),
                                      render=first["render"], source_library=first["source_library"],
                                      camera_convention=first.get("camera_convention"),
                                      merged_from=[str(p.resolve()) for p in shards]))
    (out / "assets").mkdir(exist_ok=True)
    (out / "thumbs").mkdir(exist_ok=True)
    added, already, failed = 0, 0, []
    for p in shards:
        for f in sorted((p / "assets").glob("*.npz")):
            if _place(f, out / "assets" / f.name):
                added += 1
            else:
                already += 1
            thumb = p / "thumbs" / f"{f.stem}.png"
            if thumb.is_file():
                _place(thumb, out / "thumbs" / thumb.name)
        rep = p / REPORT
        if rep.is_file():
            failed += json.loads(rep.read_text("utf-8")).get("failed", [])
    records = collect_records(out)
    done = {r.id for r in records}
    failed = [f for f in {f["id"]: f for f in failed}.values() if f["id"] not in done]
    write_manifest(out / MANIFEST, records)
    report = {"merged_shards": len(shards), "added": added, "already_there": already, "failed": failed,
              "warnings": [], "total_in_dataset": len(records), "rendered": added, "skipped": already,
              "seconds": 0.0, "assets_per_second": None, "interrupted": False}
    atomic_write_json(out / REPORT, report)
    if records:
        from render_core.contact_sheet import dataset_contact_sheet

        atomic_write_bytes(out / "contact_sheet.png", _png(dataset_contact_sheet(out, records[:48])))
    return report
