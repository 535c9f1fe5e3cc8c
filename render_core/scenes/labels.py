"""Per-scene annotations from the rendered maps, and the COCO file built from them.

An object's box is the tight box of its visible pixels; its visible fraction is visible
pixels over the pixels its silhouette would cover in the frame with nothing in front
(truncation by the image border is not counted as occlusion). Masks are COCO RLE,
encoded once per scene so the final COCO file is assembled from the scene files alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from pycocotools import mask as mask_utils

from render_core.scenes.compose import Scene


def rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(x) for x in r["size"]], "counts": r["counts"].decode("ascii")}


def box_of(mask: np.ndarray) -> list[int] | None:
    """[x, y, w, h] in pixels of the mask's tight box (COCO convention), None if empty."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)]


def annotate(scene: Scene, maps: dict, semantic_classes: list[str], min_pixels: int) -> list[dict]:
    """One record per object (catalog asset or clutter) with its pose and, when visible enough,
    box, visible fraction and RLE mask."""
    out = []
    for o in scene.objects:
        m = maps["instance"] == o.instance
        visible = int(m.sum())
        amodal = maps["amodal"].get(o.instance, 0)
        rec = {
            "instance": o.instance,
            "asset_id": o.asset.id if o.asset else None,
            "category": o.asset.category if o.asset else "clutter",
            "semantic": o.semantic,
            "label": semantic_classes[o.semantic],
            "position": [round(o.footprint.x, 5), 0.0, round(o.footprint.z, 5)],
            "yaw_deg": round(o.footprint.yaw_deg, 4),
            "scale": round(o.scale, 6),
            "height_m": round(float(o.mesh.verts[:, 1].max()), 5),
            "visible_pixels": visible,
            "amodal_pixels": amodal,
            # at most 1: a renderer with its own passes (Blender) may see a border pixel the raster silhouette lacks
            "visible_fraction": round(min(1.0, visible / amodal), 4) if amodal else 0.0,
            "annotated": visible >= min_pixels,
        }
        if rec["annotated"]:
            rec["bbox"] = box_of(m)
            rec["mask_rle"] = rle(m)
        out.append(rec)
    return out


def coco(scene_records: Iterable[dict], semantic_classes: list[str], first_object_class: int, image_dir: str = "images") -> dict:
    """A COCO detection/segmentation dict from scene records (as `labels/*.json` hold them).
    Categories are the object classes (semantic_by values); clutter is not annotated."""
    cats = [{"id": i - first_object_class + 1, "name": name, "supercategory": "object"}
            for i, name in enumerate(semantic_classes) if i >= first_object_class]
    images, anns = [], []
    for rec in scene_records:
        img_id = rec["index"] + 1
        images.append({"id": img_id, "file_name": f"{image_dir}/{rec['image']}", "width": rec["width"], "height": rec["height"],
                       "scene_seed": rec["seed"]})
        for o in rec["objects"]:
            if not o.get("annotated") or o["asset_id"] is None:
                continue
            x, y, w, h = o["bbox"]
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": o["semantic"] - first_object_class + 1,
                         "bbox": [x, y, w, h], "area": o["visible_pixels"], "iscrowd": 0, "segmentation": o["mask_rle"],
                         "asset_id": o["asset_id"], "visible_fraction": o["visible_fraction"]})
    return {"info": {"description": "assets2vec synthetic scenes"}, "images": images, "annotations": anns, "categories": cats}


def read_scene_records(folder: Path) -> Iterable[dict]:
    from render_core.scenes.folder import read_records

    return read_records(folder)
