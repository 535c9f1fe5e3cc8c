"""Data-parallel training: 2 CPU workers (gloo, torchrun) reach the single-process result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import torch

from assets2vec.checkpoint import load_checkpoint

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    import torch.distributed as dist
    from assets2vec.configs import preset
    from assets2vec.train import fit
    import assets2vec.train as train_module

    shapes = []
    real = dist.all_reduce
    def spy(t, *a, **k):
        shapes.append(list(t.shape))
        return real(t, *a, **k)
    dist.all_reduce = spy
    cfg = preset("tiny")
    cfg.steps = 12
    # 3 assets x 170 rays: the two workers' halves split an asset's rays, not just whole assets.
    cfg.assets_per_batch, cfg.batch_size = 3, 510
    cfg.model.mixed_precision = False  # bf16 rounding differs with the split; fp32 shows the logic is exact
    models = []
    real_build = train_module.build_model
    def build(*a, **k):
        models.append(real_build(*a, **k))
        return models[-1]
    train_module.build_model = build
    def first_step(step):
        # The summed gradient of step 1, as the optimizer saw it: Adam hides a wrong scale, this does not.
        if step == 1 and os.environ.get("RANK", "0") == "0":
            grads = {n: p.grad.detach().clone() for n, p in models[0].named_parameters() if p.grad is not None}
            torch.save(grads, os.path.join(sys.argv[3], "grads.pt"))
    fit(sys.argv[1], sys.argv[2], cfg, progress=False, log=lambda m: None, on_step=first_step)
    with open(os.path.join(sys.argv[3], f"allreduce-{os.environ.get('RANK', '0')}.json"), "w") as f:
        json.dump(shapes, f)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from assets2vec.cli.main import exit_worker
        exit_worker(0)  # as `python -m assets2vec.cli.main` workers leave
''')


# faulthandler: should a worker ever abort in native code, its Python stack is in the report.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1", "PYTHONWARNINGS": "ignore"}


def _fit(script, data, out, spy_dir, workers):
    cmd = [sys.executable, str(script), str(data), str(out), str(spy_dir)]
    if workers > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={workers}"] + cmd[1:]
    _run_workers(cmd, out, retry=workers > 1)


def _run_workers(cmd, out, retry=True, clean=True):
    """Run `cmd` (torchrun workers writing the run folder `out`) and return it, asserting success.
    `clean`: start a retry from an empty `out` (off for a resume, which must keep its checkpoint)."""
    env = {**os.environ, **WORKER_ENV}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if retry and r.returncode != 0 and "SIGABRT" in r.stderr:
        # Workers used to abort now and then in native teardown after their last Python line (see
        # `exit_worker`, which now skips it). Should an abort still happen, keep the evidence and run once
        # more; the retry must then pass every check the caller makes.
        (out.parent / f"{out.name}-aborted-stderr.txt").write_text(r.stderr)
        warnings.warn(f"a torchrun worker aborted; retrying once. Its stderr:\n{_native_stacks(r.stderr)}")
        if clean:
            shutil.rmtree(out, ignore_errors=True)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, _native_stacks(r.stderr)
    return r


def _native_stacks(stderr: str) -> str:
    """The faulthandler dump (every thread's Python stack) if there is one, else the tail."""
    start = stderr.find("Fatal Python error")
    return stderr[start : start + 6000] if start >= 0 else stderr[-3000:]


def test_two_workers_match_one_process_and_reduce_only_batch_rows(small_dataset, tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    (tmp_path / "spy1").mkdir()
    (tmp_path / "spy2").mkdir()
    _fit(script, small_dataset, tmp_path / "one", tmp_path / "spy1", 1)
    _fit(script, small_dataset, tmp_path / "two", tmp_path / "spy2", 2)
    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert a["step"] == b["step"] == 12 and a["asset_ids"] == b["asset_ids"]
    for k, v in a["model"].items():
        if v.is_floating_point() and v.numel():
            torch.testing.assert_close(b["model"][k], v, rtol=1e-4, atol=2e-5, msg=k)
    assert [h["psnr"] for h in a["history"]] == [h["psnr"] for h in b["history"]]
    ga, gb = torch.load(tmp_path / "spy1" / "grads.pt"), torch.load(tmp_path / "spy2" / "grads.pt")
    assert ga.keys() == gb.keys() and "codes.shape.weight" in ga
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], rtol=1e-4, atol=1e-7, msg=k)
    # One process never communicates; two reduce counts, losses, the network, and code rows.
    assert json.loads((tmp_path / "spy1" / "allreduce-0.json").read_text()) == []
    shapes = json.loads((tmp_path / "spy2" / "allreduce-1.json").read_text())
    n_assets = len(a["asset_ids"])
    ds, dt = a["model"]["codes.shape.weight"].shape[1], a["model"]["codes.texture.weight"].shape[1]
    code_reductions = [s for s in shapes if len(s) == 2 and s[1] in (ds, dt)]
    assert code_reductions and all(s[0] < n_assets for s in code_reductions)  # batch rows, never the table


def test_fit_workers_flag_runs_torchrun(small_dataset, tmp_path):
    r = _run_workers([sys.executable, "-m", "assets2vec.cli.main", "fit", str(small_dataset), "--out", str(tmp_path / "run"),
                      "--preset", "tiny", "--steps", "6", "--quiet", "--workers", "2"], tmp_path / "run")
    summaries = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["steps"] == 6  # one worker speaks
    assert "2 data-parallel workers" in r.stderr
    assert load_checkpoint(tmp_path / "run")["step"] == 6


def test_interrupted_workers_stop_together_and_resume(small_dataset, tmp_path):
    import signal
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "assets2vec.cli.main",
           "fit", str(small_dataset), "--out", str(run), "--preset", "tiny", "--steps", "100000", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (run / "artifact.json").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(4)  # some steps in
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends torchrun
    _, err = proc.communicate(timeout=120)
    assert "checkpoint saved, continue with --resume" in err, err[-2000:]
    step = load_checkpoint(run)["step"]
    assert 0 < step < 100000
    r = _run_workers([sys.executable, "-m", "assets2vec.cli.main", "fit", str(small_dataset), "--out", str(run), "--resume",
                      "--max-minutes", "0.05", "--quiet", "--workers", "2"], run, clean=False)
    assert f"resuming {run} at step {step}" in r.stderr and load_checkpoint(run)["step"] > step
