"""Self-describing checkpoints and the RUN folder they live in.

A checkpoint holds weights, code tables, asset ids, optimizer and RNG states, the
full config (as JSON), the step and the package version; it is written atomically
and read with `torch.load(weights_only=True)`, so a checkpoint from elsewhere can
at worst fail to load, never run code.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from render_core import __version__
from render_core.artifacts import atomic_write_bytes

CHECKPOINT_FORMAT = "assets2vec-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINTS = "checkpoints"
LATEST = "latest.ckpt"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or was written by an incompatible version."""


def checkpoint_dir(run: str | os.PathLike) -> Path:
    return Path(run) / CHECKPOINTS


def latest_checkpoint(run: str | os.PathLike) -> Path:
    return checkpoint_dir(run) / LATEST


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` plus format fields atomically: a crash mid-write leaves the old file."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "package_version": __version__, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here (has this run been trained? 'assets2vec fit DATA --out RUN')")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an assets2vec checkpoint")
    version = state.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} (written by assets2vec {state.get('package_version')}) "
            f"cannot be read by assets2vec {__version__}, which reads version {CHECKPOINT_VERSION}"
        )
    for key in ("config", "model", "asset_ids", "step"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint is missing {key!r}")
    return state
