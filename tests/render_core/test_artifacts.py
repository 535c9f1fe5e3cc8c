"""Atomic writes and what a killed writer leaves behind."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time

import pytest

from render_core import artifacts
from render_core.artifacts import atomic_write_bytes, sweep_stale_temps


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_name_their_writer(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(os.path.basename(a)), real_replace(a, b)))
    atomic_write_bytes(tmp_path / "x.npz", b"data")
    assert (tmp_path / "x.npz").read_bytes() == b"data"
    assert artifacts._TEMP.match(seen[0]) and f".{artifacts._HOST}.{os.getpid()}." in seen[0]


def test_sweep_removes_only_temp_files_of_writers_that_are_gone(tmp_path):
    host = artifacts._HOST
    (tmp_path / "assets").mkdir()
    dead = tmp_path / "assets" / f".a.npz.{host}.{_dead_pid()}.k3j2.tmp"
    alive = tmp_path / "assets" / f".b.npz.{host}.{os.getpid()}.x9y8.tmp"
    foreign_new = tmp_path / ".c.png.otherhost.1.abcd.tmp"
    foreign_old = tmp_path / ".d.png.otherhost.2.abcd.tmp"
    not_ours = tmp_path / ".notes.tmp"
    for p in (dead, alive, foreign_new, foreign_old, not_ours):
        p.write_bytes(b"partial")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(foreign_old, (day_ago, day_ago))
    assert sweep_stale_temps(tmp_path) == 2
    assert not dead.exists() and not foreign_old.exists()
    assert alive.exists() and foreign_new.exists() and not_ours.exists()


def test_a_rerun_render_sweeps_what_a_killed_one_left(small_library, tmp_path):
    from render_core.assets.library import open_library
    from render_core.multiview import RenderConfig, render_library
    from render_core.rig import RigConfig

    cfg = RenderConfig(image_size=16, rig=RigConfig(n_views=2, elevations=(20.0,), floor_views=0))
    out = tmp_path / "ds"
    render_library(open_library(small_library), out, cfg, progress=False)
    stale = out / "assets" / f".chair-s0-00000.npz.{artifacts._HOST}.{_dead_pid()}.q1w2.tmp"
    stale.write_bytes(b"half an npz")
    render_library(open_library(small_library), out, cfg, progress=False)
    assert not stale.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_a_failed_chmod_leaks_no_descriptor_and_no_temp_file(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(PermissionError, match="x.bin"):
            atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert len(os.listdir("/proc/self/fd")) == before
    assert list(tmp_path.iterdir()) == []


def test_the_rename_is_synced_in_its_folder_where_the_platform_allows(tmp_path, monkeypatch):
    real_fsync, synced = os.fsync, []

    def spy(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert synced == ["file", "folder"]

    def no_folders(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", no_folders)
    atomic_write_bytes(tmp_path / "y.bin", b"more")  # a refusal to sync a folder is not a failed write
    assert (tmp_path / "y.bin").read_bytes() == b"more"
