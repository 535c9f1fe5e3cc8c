"""Pictures of labelled scenes: instance masks tinted over the RGB, boxes and class names."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw


def _colour(i: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def overlay(rgb: np.ndarray, instance: np.ndarray, objects: list[dict], alpha: float = 0.45) -> Image.Image:
    """The RGB with each annotated object's visible mask tinted, its box drawn and labelled
    `label vis=0.83` (visible fraction)."""
    img = rgb.astype(np.float32).copy()
    for o in objects:
        if not o.get("annotated"):
            continue
        m = instance == o["instance"]
        img[m] = (1 - alpha) * img[m] + alpha * np.asarray(_colour(o["instance"]), np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for o in objects:
        if not o.get("annotated") or o.get("asset_id") is None:
            continue
        x, y, w, h = o["bbox"]
        c = _colour(o["instance"])
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=c, width=2)
        draw.text((x + 2, max(0, y - 11)), f"{o['label']} vis={o['visible_fraction']:.2f}", fill=c)
    return out


def sheet(images: list[Image.Image], columns: int = 4) -> Image.Image:
    """A grid of equally sized pictures."""
    if not images:
        raise ValueError("no pictures to lay out")
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    out = Image.new("RGB", (w * min(columns, len(images)), h * rows), "white")
    for k, im in enumerate(images):
        out.paste(im, ((k % columns) * w, (k // columns) * h))
    return out
