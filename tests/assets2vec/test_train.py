"""Training: loss goes down, checkpoints round-trip, resume is exact, presets train, bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from assets2vec.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from assets2vec.cli.main import main
from assets2vec.configs import PRESETS, preset
from assets2vec.train import RunError, fit, load_run


def tiny(steps: int = 40, **overrides):
    cfg = preset("tiny")
    cfg.steps = steps
    cfg.eval_every = 10**6
    cfg.checkpoint_every = 10**6
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def tiny_run(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    fit(small_dataset, out, tiny(steps=60), progress=False, log=lambda m: None)
    return out


def test_loss_goes_down(small_dataset, tmp_path):
    losses = []
    cfg = tiny(steps=80)

    from assets2vec import train as train_mod

    original = train_mod.LatentNeRFModel.get_loss_dict

    def spy(self, outputs, batch, metrics_dict=None, **kw):
        d = original(self, outputs, batch, metrics_dict, **kw)
        losses.append(float(d["rgb_loss"].detach()))
        return d

    train_mod.LatentNeRFModel.get_loss_dict = spy
    try:
        fit(small_dataset, tmp_path / "run", cfg, progress=False, log=lambda m: None)
    finally:
        train_mod.LatentNeRFModel.get_loss_dict = original
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)


def test_checkpoint_round_trip(tiny_run, small_dataset):
    state = load_checkpoint(tiny_run)
    assert state["step"] == 60 and state["asset_ids"] == json.loads((tiny_run / "artifact.json").read_text())["asset_ids"]
    assert {"model", "optimizer", "config", "batcher", "torch_rng", "package_version"} <= set(state)
    model, cfg, _ = load_run(tiny_run)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    assert cfg.preset == "tiny" and cfg.steps == 60
    header = json.loads((tiny_run / "artifact.json").read_text())
    assert header["kind"] == "run" and header["seed"] == 0


def test_resume_continues_identically(small_dataset, tmp_path):
    straight = tmp_path / "straight"
    fit(small_dataset, straight, tiny(steps=30), progress=False, log=lambda m: None)

    def interrupt(step):
        if step == 13:
            raise KeyboardInterrupt

    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        fit(small_dataset, broken, tiny(steps=30), progress=False, log=lambda m: None, on_step=interrupt)
    assert load_checkpoint(broken)["step"] == 13
    fit(small_dataset, broken, tiny(steps=30), resume=True, progress=False, log=lambda m: None)
    a, b = load_checkpoint(straight)["model"], load_checkpoint(broken)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _crash_at(n: int):
    """An `on_step` that fails at step n as a hard kill would: nothing saved on the way out."""
    def crash(step):
        if step == n:
            raise RuntimeError("simulated hard kill")
    return crash


def test_time_checkpoints_bound_what_a_crash_loses(small_dataset, tmp_path):
    """A crash that saves nothing (kill -9, OOM) resumes from the last checkpoint by time, exactly."""
    straight = tmp_path / "straight"
    fit(small_dataset, straight, tiny(steps=30), progress=False, log=lambda m: None)

    broken = tmp_path / "broken"
    with pytest.raises(RuntimeError):
        fit(small_dataset, broken, tiny(steps=30, checkpoint_minutes=1e-9), progress=False, log=lambda m: None,
            on_step=_crash_at(13))
    assert load_checkpoint(broken)["step"] == 12  # saved by time after the previous step
    assert not list((broken / "checkpoints").glob("step-*.ckpt"))  # by time: the latest only
    fit(small_dataset, broken, tiny(steps=30, checkpoint_minutes=1e-9), resume=True, progress=False, log=lambda m: None)
    a, b = load_checkpoint(straight)["model"], load_checkpoint(broken)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_result_other_seed_differs(small_dataset, tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        fit(small_dataset, tmp_path / name, tiny(steps=5, seed=seed), progress=False, log=lambda m: None)
        runs[name] = load_checkpoint(tmp_path / name)["model"]
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


def test_streamed_rays_train_exactly_like_in_memory_rays(small_dataset, tmp_path):
    logs = []
    fit(small_dataset, tmp_path / "memory", tiny(steps=6, ray_table="memory"), progress=False, log=lambda m: None)
    fit(small_dataset, tmp_path / "stream", tiny(steps=6, ray_table="stream", ray_cache_assets=2), progress=False, log=logs.append)
    assert any("streamed, 2 assets cached" in m for m in logs)
    a, b = (load_checkpoint(tmp_path / n)["model"] for n in ("memory", "stream"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # "auto" streams above the size limit; a preset that mixes rays over all assets cannot stream.
    logs.clear()
    fit(small_dataset, tmp_path / "auto", tiny(steps=1, ray_table_gb=1e-6), progress=False, log=logs.append)
    assert any("streamed" in m for m in logs)
    codenerf = preset("codenerf")
    codenerf.steps, codenerf.ray_table = 1, "stream"
    with pytest.raises(ValueError, match="streamed rays need batches of few assets"):
        fit(small_dataset, tmp_path / "cn", codenerf, progress=False, log=lambda m: None)


def test_edge_rays_change_the_batches_and_zero_is_off(small_dataset, tmp_path):
    """--edge-fraction 0 trains exactly like no edge share (the numbers measured before it reproduce);
    a share changes the run, identically for in-memory and streamed rays."""
    for name, overrides in (("none", {}), ("zero", {"edge_fraction": 0.0}), ("edge", {"edge_fraction": 0.25}),
                            ("edge_stream", {"edge_fraction": 0.25, "ray_table": "stream", "ray_cache_assets": 2})):
        fit(small_dataset, tmp_path / name, tiny(steps=4, **overrides), progress=False, log=lambda m: None)
    none, zero, edge, streamed = (load_checkpoint(tmp_path / n)["model"] for n in ("none", "zero", "edge", "edge_stream"))
    assert all(torch.equal(none[k], zero[k]) for k in none)
    assert not all(torch.equal(none[k], edge[k]) for k in none)
    assert all(torch.equal(edge[k], streamed[k]) for k in edge)
    codenerf = preset("codenerf")
    codenerf.steps, codenerf.edge_fraction = 1, 0.25
    with pytest.raises(ValueError, match="edge rays are drawn per asset"):
        fit(small_dataset, tmp_path / "cn", codenerf, progress=False, log=lambda m: None)


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_trains_a_few_steps(name, small_dataset, tmp_path):
    cfg = preset(name)
    cfg.steps, cfg.batch_size, cfg.eval_assets = 3, 256, 1
    if cfg.assets_per_batch:
        cfg.assets_per_batch = 2
    summary = fit(small_dataset, tmp_path / name, cfg, progress=False, log=lambda m: None)
    assert summary["steps"] == 3
    assert summary["final_quick_psnr"] is not None and summary["final_quick_psnr"] > 0


def test_cli_fit_and_resume(small_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(small_dataset), "--out", str(out), "--preset", "tiny", "--steps", "8", "--quiet", "--views", "0-3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 8
    before = latest_checkpoint(out).read_bytes()
    # A second fit into the same folder must not overwrite it.
    assert main(["fit", str(small_dataset), "--out", str(out), "--preset", "tiny", "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert latest_checkpoint(out).read_bytes() == before
    assert json.loads((out / "artifact.json").read_text())["config"]["model"]["texture_rays"] == "all"
    covered = tmp_path / "covered"
    assert main(["fit", str(small_dataset), "--out", str(covered), "--preset", "tiny", "--steps", "2", "--quiet", "--texture-rays", "covered",
                 "--code-independence", "0.5"]) == 0
    capsys.readouterr()
    model = json.loads((covered / "artifact.json").read_text())["config"]["model"]
    assert model["texture_rays"] == "covered" and model["code_independence"] == 0.5
    assert main(["fit", str(small_dataset), "--out", str(tmp_path / "neg"), "--preset", "tiny", "--quiet", "--code-independence", "-1"]) == 2
    assert "--code-independence must be zero or positive" in capsys.readouterr().err


def test_bad_dataset_paths(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert main(["fit", str(tmp_path / "plain"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "not a dataset" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_empty_dataset(small_dataset, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "artifact.json").write_text((small_dataset / "artifact.json").read_text())
    (empty / "manifest.jsonl").write_text("")
    assert main(["fit", str(empty), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "holds no assets" in capsys.readouterr().err


def test_mismatched_asset_ids_on_resume(tiny_run, small_dataset, tmp_path, capsys):
    before = latest_checkpoint(tiny_run).read_bytes()
    assert main(["fit", str(small_dataset), "--out", str(tiny_run), "--preset", "tiny", "--resume", "--max-assets", "3", "--quiet"]) == 2
    assert "mismatched asset ids" in capsys.readouterr().err
    assert latest_checkpoint(tiny_run).read_bytes() == before


def test_checkpoint_from_another_version_or_corrupt(tiny_run, tmp_path):
    state = load_checkpoint(tiny_run)
    other = tmp_path / "other.ckpt"
    save_checkpoint(other, {k: v for k, v in state.items() if k not in ("format", "format_version", "package_version")})
    raw = torch.load(other, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, other)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(other)
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(latest_checkpoint(tiny_run).read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(corrupt)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)


def test_resume_before_the_first_checkpoint_starts_again(small_dataset, tmp_path):
    """Killed before its first checkpoint (or stopped by a full disk while writing it), a run
    holds its header only: `--resume` then starts it again from step 0, as a user reruns."""
    straight = tmp_path / "straight"
    fit(small_dataset, straight, tiny(steps=20), progress=False, log=lambda m: None)

    broken = tmp_path / "broken"
    with pytest.raises(RuntimeError):
        fit(small_dataset, broken, tiny(steps=20, checkpoint_minutes=0), progress=False, log=lambda m: None,
            on_step=_crash_at(5))
    assert (broken / "artifact.json").is_file() and not (broken / "checkpoints" / "latest.ckpt").exists()
    fit(small_dataset, broken, tiny(steps=20, checkpoint_minutes=0), resume=True, progress=False, log=lambda m: None)
    a, b = load_checkpoint(straight)["model"], load_checkpoint(broken)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(RunError, match="other settings"):  # a header of other settings is still refused
        (broken / "checkpoints" / "latest.ckpt").unlink()
        fit(small_dataset, broken, tiny(steps=21), resume=True, progress=False, log=lambda m: None)


def test_nothing_to_resume(small_dataset, tmp_path):
    with pytest.raises(RunError, match="nothing to resume"):
        fit(small_dataset, tmp_path / "fresh", tiny(), resume=True, progress=False, log=lambda m: None)


def test_info_describes_a_run(tiny_run, capsys):
    assert main(["info", str(tiny_run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "run" and info["step"] == 60 and info["assets_trained"] == 8 and info["preset"] == "tiny"


def test_run_owns_what_a_run_folder_holds(tiny_run, tmp_path):
    from assets2vec.run import Run

    run = Run.open(tiny_run)
    shape, texture = run.codes()
    assert len(run.asset_ids) == len(shape) == len(texture) and run.step == 60
    assert shape.shape[1] == run.config.model.shape_dim and texture.dtype == np.float32
    assert run.model() is run.model()  # built once
    assert torch.equal(run.model().codes.shape.weight.detach(), torch.from_numpy(shape))
    assert run.digest == Run.open(tiny_run / "checkpoints" / "latest.ckpt").digest  # folder or file, same network
    assert run.bank_dir == tiny_run / "inversion_bank" and run.evaluation is None
    assert all("psnr" in h for h in run.history)
    with pytest.raises(CheckpointError):
        Run.open(tmp_path)
