"""`assets2vec info PATH`: describe any artifact folder (or a plain folder of meshes)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from render_core.artifacts import HEADER_NAME, read_header


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="summarise a library, dataset or folder of meshes",
        description="Print what an assets2vec artifact holds: kind, asset count, categories, views, image size, failures.",
    )
    p.add_argument("path", type=Path, help="artifact folder, or a folder of mesh files")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def describe(path: Path) -> dict:
    from render_core.assets.library import open_library

    if not (path / HEADER_NAME).is_file():
        lib = open_library(path)
        return {
            "kind": "folder",
            "path": str(path),
            "assets": len(lib.records),
            "categories": dict(Counter(r.category for r in lib.records)),
            "formats": dict(Counter(Path(r.path).suffix.lower() for r in lib.records)),
        }
    header = read_header(path)
    kind = header["kind"]
    if kind == "library":
        lib = open_library(path)
        attrs: dict[str, Counter] = {}
        for r in lib.records:
            for k, v in r.attributes.items():
                attrs.setdefault(k, Counter())[v] += 1
        return {
            "kind": "library",
            "path": str(path),
            "assets": len(lib.records),
            "seed": header.get("seed"),
            "categories": dict(Counter(r.category for r in lib.records)),
            "attributes": {k: dict(v) for k, v in attrs.items()},
            "faces": _stats([r.n_faces for r in lib.records if r.n_faces]),
            "header": header,
        }
    if kind == "dataset":
        from render_core.dataset import RenderedDataset

        ds = RenderedDataset(path)
        report = ds.report() or {}
        return {
            "kind": "dataset",
            "path": str(path),
            "assets": len(ds),
            "views_per_asset": ds.n_views,
            "image_size": ds.image_size,
            "categories": dict(Counter(r.category for r in ds.records)),
            "faces": _stats([r.n_faces for r in ds.records if r.n_faces]),
            "failures": report.get("failed", []),
            "render": header.get("render"),
            "source_library": header.get("source_library"),
            "seed": header.get("seed"),
        }
    if kind == "run":
        return _describe_run(path, header)
    if kind == "catalog":
        return _describe_catalog(path)
    if kind == "scenes":
        return _describe_scenes(path, header)
    return {"kind": kind, "path": str(path), "header": header}


def _describe_scenes(path: Path, header: dict) -> dict:
    import json

    from render_core.scenes.folder import read_records

    objects: Counter = Counter()
    n = 0
    for record in read_records(path):
        n += 1
        objects.update(o["label"] for o in record["objects"] if o.get("annotated") and o.get("asset_id"))
    report = {}
    if (path / "report.json").is_file():
        report = json.loads((path / "report.json").read_text("utf-8"))
    return {
        "kind": "scenes", "path": str(path), "scenes": n, "seed": header.get("seed"),
        "image_size": header.get("config", {}).get("image_size"), "classes_by": header.get("semantic_by"),
        "annotated_objects": dict(objects), "asset_pool": header.get("pool_size"), "selection": header.get("selection"),
        "failed_assets": report.get("failed_assets", []), "scenes_per_second": report.get("scenes_per_second"),
    }


def _describe_catalog(path: Path) -> dict:
    from assets2vec.catalog.store import Store

    store = Store.open(path)
    try:
        return {
            "kind": "catalog", "path": str(path), "assets": store.count(), "run": store.get_meta("run"),
            "checkpoint": store.get_meta("checkpoint"), "dims": store.get_meta("dims"), **store.summary_counts(),
        }
    finally:
        store.close()


def _describe_run(path: Path, header: dict) -> dict:
    from assets2vec.checkpoint import latest_checkpoint
    from assets2vec.run import Run

    config = header.get("config", {})
    model = config.get("model", {})
    info = {
        "kind": "run", "path": str(path), "dataset": header.get("dataset"), "preset": config.get("preset"),
        "assets_trained": len(header.get("asset_ids", [])), "codes": f"{model.get('shape_dim')} shape + {model.get('texture_dim')} texture",
        "seed": header.get("seed"),
    }
    if not latest_checkpoint(path).is_file():
        info["step"] = "no checkpoint yet"
        return info
    run = Run.open(path)
    info.update(step=run.step, assets_in_tables=len(run.asset_ids), embedded=len(run.embedded),
                train_minutes=round(float(run.state.get("train_seconds", 0.0)) / 60, 1))
    if run.history:
        info["last_heldout_psnr_8_assets"] = run.history[-1]["psnr"]
    if run.evaluation is not None:
        info["eval"] = {k: round(run.evaluation[k], 4) for k in ("psnr", "ssim", "mask_iou") if k in run.evaluation}
    return info


def _stats(values: list[int]) -> dict | None:
    if not values:
        return None
    values = sorted(values)
    return {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}


def run(args: argparse.Namespace) -> int:
    info = describe(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['kind']} at {info['path']}")
    for key, value in info.items():
        if key in ("kind", "path", "header"):
            continue
        print(f"  {key}: {value}")
    return 0
