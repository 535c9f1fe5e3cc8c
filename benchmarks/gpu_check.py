"""Every GPU figure in one command: what a session lent a GPU machine runs, writing one JSON.

    bash benchmarks/gpu_check.sh                      # on the GPU machine (installs the carried wheels first)
    python benchmarks/gpu_check.py --small            # the CPU rehearsal (the test suite runs it)

Stages (`--stages`, each timed, each recorded even when another fails; the JSON is rewritten after
every stage, so a run cut short keeps what it measured, and stages run in separate calls add to the
same file; `--work` is emptied first, so a rerun measures from scratch):
- env: the machine, torch, CUDA.
- render: `assets2vec render --device cuda` on the demo library (assets/s), and CUDA vs CPU agreement
  (masks, depth, colour) on a small library rendered both ways.
- fit: the default `fit` command on the GPU with a time budget (`--fit-seconds`); rays/s and GPU
  utilisation from the run's history and from nvidia-smi sampled meanwhile; held-out PSNR by `eval`.
- eval: `eval` on the GPU and on the CPU, per-asset PSNR compared.
- catalog: `catalog build` (decoded spaces included) on the GPU and on the CPU: time and vector agreement.
- photo: search by photo through the API on the GPU (bank built once, its time reported apart) and
  the same photos on the CPU: seconds per photo and agreement; rig-view inversion speed.
- scale: `--scale-assets` (1,000) procedural assets: render, fit for `--scale-fit-minutes`, held-out PSNR, catalog build.

Targets (issue #30, on the H200) are checked in "targets". Data: our procedural library, on purpose:
this measures devices and throughput, not accuracy on foreign data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Plan:
    assets: int = 120
    size: int = 64
    render_args: tuple[str, ...] = ()  # the defaults: the demo's 24 views
    agree_assets: int = 12
    fit_args: tuple[str, ...] = ()  # the default command
    eval_assets: int = 16
    photos: int = 10
    cpu_photos: int = 3
    scale_assets: int = 1000
    scale_fit_minutes: float = 3.0
    scale_eval_assets: int = 100


SMALL = Plan(assets=4, size=16, render_args=("--views", "4", "--floor-views", "0"), agree_assets=2,
             fit_args=("--preset", "tiny", "--steps", "20"), eval_assets=2, photos=1, cpu_photos=1,
             scale_assets=5, scale_fit_minutes=0.1, scale_eval_assets=2)


IN_PROCESS = False
"""the rehearsal runs each command in this process (their start-up would be most of its time); on the GPU
each command is its own process, as a user runs it, and a crash in one cannot take the others' figures"""


