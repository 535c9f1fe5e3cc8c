"""Small networks kept in a run folder (the photo encoder, the photo segmenter): plain tensors and
strings, written atomically and read back with `torch.load(weights_only=True)`, so a file from
anywhere unpickles no object."""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path

import torch


def save_tensors(path: str | os.PathLike, payload: dict) -> Path:
    """Write `payload` (tensors, strings, lists of strings) to `path` atomically; returns the path."""
    from render_core.artifacts import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def load_tensors(path: str | os.PathLike, fmt: int) -> dict:
    """The payload of `path`, which must carry {"format": fmt}."""
    d = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and strings only
    if d.get("format") != fmt:
        raise ValueError(f"format {d.get('format')}, expected {fmt}")
    return d


@contextmanager
def reading(path: str | os.PathLike, what: str):
    """Any failure inside (an untrusted file fails in many ways inside the unpickler and the network's
    loading) becomes one ValueError naming the file and what it should have been."""
    try:
        yield
    except Exception as exc:
        raise ValueError(f"{path}: not a readable {what} ({exc})") from exc
