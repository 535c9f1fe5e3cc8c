"""Reading untrusted image files: pixel-count limit, any PIL format, padded to a square."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_PIXELS = 16_000_000


def square_image(image: np.ndarray, size: int, name: str = "image") -> np.ndarray:
    """(size, size, C) uint8 from an (H, W, C) uint8 array, C = 3 or 4, centred on a square and resized.

    RGBA stays RGBA (padding transparent: the alpha is the object's mask); RGB stays RGB,
    padded with white, so inversion reads the object as what is not white background. (An
    RGB photo given an opaque alpha would claim every pixel is object.)"""
    from PIL import Image

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
        raise ValueError(f"{name}: expected an H x W x 3 or x 4 uint8 image, got {a.dtype} {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise ValueError(f"{name}: {a.shape[1]}x{a.shape[0]} exceeds the {MAX_PIXELS:,}-pixel limit")
    mode = "RGBA" if a.shape[2] == 4 else "RGB"
    im = Image.fromarray(a, mode)
    side = max(im.width, im.height)
    canvas = Image.new(mode, (side, side), (255, 255, 255, 0) if mode == "RGBA" else (255, 255, 255))
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return np.asarray(canvas.resize((size, size), Image.LANCZOS))


MAX_FILE_BYTES = 32 << 20


def _mode(im) -> str:
    """RGBA when the file carries transparency, else RGB."""
    return "RGBA" if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info else "RGB"


def _eight_bit(im):
    """8-bit grey for 16-bit and float single-channel images, which PIL's convert would clip at 255."""
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        peak = float(np.nanmax(a, initial=0.0))
        top = 1.0 if im.mode == "F" and peak <= 1.0 else (255.0 if peak <= 255 else 65535.0)
        a = np.nan_to_num(a)
        return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return im


def read_image(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """(H, W, 3|4) uint8 as the file holds it (RGBA when it carries transparency), from a path or
    encoded bytes (PNG, JPEG, ...), refusing files over `MAX_FILE_BYTES` and images over `MAX_PIXELS`
    before they are decoded."""
    import io
    import warnings

    from PIL import Image, ImageOps

    if isinstance(source, (bytes, bytearray)):
        name = name or "upload"
        data = bytes(source)
    else:
        path = Path(source)
        name = name or str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{name}: {size / 2**20:.1f} MB exceeds the {MAX_FILE_BYTES >> 20} MB limit")
        data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name}: {len(data) / 2**20:.1f} MB exceeds the {MAX_FILE_BYTES >> 20} MB limit")
    # The size is checked from the header, before decoding. PIL's own bomb limit is process-wide state
    # that texture loading relies on too, so it is left as it is (it only ever refuses more).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{name}: not a readable image ({exc})") from exc
    with im:
        if im.width * im.height > MAX_PIXELS:
            raise ValueError(f"{name}: {im.width}x{im.height} exceeds the {MAX_PIXELS:,}-pixel limit")
        try:
            # a phone stores a portrait shot as landscape pixels plus an Orientation tag; viewers (and a
            # box drawn in one) show it upright, so the pixels are turned the same way
            upright = ImageOps.exif_transpose(im)
            return np.asarray(_eight_bit(upright).convert(_mode(upright)))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # decoding is lazy: a broken chunk is a SyntaxError, a tile past the image's edge a ValueError
            raise ValueError(f"{name}: not a readable image ({exc})") from exc


def decode_image(data: bytes, size: int, name: str = "upload") -> np.ndarray:
    """(size, size, 3|4) uint8 from encoded image bytes (PNG, JPEG, ...), with the same limits as files."""
    return square_image(read_image(data, name), size, name)


def load_image(path: str | Path, size: int) -> np.ndarray:
    """(size, size, 3|4) uint8: the image file centred on a square and resized (see `square_image`)."""
    return square_image(read_image(path), size, str(path))
