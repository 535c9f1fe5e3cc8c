"""Artifact folders: a small JSON header per folder, and atomic file writes.

Every artifact the pipeline produces (LIBRARY, DATASET, RUN, CATALOG, SCENES) is a
folder holding `artifact.json` with its kind, format version, producer and seed, so
any command can describe it or refuse the wrong kind with a clear message.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

HEADER_NAME = "artifact.json"

# Bumped when a folder's layout changes incompatibly; readers refuse newer formats.
FORMAT_VERSIONS = {"library": 1, "dataset": 1, "run": 1, "catalog": 1, "scenes": 1, "embedding": 1}


_UMASK = os.umask(0)
os.umask(_UMASK)

_HOST = socket.gethostname().replace(".", "-") or "host"
"""With the process id, part of a temp file's name: a later run can then tell a temp file left by
a killed process (removed by `sweep_stale_temps`) from one being written right now."""
_TEMP = re.compile(r"^\..+\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[^.]+\.tmp$")
_FOREIGN_TEMP_AGE = 24 * 3600.0


class ArtifactError(ValueError):
    """A path is not the artifact a command expected, or its header is unreadable."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old file or the new one, never half."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a read-only or full file system: name the file meant, not a temp name
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        # The descriptor belongs to the file object first, so whatever fails below closes it.
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; published files follow the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        _discard(tmp)
        if exc.filename is None:  # a full disk reports no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        # Ctrl-C mid-write must not leave a stray temp file that a later run mistakes for data.
        _discard(tmp)
        raise


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` survive a power cut (the new name lives in the directory's own
    data). Best effort: some platforms and file systems cannot open or sync a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of `atomic_write_bytes`' temp files (left alone by readers)."""
    return _TEMP.match(name) is not None


def sweep_stale_temps(folder: str | os.PathLike) -> int:
    """Remove the temp files of atomic writes that a killed process left under `folder`; returns
    how many. A temp file of this machine is stale when its process no longer runs; one of
    another machine (a shared file system) when it is a day old. Called when a command starts
    on a folder it owns; readers never see temp files (they are hidden and end in .tmp)."""
    import time

    removed = 0
    for p in Path(folder).rglob(".*.tmp"):
        m = _TEMP.match(p.name)
        if m is None or not p.is_file():
            continue
        if m["host"] == _HOST:
            stale = not _running(int(m["pid"]))
        else:
            try:
                stale = time.time() - p.stat().st_mtime > _FOREIGN_TEMP_AGE
            except FileNotFoundError:
                continue
        if stale:
            _discard(str(p))
            removed += 1
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _discard(tmp: str) -> None:
    Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Like `np.savez_compressed`, but byte-identical for identical arrays: numpy stamps each
    zip entry with the current time, which would make reruns differ."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load an .npz without pickle: object arrays in user data are refused, not executed."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def make_header(kind: str, *, producer: str, seed: int | None, **extra: Any) -> dict[str, Any]:
    from render_core import __version__

    return {
        "kind": kind,
        "format_version": FORMAT_VERSIONS[kind],
        "producer": producer,
        "package_version": __version__,
        # No timestamp: the same command with the same seed must write byte-identical files.
        "seed": seed,
        **extra,
    }


def write_header(folder: str | os.PathLike, header: dict[str, Any]) -> None:
    atomic_write_json(Path(folder) / HEADER_NAME, header)


def read_header(folder: str | os.PathLike, expected_kind: str | None = None) -> dict[str, Any]:
    """Read a folder's header; with `expected_kind`, refuse any other kind by name."""
    folder = Path(folder)
    if not folder.exists():
        raise ArtifactError(f"{folder}: no such file or folder")
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: expected an artifact folder, found a file")
    header_path = folder / HEADER_NAME
    if not header_path.is_file():
        want = f"a {expected_kind}" if expected_kind else "an assets2vec artifact"
        raise ArtifactError(f"{folder}: not {want} (no {HEADER_NAME} inside)")
    try:
        header = json.loads(header_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{header_path}: unreadable header ({exc})") from exc
    if not isinstance(header, dict) or "kind" not in header:
        raise ArtifactError(f"{header_path}: header has no 'kind' field")
    kind = header["kind"]
    if expected_kind is not None and kind != expected_kind:
        raise ArtifactError(f"{folder}: is a {kind}, but a {expected_kind} is needed here")
    version = header.get("format_version")
    known = FORMAT_VERSIONS.get(kind)
    if known is not None and (not isinstance(version, int) or version > known):
        raise ArtifactError(
            f"{folder}: {kind} format version {version!r} is newer than this "
            f"assets2vec understands ({known}); upgrade assets2vec"
        )
    return header
