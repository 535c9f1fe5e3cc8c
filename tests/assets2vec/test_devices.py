"""One device choice for every command, the GPU training preset, clear errors for impossible device
set-ups, and the GPU check's rehearsal (benchmarks/gpu_check.py --small: every stage, on the CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from assets2vec.cli.main import main
from assets2vec.configs import GPU_BATCH, for_device, preset
from assets2vec import devices
from assets2vec.devices import BF16_ENV, DeviceError, autocast, fast_bf16, resolve_device
from assets2vec.train import check_workers

ROOT = Path(__file__).resolve().parents[2]
NETWORK_COMMANDS = [
    ["fit", "{tmp}", "--out", "{tmp}/run"], ["eval", "{tmp}"], ["invert", "{tmp}", "{tmp}/a.png"], ["embed", "{tmp}", "{tmp}"],
    ["catalog", "build", "{tmp}", "{tmp}/cat"], ["search", "{tmp}", "--like", "x"], ["render-latent", "{tmp}", "swap", "--out", "{tmp}/a.png"],
    ["photo-encoder", "{tmp}"], ["app", "{tmp}"], ["demo", "--out", "{tmp}/demo"], ["sparse", "{tmp}"],
    ["render", "{tmp}", "{tmp}/out"], ["scenes", "generate", "{tmp}", "{tmp}/s", "--n", "1"],
]


def test_auto_and_cpu_resolve_here_and_bad_spellings_are_named():
    assert resolve_device("auto") == resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "tpu", ""):
        with pytest.raises(DeviceError, match="expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("flags, expected", [({"avx2", "fma"}, False), ({"avx2", "avx512f"}, False),
                                             ({"avx512f", "avx512_bf16"}, True), ({"amx_tile", "amx_bf16"}, True)])
def test_bf16_autocast_only_on_cpus_that_compute_bf16_natively(monkeypatch, flags, expected):
    # An AVX2-only CPU emulates bf16: autocast there made training about ten times slower than fp32.
    monkeypatch.delenv(BF16_ENV, raising=False)
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset(flags))
    assert fast_bf16("cpu") is expected
    with autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") is expected
    with autocast("cpu", enabled=False):  # a model configured with mixed_precision=False
        assert not torch.is_autocast_enabled("cpu")


def test_bf16_can_be_forced_either_way_and_a_bad_setting_is_named(monkeypatch):
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setenv(BF16_ENV, "1")
    assert fast_bf16("cpu")
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setenv(BF16_ENV, "0")
    assert not fast_bf16("cpu")
    monkeypatch.setenv(BF16_ENV, "yes")
    with pytest.raises(DeviceError, match=BF16_ENV):
        fast_bf16("cpu")


def test_the_model_follows_the_bf16_decision(monkeypatch):
    from assets2vec.configs import preset
    from assets2vec.run import build_model

    model = build_model(preset("fast"), num_assets=2)
    for forced in ("0", "1"):
        monkeypatch.setenv(BF16_ENV, forced)
        with model._autocast():
            assert torch.is_autocast_enabled("cpu") is (forced == "1")
    model.config.mixed_precision = False
    with model._autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_cuda_without_a_gpu_is_refused_before_any_work():
    with pytest.raises(DeviceError, match="no CUDA device is available here"):
        resolve_device("cuda:1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("argv", NETWORK_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_network_command_takes_the_device_and_refuses_a_missing_gpu(tmp_path, capsys, argv):
    code = main([a.format(tmp=tmp_path) for a in argv] + ["--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "device 'cuda': no CUDA device is available here" in err and "Traceback" not in err


def test_the_gpu_preset_keeps_each_asset_s_rays_per_step_and_leaves_the_cpu_alone():
    fast = preset("fast")
    assert for_device(fast, torch.device("cpu")) is fast
    gpu = for_device(fast, torch.device("cuda"))
    assert gpu.batch_size == GPU_BATCH and gpu.batch_size // gpu.assets_per_batch == fast.batch_size // fast.assets_per_batch
    assert (gpu.lr_field, gpu.lr_codes, gpu.steps) == (fast.lr_field, fast.lr_codes, fast.steps)
    assert for_device(fast, torch.device("cuda"), batch_given=True) is fast  # the user's --batch-size wins
    tiny = preset("tiny")
    assert for_device(tiny, torch.device("cuda")) is tiny  # only the product recipe has a GPU form


def test_more_gpu_workers_than_gpus_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_workers(1, torch.device("cuda"))
    check_workers(4, torch.device("cpu"))  # gloo on CPU: any number
    with pytest.raises(ValueError, match="needs one GPU per worker and this machine has 1; use --workers 1"):
        check_workers(2, torch.device("cuda"))


def test_the_catalog_runs_the_network_where_it_is_told(small_catalog, monkeypatch):
    from assets2vec import Catalog
    from assets2vec.devices import ENV

    cat_dir = small_catalog
    monkeypatch.setenv(ENV, "cpu")  # what `assets2vec app --device cpu` gives the app
    with Catalog.open(cat_dir) as cat:
        assert cat.device == torch.device("cpu")
        model, _, _ = cat.model()
        assert next(model.parameters()).device == torch.device("cpu")
    monkeypatch.setenv(ENV, "tpu")
    with pytest.raises(DeviceError):
        Catalog.open(cat_dir)


def test_gpu_check_rehearsal_runs_every_stage(tmp_path):
    """The script a session lent a GPU runs, on the CPU at a tiny scale: every stage must run and
    its comparisons must agree (on one device they must agree exactly)."""
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--small", "--out", str(out),
                           "--work", str(tmp_path / "w")], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert not [k for k, v in r.items() if isinstance(v, dict) and "error" in v], r
    assert r["render"]["agreement"]["mask_agreement_min"] == 1.0 and r["render"]["agreement"]["depth_max_abs_diff"] == 0.0
    assert r["eval"]["psnr_max_abs_diff"] == 0.0
    assert all(v == 0.0 for v in r["catalog"]["vector_max_abs_diff"].values())
    assert r["photo"]["same_asset"] == "1/1" and r["photo"]["fit_psnr_max_abs_diff"] == 0.0
    assert r["photo"]["rig_bank_renders_max_abs_diff"] == 0.0
    assert r["fit"]["steps"] == 20 and r["fit"]["rays_per_s_mean"] > 0 and np.isfinite(r["fit"]["heldout_psnr"])
    assert r["scale"]["catalog_build_seconds"] > 0 and set(r["targets"]) >= {"fit_rays_per_s_ge_5M", "photo_search_le_0.3s"}
