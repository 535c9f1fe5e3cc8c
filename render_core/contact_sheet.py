"""Contact sheets: a labelled grid of asset images, for a person to check a library at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from render_core.assets.records import AssetRecord


def contact_sheet(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 8, cell: int = 128) -> np.ndarray:
    """(H, W, 3) uint8 grid of `images` (each (h, w, 3) uint8) with a caption under each."""
    if not images:
        raise ValueError("contact sheet needs at least one image")
    rows = (len(images) + columns - 1) // columns
    caption_h = 24
    sheet = Image.new("RGB", (columns * cell, rows * (cell + caption_h)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (img, cap) in enumerate(zip(images, captions)):
        r, c = divmod(i, columns)
        tile = Image.fromarray(img).resize((cell, cell), Image.Resampling.LANCZOS)
        sheet.paste(tile, (c * cell, r * (cell + caption_h)))
        for j, line in enumerate(cap.split("\n")[:2]):
            draw.text((c * cell + 3, r * (cell + caption_h) + cell + 1 + 11 * j), line[:26], fill=(40, 40, 40), font=font)
    return np.asarray(sheet)


def caption(record: AssetRecord) -> str:
    a = record.attributes
    keys = [k for k in a if k not in ("family", "colour", "pattern", "frame")][:2]
    return f"{record.category}\n" + " ".join(f"{a[k]}" for k in keys)


def dataset_contact_sheet(dataset_dir: Path, records: Sequence[AssetRecord], columns: int = 8) -> np.ndarray:
    images = [np.asarray(Image.open(dataset_dir / "thumbs" / f"{r.id}.png").convert("RGB")) for r in records]
    return contact_sheet(images, [caption(r) for r in records], columns=columns)
