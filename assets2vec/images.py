"""Reading untrusted image files: pixel-count limit, any PIL format, padded to a square."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_PIXELS = 16_000_000


def square_rgba(image: np.ndarray, size: int, name: str = "image") -> np.ndarray:
    """(size, size, 4) uint8 RGBA from an (H, W, 3|4) uint8 array: centred on a transparent square, resized."""
    from PIL import Image

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
        raise ValueError(f"{name}: expected an H x W x 3 or x 4 uint8 image, got {a.dtype} {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise ValueError(f"{name}: {a.shape[1]}x{a.shape[0]} exceeds the {MAX_PIXELS:,}-pixel limit")
    im = Image.fromarray(a).convert("RGBA")
    side = max(im.width, im.height)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return np.asarray(canvas.resize((size, size), Image.LANCZOS))


MAX_FILE_BYTES = 32 << 20


def decode_image(data: bytes, size: int, name: str = "upload") -> np.ndarray:
    """(size, size, 4) uint8 RGBA from encoded image bytes (PNG, JPEG, ...), with the same limits as files."""
    import io

    from PIL import Image

    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name}: {len(data) / 2**20:.1f} MB exceeds the {MAX_FILE_BYTES >> 20} MB limit")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{name}: {im.width}x{im.height} exceeds the {MAX_PIXELS:,}-pixel limit")
            return square_rgba(np.asarray(im.convert("RGBA")), size, name)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{name}: not a readable image ({exc})") from exc


def load_image(path: str | Path, size: int) -> np.ndarray:
    """(size, size, 4) uint8 RGBA: the image file centred on a transparent square, resized."""
    path = Path(path)
    from PIL import Image

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # refuse decompression bombs
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{path}: {im.width}x{im.height} exceeds the {MAX_PIXELS:,}-pixel limit")
            return square_rgba(np.asarray(im.convert("RGBA")), size, str(path))
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc
