"""`fit`: train the multi-asset NeRF on a rendered dataset into a RUN folder.

The loop is deliberately plain (nanoGPT style): batch -> model -> losses -> step, with
a learning-rate schedule, quick held-out evaluations for the PSNR-vs-time curve,
TensorBoard scalars, and atomic checkpoints. Every random draw comes from one
`torch.Generator` whose state is checkpointed, so a resumed run continues exactly
where the interrupted one stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from nerfstudio.data.scene_box import SceneBox
from tqdm.auto import tqdm

from assets2vec.checkpoint import (
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from assets2vec.configs import FitConfig
from assets2vec.data.rays import (BYTES_PER_RAY, AssetBatcher, RayBatcher, RayTable, StreamedRayTable, build_ray_table, holdout_views,
                                 to_ray_bundle)
from assets2vec.models.latent_nerf import LatentNeRFModel
from assets2vec.nerf_render import render_rays
from assets2vec.run import HISTORY, Run
from render_core.artifacts import ArtifactError, atomic_write_text, make_header, read_header, write_header
from render_core.dataset import RenderedDataset



class RunError(ValueError):
    """The RUN folder cannot be used as asked (exists, belongs to other data, ...)."""


def build_model(config: FitConfig, num_assets: int, device: str | torch.device = "cpu") -> LatentNeRFModel:
    h = config.model.scene_half_size
    box = SceneBox(aabb=torch.tensor([[-h, -h, -h], [h, h, h]]))
    return config.model.setup(scene_box=box, num_train_data=num_assets).to(device)


def build_optimizer(config: FitConfig, model: LatentNeRFModel) -> torch.optim.Optimizer:
    groups = model.get_param_groups()
    params = [{"params": groups["fields"], "lr": config.lr_field, "name": "fields"}, {"params": groups["codes"], "lr": config.lr_codes, "name": "codes"}]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, eps=1e-15)
    if config.optimizer == "adamw":
        # CodeNeRF's choice; weight decay stays at torch's default like theirs.
        return torch.optim.AdamW(params)
    raise ValueError(f"optimizer must be adam or adamw, got {config.optimizer!r}")


def lr_factor(step: int, horizon: int, config: FitConfig) -> float:
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    progress = min(1.0, step / max(1, horizon))
    return warm * config.lr_final_factor**progress


@dataclass
class QuickEval:
    """One held-out view of a few assets, rendered periodically for the learning curve."""

    table: RayTable
    rows: torch.Tensor  # (n,) asset rows in the model's code table

    @classmethod
    def build(cls, dataset: RenderedDataset, asset_ids: list[str], config: FitConfig) -> "QuickEval | None":
        if config.eval_assets <= 0 or config.n_holdout <= 0:
            return None
        rows = np.unique(np.linspace(0, len(asset_ids) - 1, min(config.eval_assets, len(asset_ids))).round().astype(int))
        chosen = [asset_ids[i] for i in rows]
        views = {a: holdout_views(a, dataset.n_views, config.n_holdout, config.seed)[:1] for a in chosen}
        table = build_ray_table(dataset, chosen, views=views)
        return cls(table=table, rows=torch.as_tensor(rows))

    def psnr(self, model: LatentNeRFModel) -> float:
        t = self.table
        index = self.rows[t.asset_index]
        out = render_rays(model, t.origins, t.directions, model.codes.shape.weight[index].detach(), model.codes.texture.weight[index].detach())
        gt = t.rgb.float() / 255.0
        n = t.image_size**2
        mse = ((out["rgb"] - gt) ** 2).view(-1, n, 3).mean((1, 2))
        return float((-10 * torch.log10(mse.clamp(min=1e-10))).mean())


def _training_rays(dataset: RenderedDataset, asset_ids: list[str], config: FitConfig,
                   views: dict[str, list[int]] | None) -> RayTable | StreamedRayTable:
    """The training rays, in memory or streamed from the dataset (`config.ray_table`)."""
    if config.ray_table not in ("auto", "memory", "stream"):
        raise ValueError(f"ray table must be auto, memory or stream, got {config.ray_table!r}")
    n_views = len(config.views) if config.views is not None else dataset.n_views - config.n_holdout
    gb = len(asset_ids) * n_views * dataset.image_size**2 * BYTES_PER_RAY / 1e9
    stream = config.ray_table == "stream" or (config.ray_table == "auto" and gb > config.ray_table_gb)
    if stream and not config.assets_per_batch:
        if config.ray_table == "stream":
            raise ValueError(f"streamed rays need batches of few assets (assets_per_batch); preset {config.preset!r} mixes "
                             f"rays over all assets: use --ray-table memory")
        stream = False
    if stream:
        return StreamedRayTable(dataset, asset_ids, "train", config.n_holdout, config.seed, views, config.ray_cache_assets)
    return build_ray_table(dataset, asset_ids, split="train", n_holdout=config.n_holdout, seed=config.seed, views=views)


def _prepare_run(out: Path, data: Path, config: FitConfig, asset_ids: list[str], resume: bool) -> dict[str, Any] | None:
    """Check the RUN folder; return the checkpoint to resume from, if any."""
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: exists and is not a folder")
    has_header = (out / "artifact.json").is_file()
    ckpt_path = latest_checkpoint(out)
    if resume:
        if not ckpt_path.is_file():
            raise RunError(f"{out}: nothing to resume (no {ckpt_path.relative_to(out)}); drop --resume to start a new run")
        state = load_checkpoint(ckpt_path)
        if state["asset_ids"] != asset_ids:
            raise RunError(
                f"{out}: the checkpoint was trained on {len(state['asset_ids'])} other assets than the "
                f"{len(asset_ids)} selected from {data} (mismatched asset ids); resume with the same dataset and options"
            )
        return state
    if out.exists() and any(out.iterdir()):
        if ckpt_path.is_file():
            raise RunError(f"{out}: already holds a trained run; pass --resume to continue it or choose another --out")
        if not has_header:
            raise RunError(f"{out}: exists, is not empty and is not a run; refusing to write into it")
        header = read_header(out, "run")
        if header.get("config") != json.loads(config.to_json()) or header.get("asset_ids") != asset_ids:
            raise RunError(f"{out}: holds an unfinished run with other settings; remove it or choose another --out")
    return None


def fit(
    data: str | os.PathLike,
    out: str | os.PathLike,
    config: FitConfig,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a run; returns a summary dict.

    Ctrl-C saves a checkpoint before re-raising `KeyboardInterrupt`. `on_step(step)` is
    called after every optimisation step (progress hooks, tests).
    """
    from assets2vec import distributed as ddp

    data, out = Path(data), Path(out)
    device = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and device.type == "cuda":
        visible = torch.cuda.device_count()
        if visible == 0:
            raise RuntimeError("--device cuda, but this process sees no CUDA device")
        # A scheduler that gives each process only its own GPU (CUDA_VISIBLE_DEVICES) shows it as cuda:0.
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % visible)
        torch.cuda.set_device(device)
    rank, world_size = ddp.init_from_env(device)
    try:
        return _fit(data, out, config, resume, device, progress, log, on_step, ddp, rank, world_size)
    finally:
        ddp.shutdown()


