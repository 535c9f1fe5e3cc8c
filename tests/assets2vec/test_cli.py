"""The `assets2vec` CLI end to end on a small library: generate, render, info, demo; bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import trimesh

from assets2vec.cli.main import build_parser, main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_for_every_command(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for argv in [[name] for name in sub.choices] + [["assets", "generate"], ["assets", "sheet"]]:
        with pytest.raises(SystemExit) as e:
            main(argv + ["--help"])
        assert e.value.code == 0
    help_text = capsys.readouterr().out
    for word in ("--views", "--size", "--elevations", "--lighting", "--up-axis", "--max-faces", "--seed", "--families", "--json"):
        assert word in help_text


def test_generate_render_info_end_to_end(tmp_path, capsys):
    lib, ds = tmp_path / "lib", tmp_path / "ds"
    code, out, _ = run(capsys, "assets", "generate", lib, "--n", 5, "--seed", 0, "--families", "chair,table", "--quiet")
    assert code == 0 and "wrote 5 assets" in out and "chair: 3" in out
    code, out, _ = run(capsys, "render", lib, ds, "--views", 6, "--size", 24, "--elevations=-10,30", "--quiet", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["rendered"] == 5 and report["failed"] == []
    code, out, _ = run(capsys, "info", ds, "--json")
    info = json.loads(out)
    assert info["kind"] == "dataset" and info["assets"] == 5 and info["views_per_asset"] == 6 + 6 and info["image_size"] == 24  # rings + the default floor ring
    assert info["categories"] == {"chair": 3, "table": 2} and info["failures"] == []
    code, out, _ = run(capsys, "info", lib, "--json")
    info = json.loads(out)
    assert info["kind"] == "library" and info["assets"] == 5 and "base" in info["attributes"]
    # Rerun: everything is skipped, nothing re-rendered.
    code, out, _ = run(capsys, "render", lib, ds, "--views", 6, "--size", 24, "--elevations=-10,30", "--quiet")
    assert code == 0 and "rendered 0, skipped 5" in out


def test_render_folder_with_failures_exit_codes(tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    trimesh.creation.box().export(lib / "box.ply")
    (lib / "broken.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    code, out, _ = run(capsys, "render", lib, tmp_path / "ds", "--views", 2, "--size", 16, "--quiet")
    assert code == 0 and "failed 1" in out and "broken.obj" in out and "NaN/inf" in out
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "broken.obj").write_text("garbage\n")
    code, out, _ = run(capsys, "render", only_bad, tmp_path / "ds2", "--views", 2, "--size", 16, "--quiet")
    assert code == 1 and "failed 1" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "{tmp}/missing"], "no such"),
        (["render", "{tmp}/missing", "{tmp}/out"], "no such folder"),
        (["render", "{tmp}", "{tmp}/out", "--size", "8"], "image size"),
        (["assets", "generate", "{tmp}/g", "--seed", "-3"], "seed"),
        (["render", "{tmp}", "{tmp}/out", "--device", "tpu"], "device 'tpu': expected auto, cpu, cuda or cuda:N"),
        (["assets", "generate", "{tmp}/g", "--families", "chair,robot"], "unknown family"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and message in err and "Traceback" not in err


def test_render_refuses_a_library_as_output(tmp_path, capsys):
    lib = tmp_path / "lib"
    run(capsys, "assets", "generate", lib, "--n", 2, "--quiet")
    code, _, err = run(capsys, "render", lib, lib, "--quiet")
    assert code == 2 and "is a library, but a dataset is needed" in err


def test_sheet(tmp_path, capsys):
    lib = tmp_path / "lib"
    run(capsys, "assets", "generate", lib, "--n", 4, "--quiet")
    code, out, _ = run(capsys, "assets", "sheet", lib, tmp_path / "sheet.png", "--size", 48, "--columns", 2)
    assert code == 0 and (tmp_path / "sheet.png").stat().st_size > 1000


def test_console_script_demo(tmp_path):
    """The installed console script runs the demo end to end (small) and prints its summary."""
    exe = [sys.executable, "-m", "assets2vec.cli.main"]
    res = subprocess.run(exe + ["demo", "--out", str(tmp_path / "demo"), "--n", "4", "--size", "16", "--fit-minutes", "0.25"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "assets2vec demo finished" in res.stdout and "contact_sheet.png" in res.stdout
    assert "held-out PSNR" in res.stdout and (tmp_path / "demo" / "swap_grid.png").is_file() and (tmp_path / "demo" / "turntable.gif").is_file()
    assert (tmp_path / "demo" / "dataset" / "manifest.jsonl").read_text().count("\n") == 4
    # A held-out view was searched with, which left the run's inversion bank behind.
    assert (tmp_path / "demo" / "photo.png").is_file() and "--image" in res.stdout and " found " in res.stdout
    assert list((tmp_path / "demo" / "run" / "inversion_bank").glob("*.npz"))


def test_render_workers_spread_over_the_visible_gpus(monkeypatch):
    from assets2vec.cli.render_cmd import _worker_device

    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert [_worker_device("cuda", i) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert _worker_device("cuda:1", 0) == "cuda:1" and _worker_device("cpu", 1) == "cpu"
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    assert _worker_device("cuda", 1) == "cuda"


@pytest.mark.parametrize("limit", [1 << 10, 16 << 10])
def test_a_full_disk_is_one_clear_line_and_resumable(tmp_path, limit):
    """A write that fails for want of room (here a file-size limit, which the kernel reports like a
    full disk) ends the command with exit 3, one line naming the file, and no traceback."""
    import resource

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [sys.executable, "-m", "assets2vec.cli.main", "assets", "generate", str(tmp_path / "lib"), "--n", "2", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=small_files)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "error: cannot write" in proc.stderr and "File too large" in proc.stderr
    assert not list((tmp_path / "lib").rglob("*.tmp")), "a temp file was left behind"
    assert subprocess.run(cmd, capture_output=True).returncode == 0


def test_invert_goes_on_past_bad_images_and_exits_2(request, tmp_path, capsys, monkeypatch):
    """Each bad image is one {"image", "error"} line; the images after it are still answered."""
    trained = request.getfixturevalue("run")  # the conftest's trained run (`run` here is the CLI helper)
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    import assets2vec.invert as invert_module

    fit = SimpleNamespace(score=20.0, camera_index=0, seconds=0.0, shape_code=None, texture_code=None)
    monkeypatch.setattr(invert_module, "invert", lambda *a, **k: fit)  # the fit itself is tested elsewhere
    monkeypatch.setattr(invert_module, "nearest_codes", lambda model, s, t, k: (np.zeros(k), np.arange(k)))
    good = tmp_path / "good.png"
    Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(good)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    images = [good, tmp_path / "broken.png", tmp_path / "missing.png", good]
    code, out, _ = run(capsys, "invert", trained, *images, "--no-bank", "--k", "2", "--device", "cpu")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and [line["image"] for line in lines] == [str(p) for p in images]
    assert [("error" in line) for line in lines] == [False, True, True, False]
    assert all(line["error"] for line in lines[1:3]) and len(lines[3]["nearest"]) == 2
    code, _, err = run(capsys, "invert", trained, good, "--k", "0", "--device", "cpu")
    assert code == 2 and "--k must be at least 1, got 0" in err


def test_streamlit_run_gets_the_settings_assets2vec_app_passes():
    """`streamlit run catalog_app/app.py` reads .streamlit/config.toml: this machine only, the same upload cap."""
    import tomllib
    from pathlib import Path

    from assets2vec.cli.app_cmd import MAX_UPLOAD_MB

    config = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"
    server = tomllib.loads(config.read_text("utf-8"))["server"]
    assert server["address"] == "127.0.0.1" and server["maxUploadSize"] == MAX_UPLOAD_MB
    ignored = subprocess.run(["git", "check-ignore", "-q", str(config)], cwd=config.parents[1])
    assert ignored.returncode != 0, ".streamlit/config.toml must not be git-ignored"