def cli(*args, timeout: float = 900) -> tuple[float, str]:
    """(seconds, stdout) of `python -m assets2vec ARGS`; a failure raises with its stderr's last lines."""
    t0 = time.time()
    if IN_PROCESS:
        import contextlib
        import io

        from assets2vec.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        if code != 0:
            raise RuntimeError(f"assets2vec {' '.join(map(str, args[:2]))} exited {code}: {err.getvalue().strip()[-800:]}")
        return time.time() - t0, out.getvalue()
    p = subprocess.run([sys.executable, "-m", "assets2vec", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                           [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
    if p.returncode != 0:
        raise RuntimeError(f"assets2vec {' '.join(map(str, args[:2]))} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return time.time() - t0, p.stdout


class SmiSampler:
    """GPU utilisation from nvidia-smi every half second while a command runs (None without nvidia-smi)."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self.ok = shutil.which("nvidia-smi") is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout.split()
                self.samples.append((time.time(), float(out[0])))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                self.ok = False
                return
            self._stop.wait(0.5)

    def __enter__(self):
        if self.ok:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {"samples": 0}
        u = np.array([v for _, v in self.samples])
        busy = np.nonzero(u > 0)[0]  # from the first to the last busy sample: training, not start-up
        window = u[busy[0]:busy[-1] + 1] if len(busy) else u
        return {"samples": len(u), "mean_all": round(float(u.mean()), 1), "mean_busy_window": round(float(window.mean()), 1),
                "max": float(u.max())}


def compare_datasets(a: Path, b: Path) -> dict:
    from render_core.dataset import RenderedDataset

    da, db = RenderedDataset(a), RenderedDataset(b)
    masks, depth, rgb = [], [], []
    for asset in da.asset_ids:
        va, vb = da.load(asset), db.load(asset)
        masks.append(float(((va.alpha > 127) == (vb.alpha > 127)).mean()))
        hit = (va.depth > 0) & (vb.depth > 0)
        depth.append(float(np.abs(va.depth[hit] - vb.depth[hit]).max()) if hit.any() else 0.0)
        rgb.append(float(np.abs(va.rgb.astype(np.float32) - vb.rgb.astype(np.float32)).mean() / 255))
    return {"assets": len(masks), "mask_agreement_min": min(masks), "depth_max_abs_diff": max(depth),
            "rgb_mean_abs_diff": float(np.mean(rgb))}


def stage_env(ctx) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
           "cuda_available": cuda, "numpy": np.__version__, "cpu_count": os.cpu_count(), "device": ctx.gpu,
           "small": ctx.small}
    if cuda:
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                                       timeout=10).stdout.strip() or None
    except OSError:
        out["commit"] = None  # a copied tree without git
    return out


def stage_render(ctx) -> dict:
    p, w = ctx.plan, ctx.work
    t_gen, _ = cli("assets", "generate", w / "library", "--n", p.assets, "--seed", 0, "--quiet")
    t_gpu, _ = cli("render", w / "library", w / "dataset", "--size", p.size, *p.render_args, "--device", ctx.gpu, "--quiet")
    cli("assets", "generate", w / "agree_lib", "--n", p.agree_assets, "--seed", 3, "--quiet")
    t_a, _ = cli("render", w / "agree_lib", w / "agree_gpu", "--size", p.size, *p.render_args, "--device", ctx.gpu, "--quiet")
    t_b, _ = cli("render", w / "agree_lib", w / "agree_cpu", "--size", p.size, *p.render_args, "--device", "cpu", "--quiet")
    from render_core.dataset import RenderedDataset

    views = RenderedDataset(w / "dataset").n_views
    return {"assets": p.assets, "size": p.size, "views": views, "generate_seconds": round(t_gen, 1),
            "seconds": round(t_gpu, 1), "assets_per_second": round(p.assets / t_gpu, 2),
            "agreement": {**compare_datasets(w / "agree_gpu", w / "agree_cpu"), "seconds_gpu": round(t_a, 1),
                          "seconds_cpu": round(t_b, 1)}}


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line.strip()]


def stage_fit(ctx) -> dict:
    p, w = ctx.plan, ctx.work
    budget = ["--max-minutes", round(ctx.fit_seconds / 60, 4)] if not ctx.small else []
    with SmiSampler() as smi:
        t_fit, out = cli("fit", w / "dataset", "--out", w / "run", *p.fit_args, *budget, "--device", ctx.gpu, "--quiet")
    summary = json.loads(out.strip().splitlines()[-1])
    h = history(w / "run")
    rates = [e["rays_per_s"] for e in h if e.get("rays_per_s")]
    utils = [e["gpu_util"] for e in h if "gpu_util" in e]
    t_eval, out = cli("eval", w / "run", "--json", "--swap-pairs", 0, "--device", ctx.gpu, "--quiet")
    ev = json.loads(out)
    return {"command_seconds": round(t_fit, 1), "train_seconds": summary["train_seconds"], "steps": summary["steps"],
            "rays_per_s_history": rates, "rays_per_s_mean": round(float(np.mean(rates))) if rates else None,
            "gpu_util_history_mean": round(float(np.mean(utils)), 1) if utils else None, "nvidia_smi": smi.summary(),
            "heldout_psnr": round(ev["psnr"], 3), "heldout_mask_iou": round(ev["mask_iou"], 4), "eval_assets": ev["assets"],
            "eval_seconds": round(t_eval, 1)}


def stage_eval(ctx) -> dict:
    w, n = ctx.work, ctx.plan.eval_assets
    res = {}
    for dev in (ctx.gpu, "cpu"):
        t, out = cli("eval", w / "run", "--json", "--swap-pairs", 0, "--max-assets", n, "--device", dev, "--quiet")
        res[dev] = (t, json.loads(out))
    a, b = res[ctx.gpu][1]["per_asset_psnr"], res["cpu"][1]["per_asset_psnr"]
    return {"assets": n, "seconds_gpu": round(res[ctx.gpu][0], 1), "seconds_cpu": round(res["cpu"][0], 1),
            "psnr_max_abs_diff": max(abs(a[k] - b[k]) for k in a)}


def stage_catalog(ctx) -> dict:
    from assets2vec import Catalog

    w = ctx.work
    t_gpu, _ = cli("catalog", "build", w / "run", w / "catalog", "--device", ctx.gpu, "--quiet")
    t_cpu, _ = cli("catalog", "build", w / "run", w / "catalog_cpu", "--device", "cpu", "--quiet")
    diffs = {}
    with Catalog.open(w / "catalog", device="cpu") as a, Catalog.open(w / "catalog_cpu", device="cpu") as b:
        assert a.ids == b.ids
        for space in ("geometry", "appearance", "joint"):
            diffs[space] = float(np.abs(a.vectors(space) - b.vectors(space)).max())
    return {"assets": ctx.plan.assets, "seconds_gpu": round(t_gpu, 1), "seconds_cpu": round(t_cpu, 1), "vector_max_abs_diff": diffs}


def _photos(ctx, n: int) -> list[tuple[str, np.ndarray]]:
    """(asset id, a held-out view) of n assets spread over the run: views the run never trained on."""
    from assets2vec.data.rays import holdout_views
    from assets2vec.run import Run
    from render_core.dataset import RenderedDataset

    run = Run.open(ctx.work / "run")
    ds = RenderedDataset(run.dataset)
    out = []
    for i in np.linspace(0, len(run.asset_ids) - 1, n).round().astype(int):
        asset = run.asset_ids[i]
        v = ds.load(asset)
        out.append((asset, v.rgb[int(holdout_views(asset, v.n_views, run.config.n_holdout, run.config.seed)[0])]))
    return out


def stage_photo(ctx) -> dict:
    from assets2vec import Catalog
    from assets2vec.code_bank import run_bank
    from assets2vec.invert import InversionConfig, invert
    from render_core.rig import intrinsics

    photos = _photos(ctx, ctx.plan.photos)
    out = {}
    answers = {}
    for label, dev, todo in (("device", ctx.gpu, photos), ("cpu", "cpu", photos[:ctx.plan.cpu_photos])):
        with Catalog.open(ctx.work / "catalog", device=dev) as cat:
            t0 = time.time()
            cat.photo_bank()
            bank_s = time.time() - t0
            seconds, hits, got = [], 0, []
            for asset, image in todo:
                r = cat.search_image(image, k=1)
                seconds.append(r["seconds"])
                hits += r["asset"] == asset
                got.append((r["asset"], r["fit_psnr"]))
            answers[label] = got
            model, rig, size = cat.model()
            bank = run_bank(ctx.work / "run", model, rig, size, progress=False)
            t_inv = []
            for _, image in todo[:1 if ctx.small else 3]:
                t0 = time.time()
                invert(model, [image], intrinsics(rig.fov_deg, size), rig=rig, config=InversionConfig(), bank=bank)
                t_inv.append(time.time() - t0)
        out[label] = {"device": dev, "photos": len(todo), "bank_seconds": round(bank_s, 1), "seconds_per_photo_mean": round(float(np.mean(seconds)), 3),
                    "seconds_per_photo_max": round(float(np.max(seconds)), 3), "top1": hits / len(todo),
                    "rig_inversion_seconds_mean": round(float(np.mean(t_inv)), 3)}
    # The CPU pass read the banks the device built (their key does not depend on the device): compare
    # a rig bank built on each device too, so the banks' own agreement is measured.
    from assets2vec.code_bank import CodeBank
    from render_core.poses import rig_poses

    banks = []
    for dev in (ctx.gpu, "cpu"):
        with Catalog.open(ctx.work / "catalog", device=dev) as cat:
            model, rig, size = cat.model()
            banks.append(CodeBank.build(model, rig_poses(rig), intrinsics(rig.fov_deg, size), size, progress=False).renders.float())
    out["rig_bank_renders_max_abs_diff"] = round(float((banks[0] - banks[1]).abs().max()), 5)
    n = ctx.plan.cpu_photos
    same = [a[0] == b[0] for a, b in zip(answers["device"][:n], answers["cpu"])]
    psnr = [abs(a[1] - b[1]) for a, b in zip(answers["device"][:n], answers["cpu"])]
    return {**out,
            "same_asset": f"{sum(same)}/{len(same)}", "fit_psnr_max_abs_diff": round(max(psnr), 3)}


def stage_scale(ctx) -> dict:
    p, w = ctx.plan, ctx.work / "scale"
    t_gen, _ = cli("assets", "generate", w / "library", "--n", p.scale_assets, "--seed", 1, "--quiet")
    t_render, _ = cli("render", w / "library", w / "dataset", "--size", p.size, *p.render_args, "--device", ctx.gpu, "--quiet")
    fit_args = p.fit_args + (() if ctx.small else ("--max-minutes", p.scale_fit_minutes))
    with SmiSampler() as smi:
        t_fit, out = cli("fit", w / "dataset", "--out", w / "run", *fit_args, "--device", ctx.gpu, "--quiet")
    summary = json.loads(out.strip().splitlines()[-1])
    _, out = cli("eval", w / "run", "--json", "--swap-pairs", 0, "--max-assets", p.scale_eval_assets, "--device", ctx.gpu, "--quiet")
    ev = json.loads(out)
    t_build, _ = cli("catalog", "build", w / "run", w / "catalog", "--device", ctx.gpu, "--quiet")
    rates = [e["rays_per_s"] for e in history(w / "run") if e.get("rays_per_s")]
    return {"assets": p.scale_assets, "generate_seconds": round(t_gen, 1), "render_seconds": round(t_render, 1),
            "fit_train_seconds": summary["train_seconds"], "fit_steps": summary["steps"],
            "rays_per_s_mean": round(float(np.mean(rates))) if rates else None, "nvidia_smi": smi.summary(),
            "heldout_psnr": round(ev["psnr"], 3), "heldout_mask_iou": round(ev["mask_iou"], 4), "eval_assets": ev["assets"],
            "catalog_build_seconds": round(t_build, 1)}


STAGES = {"env": stage_env, "render": stage_render, "fit": stage_fit, "eval": stage_eval, "catalog": stage_catalog,
          "photo": stage_photo, "scale": stage_scale}
NEEDS = {"fit": "render", "eval": "fit", "catalog": "fit", "photo": "catalog"}


def targets(r: dict) -> dict:
    """Issue #30's targets against what was measured (None: not measured in this run)."""
    def get(*path):
        d = r
        for k in path:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    def check(value, ok):
        return None if value is None else {"value": value, "met": bool(ok(value))}

    return {
        "fit_120_psnr_ge_30_in_30s": check(get("fit", "heldout_psnr"), lambda v: v >= 30 and (get("fit", "train_seconds") or 1e9) <= 31),
        "fit_rays_per_s_ge_5M": check(get("fit", "rays_per_s_mean"), lambda v: v >= 5e6),
        "fit_gpu_util_ge_80": check(get("fit", "gpu_util_history_mean") or get("fit", "nvidia_smi", "mean_busy_window"), lambda v: v >= 80),
        "render_1000_le_60s": check(get("scale", "render_seconds"), lambda v: v <= 60),
        "fit_1000_ge_29dB_in_3min": check(get("scale", "heldout_psnr"), lambda v: v >= 29 and (get("scale", "fit_train_seconds") or 1e9) <= 181),
        "catalog_build_1000_le_60s": check(get("scale", "catalog_build_seconds"), lambda v: v <= 60),
        "photo_search_le_0.3s": check(get("photo", "device", "seconds_per_photo_mean"), lambda v: v <= 0.3),
    }


def write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


class Context:
    def __init__(self, plan: Plan, work: Path, small: bool, fit_seconds: float):
        import torch

        self.plan, self.work, self.small, self.fit_seconds = plan, work, small, fit_seconds
        self.gpu = "cuda" if torch.cuda.is_available() else "cpu"  # the rehearsal runs the same code on the CPU


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="the CPU rehearsal: a few tiny assets, a few steps")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {','.join(STAGES)} (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json")
    ap.add_argument("--work", type=Path, help="scratch folder, emptied first (default: a temporary one, removed at the end)")
    ap.add_argument("--fit-seconds", type=float, default=30.0, help="the fit stage's training budget (default: 30)")
    ap.add_argument("--scale-assets", type=int, help="assets in the scale stage (default: 1000)")
    ap.add_argument("--scale-fit-minutes", type=float, help="the scale stage's training budget (default: 3)")
    args = ap.parse_args(argv)
    plan = SMALL if args.small else Plan()
    global IN_PROCESS
    IN_PROCESS = args.small
    if args.scale_assets:
        plan.scale_assets = args.scale_assets
    if args.scale_fit_minutes:
        plan.scale_fit_minutes = args.scale_fit_minutes
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        ap.error(f"unknown stages {unknown}; choose from {','.join(STAGES)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    if args.work is not None:  # a rerun (after a timeout, say) must not resume a half-made run or time cached work
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(plan, work, args.small, args.fit_seconds)
    # Stages run in separate calls (the 1,000-asset one alone) add to the same file.
    results: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.update(stages=sorted(set(results.get("stages", [])) | set(stages)), started=time.strftime("%Y-%m-%d %H:%M:%S"))
    t_all = time.time()
    try:
        for name in ["env"] + [s for s in stages if s != "env"]:
            need = NEEDS.get(name)
            if need and isinstance(results.get(need), dict) and "error" in results[need]:
                results[name] = {"error": f"skipped: stage {need} failed"}
                continue
            t0 = time.time()
            print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
            try:
                results[name] = {**STAGES[name](ctx), "stage_seconds": round(time.time() - t0, 1)}
            except Exception as exc:  # one stage's failure must not lose the others' figures
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000], "stage_seconds": round(time.time() - t0, 1)}
            results["targets"] = targets(results)
            results["seconds"] = round(time.time() - t_all, 1)
            write(args.out, results)
            print(f"gpu_check: {name} done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results["targets"], indent=1))
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