def _fit(data, out, config, resume, device, progress, log, on_step, ddp, rank, world_size) -> dict[str, Any]:
    """The body of `fit` for worker `rank` of `world_size` (1 when not data-parallel)."""
    main = rank == 0
    if not main:  # one voice: the other workers train in silence
        progress, log = False, (lambda m: None)
    dataset = RenderedDataset(data)
    if len(dataset) == 0:
        raise ArtifactError(f"{data}: the dataset holds no assets; render some first ('assets2vec render')")
    asset_ids = dataset.asset_ids[: config.max_assets] if config.max_assets else dataset.asset_ids
    state = _prepare_run(out, data, config, asset_ids, resume)
    ddp.barrier()  # every worker has read the folder before the first one writes to it
    if state is not None:
        budget = config.max_minutes
        config = FitConfig.from_json(state["config"])
        config.max_minutes = budget  # a time budget belongs to this invocation, not to the run
    if config.views is not None:
        bad = [v for v in config.views if not 0 <= v < dataset.n_views]
        if bad:
            raise ValueError(f"--views {bad}: the dataset has views 0..{dataset.n_views - 1}")

    t_start = time.time()
    views = {a: config.views for a in asset_ids} if config.views is not None else None
    table = _training_rays(dataset, asset_ids, config, views)
    quick = QuickEval.build(dataset, asset_ids, config)
    log(f"fit: {len(asset_ids)} assets, {len(table):,} training rays from {data}"
        + (f" (streamed, {config.ray_cache_assets} assets cached)" if isinstance(table, StreamedRayTable) else "")
        + f"; preset {config.preset}, seed {config.seed}" + (f"; {world_size} data-parallel workers" if world_size > 1 else ""))

    torch.manual_seed(config.seed)  # initial weights and nerfstudio's stratified jitter
    model = build_model(config, len(asset_ids), device)
    optimizer = build_optimizer(config, model)
    generator = torch.Generator().manual_seed(config.seed)
    if config.assets_per_batch:
        batcher = AssetBatcher(table, config.assets_per_batch, max(1, config.batch_size // config.assets_per_batch), generator,
                               config.foreground_fraction, config.edge_fraction)
    else:
        if config.edge_fraction:
            raise ValueError(f"edge rays are drawn per asset: preset {config.preset!r} mixes rays over all assets "
                             "(assets_per_batch None); leave edge_fraction unset")
        batcher = RayBatcher(table, config.batch_size, generator, config.foreground_fraction)
    model.generator = generator
    if world_size > 1 and config.model.train_sampler != "surface":
        # nerfstudio's stratified sampler draws its jitter from the global RNG per worker; only
        # the surface sampler draws for the global batch and slices, as data-parallel needs.
        raise ValueError(f"data-parallel training needs the surface sampler; preset {config.preset!r} uses "
                         f"{config.model.train_sampler!r} (train it with one process)")
    step, horizon, elapsed_before = 0, config.steps, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batcher.load_state_dict(state["batcher"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)  # nerfstudio's stratified jitter draws on the GPU
        step, horizon, elapsed_before = int(state["step"]), int(state["horizon"]), float(state["train_seconds"])
        log(f"fit: resuming {out} at step {step} of {horizon}")
    elif main:
        out.mkdir(parents=True, exist_ok=True)
        write_header(out, make_header("run", producer="assets2vec fit", seed=config.seed, dataset=str(data.resolve()),
                                      config=json.loads(config.to_json()), asset_ids=asset_ids))
    ddp.broadcast_module(model)
    if main:
        checkpoint_dir(out).mkdir(parents=True, exist_ok=True)

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tensorboard"), purge_step=step if step else None) if main else _NoWriter()
    history_path = out / HISTORY
    history = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()] if history_path.is_file() else []
    history = [h for h in history if h["step"] <= step]

    def snapshot() -> dict[str, Any]:
        return {
            "config": config.to_json(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "batcher": batcher.state_dict(), "torch_rng": torch.get_rng_state(), "asset_ids": asset_ids,
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "step": step, "horizon": horizon, "train_seconds": elapsed_before + (time.time() - t_loop),
            "dataset": str(data.resolve()), "history": history,
        }

    last_saved = [time.time()]

    def checkpoint(periodic: bool) -> None:
        last_saved[0] = time.time()
        if not main:
            return
        s = snapshot()
        if periodic:
            save_checkpoint(checkpoint_dir(out) / f"step-{step:07d}.ckpt", s)
        save_checkpoint(latest_checkpoint(out), s)
        atomic_write_text(history_path, "".join(json.dumps(h) + "\n" for h in history))

    def quick_eval() -> None:
        if quick is None or not main:
            return
        psnr = quick.psnr(model)
        entry = {"step": step, "seconds": round(time.time() - t_start + elapsed_before, 2), "psnr": round(psnr, 3)}
        history.append(entry)
        writer.add_scalar("eval/psnr", psnr, step)
        log(f"fit: step {step}: held-out PSNR {psnr:.2f} dB ({len(quick.rows)} assets) at {entry['seconds']:.0f} s")

    budget_s = config.max_minutes * 60 if config.max_minutes else None
    t_loop = time.time()
    model.train()
    # With a time budget the step count is known only once the speed is: no total (and no
    # misleading ETA) until then.
    sized_by_time = bool(budget_s) and state is None
    bar = tqdm(total=None if sized_by_time else horizon, initial=step, disable=not progress, unit="step", dynamic_ncols=True, desc="fit")
    ema_psnr, timed_from = None, None
    stopped_by = "steps"
    try:
        # Under DDP a Ctrl-C only raises a flag, honoured by all workers at one step boundary.
        with ddp.deferred_interrupts(world_size > 1) as flags:
            while step < horizon:
                for g in optimizer.param_groups:
                    base = config.lr_field if g["name"] == "fields" else config.lr_codes
                    g["lr"] = base * lr_factor(step, horizon, config)
                lo, hi = ddp.rows_of(rank, world_size, batcher.batch_size)
                model.batch_rows = (lo, hi, batcher.batch_size)
                model.train_step = step
                # This worker's rows of the global batch (every worker draws the same batch, but only its own rows).
                batch = batcher.table.select(batcher.next_indices(lo, hi))
                outputs = model(to_ray_bundle(batch, device))
                batch = {k: v.to(device) for k, v in batch.items()}
                counts = ddp.sum_(model.local_counts(outputs, batch).detach())
                model.loss_counts = {"rays": counts[0], "covered": counts[1], "free": counts[2]}
                losses = model.get_loss_dict(outputs, batch)
                table = {k: losses.pop(k) for k in model.TABLE_LOSSES if k in losses}
                loss = sum(losses.values())
                # Every term summed over workers (one all-reduce): logs and PSNR describe the global batch.
                names = list(losses) + list(table)
                terms = [losses[k].detach().float() for k in losses] + [v.detach().float() / world_size for v in table.values()]
                reduced = dict(zip(names, ddp.sum_(torch.stack(terms)).tolist()))
                loss_value = float(sum(reduced.values()))
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"loss became {loss_value} at step {step}; lower the learning rates")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if world_size > 1:
                    ddp.reduce_gradients(list(model.field.parameters()), [model.codes.shape, model.codes.texture],
                                         batcher.batch_assets().to(device))
                if table:
                    sum(table.values()).backward()  # identical on every worker: added once, after the reduction
                optimizer.step()
                step += 1
                psnr = -10.0 * math.log10(max(reduced["rgb_loss"] / max(model.config.rgb_loss_mult, 1e-12), 1e-10))  # batch MSE
                ema_psnr = psnr if ema_psnr is None else 0.9 * ema_psnr + 0.1 * psnr
                if step % 25 == 0:
                    for k, v in reduced.items():
                        writer.add_scalar(f"train/{k}", v, step)
                    writer.add_scalar("train/psnr", psnr, step)
                now = time.time()
                if step == 20:
                    timed_from = (now, step)
                # With a time budget, shorten the schedule once the speed is known, so the
                # learning rate still anneals before the budget ends.
                if budget_s and timed_from and step == timed_from[1] + 30 and state is None:
                    rate = 30 / (now - timed_from[0])
                    left = budget_s - (now - t_start) - 0.04 * budget_s
                    horizon = min(horizon, step + max(1, int(rate * left * 0.97)))
                    horizon = ddp.broadcast_ints([horizon])[0]  # rank 0's clock decides for all
                    bar.total = horizon
                    log(f"fit: {rate:.1f} steps/s; the schedule will end at step {horizon} to fit {config.max_minutes:g} min")
                rays_s = (bar.format_dict.get("rate") or 0.0) * config.batch_size
                bar.set_postfix(loss=f"{loss_value:.4f}", psnr=f"{ema_psnr:.2f}", rays_s=f"{rays_s:,.0f}", refresh=False)
                bar.update(1)
                if on_step is not None:
                    on_step(step)
                if step % config.eval_every == 0 and step < horizon:
                    quick_eval()
                if step % config.checkpoint_every == 0 and step < horizon:
                    checkpoint(periodic=True)
                elif config.checkpoint_minutes and time.time() - last_saved[0] >= 60 * config.checkpoint_minutes and step < horizon:
                    checkpoint(periodic=False)  # by time: only the latest checkpoint, no step file
                over = bool(budget_s and time.time() - t_start > budget_s)
                if world_size > 1:
                    over = bool(ddp.broadcast_ints([int(over)])[0])  # rank 0's clock decides for all
                    if ddp.any_flag([flags["stop"]], device)[0]:
                        raise KeyboardInterrupt
                if over:
                    stopped_by = "time"
                    break
    except KeyboardInterrupt:
        bar.close()
        checkpoint(periodic=False)
        writer.close()
        log(f"fit: interrupted at step {step}; checkpoint saved, continue with --resume")
        raise
    bar.close()
    quick_eval()
    checkpoint(periodic=False)
    writer.close()
    # No worker returns (or tears the process group down) before rank 0's checkpoint is on
    # disk: a worker leaving early would report a run that is not there yet.
    ddp.barrier()
    summary = {
        "run": str(out), "steps": step, "horizon": horizon, "stopped_by": stopped_by,
        "train_seconds": round(elapsed_before + time.time() - t_loop, 1), "assets": len(asset_ids),
        "final_quick_psnr": history[-1]["psnr"] if history else None,
    }
    log(f"fit: done, {step} steps in {summary['train_seconds']:.0f} s; checkpoint {latest_checkpoint(out)}")
    return summary


class _NoWriter:
    """TensorBoard for workers other than rank 0: they log nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        return None

    def close(self) -> None:
        return None


def load_run(run: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[LatentNeRFModel, FitConfig, dict[str, Any]]:
    """(model, config, checkpoint state) of a RUN folder or checkpoint file: a shorthand for `Run.open`."""
    opened = Run.open(run)
    return opened.model(device), opened.config, opened.state


def run_rig(state: dict[str, Any]):
    """The rig and image size a run was trained with (defaults if its dataset has moved)."""
    return Run(Path(state.get("dataset", "")), state).rig()
