"""`fit`: train the multi-asset NeRF on a rendered dataset into a RUN folder.

The loop is deliberately plain (nanoGPT style): batch -> model -> losses -> step, with
a learning-rate schedule, quick held-out evaluations for the PSNR-vs-time curve,
TensorBoard scalars, and atomic checkpoints. Every random draw comes from one
`torch.Generator` whose state is checkpointed, so a resumed run continues exactly
where the interrupted one stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from nerfstudio.engine.callbacks import TrainingCallbackLocation
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
from assets2vec.devices import describe, gpu_utilisation, synchronize
from assets2vec.models.latent_nerf import LatentNeRFModel
from assets2vec.nerf_render import render_rays
from assets2vec.run import HISTORY, Run, build_model
from render_core.artifacts import ArtifactError, atomic_write_text, make_header, read_header, sweep_stale_temps, write_header
from render_core.dataset import RenderedDataset



SYNC_EVERY = 25
"""on a GPU, steps between reads of the loss (each read waits for the device to finish its queue)"""
DEVICE_RAYS_SHARE = 0.5
"""the in-memory ray table is copied to the GPU when it takes at most this share of the GPU's free memory"""


class RunError(ValueError):
    """The RUN folder cannot be used as asked (exists, belongs to other data, ...)."""


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
    if resume and not ckpt_path.is_file():
        if not has_header:
            raise RunError(f"{out}: nothing to resume (no {ckpt_path.relative_to(out)}); drop --resume to start a new run")
        # Stopped before its first checkpoint: the same command starts the run again from step 0
        # (the header check below refuses a folder of other settings).
        resume = False
    if resume:
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
    import assets2vec.distributed as ddp

    from assets2vec.devices import resolve_device

    data, out = Path(data), Path(out)
    device = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and device.type == "cuda":
        visible = torch.cuda.device_count()
        local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        if not os.environ.get("CUDA_VISIBLE_DEVICES") or visible > 1:
            check_workers(local, device)
        # A scheduler that gives each process only its own GPU (CUDA_VISIBLE_DEVICES) shows it as cuda:0.
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % visible)
        torch.cuda.set_device(device)
    rank, world_size = ddp.init_from_env(device)
    try:
        return _fit(data, out, config, resume, device, progress, log, on_step, ddp, rank, world_size)
    finally:
        ddp.shutdown()


def check_workers(workers: int, device: torch.device) -> None:
    """Refuse data-parallel training that cannot start: NCCL needs one GPU per worker on a machine, and
    fails deep inside ("Duplicate GPU detected") when two share one."""
    if device.type != "cuda" or workers <= 1:
        return
    visible = torch.cuda.device_count()
    if workers > visible:
        raise ValueError(f"--workers {workers} with --device {device}: data-parallel training on GPUs needs one GPU per "
                         f"worker and this machine has {visible}; use --workers {visible} (one process already keeps "
                         f"a GPU busy with the GPU batch), or --device cpu")


def _fit(data, out, config, resume, device, progress, log, on_step, ddp, rank, world_size) -> dict[str, Any]:
    """The body of `fit` for worker `rank` of `world_size` (1 when not data-parallel)."""
    if rank != 0:  # one voice: the other workers train in silence
        progress, log = False, (lambda m: None)
    dataset = RenderedDataset(data)
    if len(dataset) == 0:
        raise ArtifactError(f"{data}: the dataset holds no assets; render some first ('assets2vec render')")
    asset_ids = dataset.asset_ids[: config.max_assets] if config.max_assets else dataset.asset_ids
    state = _prepare_run(out, data, config, asset_ids, resume)
    if rank == 0 and out.is_dir():
        sweep_stale_temps(out)  # left by a run killed while writing a checkpoint
    ddp.barrier()  # every worker has read the folder before the first one writes to it
    if state is not None:
        budget = config.max_minutes
        config = FitConfig.from_json(state["config"])
        config.max_minutes = budget  # a time budget belongs to this invocation, not to the run
    if config.views is not None:
        bad = [v for v in config.views if not 0 <= v < dataset.n_views]
        if bad:
            raise ValueError(f"--views {bad}: the dataset has views 0..{dataset.n_views - 1}")
    trainer = _Trainer(dataset, asset_ids, out, config, state, device, log, ddp, rank, world_size)
    return trainer.train(progress, on_step)


def _device_rays(table, device: torch.device, log):
    """`select(indices) -> batch` drawing from the training rays. On a GPU with room, the in-memory table is
    copied there once and batches are gathered on the device (the indices still come from the CPU
    generator, so the draws are the device's choice no more than the seed's); else batches are gathered
    on the CPU and moved."""
    if device.type != "cuda" or not isinstance(table, RayTable):
        return table.select
    names = ("origins", "directions", "pixel_area", "rgb", "alpha", "surface_t", "asset_index")
    need = sum(getattr(table, k).element_size() * getattr(table, k).nelement() for k in names)
    free, _ = torch.cuda.mem_get_info(device)
    if need > DEVICE_RAYS_SHARE * free:
        log(f"fit: the ray table ({need / 1e9:.1f} GB) stays in host memory: the GPU has {free / 1e9:.1f} GB free")
        return table.select
    on_device = dataclasses.replace(table, **{k: getattr(table, k).to(device) for k in names})
    # From pinned memory the copy is queued like a kernel; from pageable memory it would wait for the queue.
    return lambda idx: on_device.select(idx.pin_memory().to(device, non_blocking=True))


def _make_batcher(table, config: FitConfig, generator: torch.Generator) -> RayBatcher | AssetBatcher:
    if config.assets_per_batch:
        return AssetBatcher(table, config.assets_per_batch, max(1, config.batch_size // config.assets_per_batch), generator,
                            config.foreground_fraction, config.edge_fraction)
    if config.edge_fraction:
        raise ValueError(f"edge rays are drawn per asset: preset {config.preset!r} mixes rays over all assets "
                         "(assets_per_batch None); leave edge_fraction unset")
    return RayBatcher(table, config.batch_size, generator, config.foreground_fraction)


class _Trainer:
    """One worker's training loop: set-up, the optimisation step, the time budget, evaluations,
    checkpoints and Ctrl-C. Step-dependent behaviour reaches the model through its nerfstudio
    training callbacks; the generator and the worker's batch rows are given when it is built."""

    def __init__(self, dataset: RenderedDataset, asset_ids: list[str], out: Path, config: FitConfig,
                 state: dict[str, Any] | None, device: torch.device, log, ddp, rank: int, world_size: int):
        self.dataset, self.data, self.asset_ids, self.out, self.config = dataset, Path(dataset.root), asset_ids, out, config
        self.state, self.device, self.log, self.ddp, self.world_size = state, device, log, ddp, world_size
        self.main = rank == 0
        self.t_start = time.time()
        views = {a: config.views for a in asset_ids} if config.views is not None else None
        self.table = _training_rays(dataset, asset_ids, config, views)
        self.quick = QuickEval.build(dataset, asset_ids, config)
        log(f"fit: {len(asset_ids)} assets, {len(self.table):,} training rays from {self.data}"
            + (f" (streamed, {config.ray_cache_assets} assets cached)" if isinstance(self.table, StreamedRayTable) else "")
            + f"; preset {config.preset}, seed {config.seed}, batch {config.batch_size:,} rays, on {describe(device)}"
            + (f"; {world_size} data-parallel workers" if world_size > 1 else ""))
        if world_size > 1 and config.model.train_sampler != "surface":
            # nerfstudio's stratified sampler draws its jitter from the global RNG per worker; only
            # the surface sampler draws for the global batch and slices, as data-parallel needs.
            raise ValueError(f"data-parallel training needs the surface sampler; preset {config.preset!r} uses "
                             f"{config.model.train_sampler!r} (train it with one process)")
        self.generator = torch.Generator().manual_seed(config.seed)
        self.batcher = _make_batcher(self.table, config, self.generator)
        self.select = _device_rays(self.table, device, log)
        # A GPU step must not wait for the host: its losses are read (one synchronisation) every few steps.
        self.sync_every = 1 if device.type == "cpu" else SYNC_EVERY
        self.rows = ddp.rows_of(rank, world_size, self.batcher.batch_size)
        torch.manual_seed(config.seed)  # initial weights and nerfstudio's stratified jitter
        self.model = build_model(config, len(asset_ids), device, generator=self.generator,
                                 batch_rows=(*self.rows, self.batcher.batch_size))
        self.optimizer = build_optimizer(config, self.model)
        self.callbacks = self.model.get_training_callbacks(None)
        self.step, self.horizon, self.elapsed_before = 0, config.steps, 0.0
        self._restore_or_start()
        ddp.broadcast_module(self.model)
        if self.main:
            checkpoint_dir(out).mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=self.step or None) if self.main else _NoWriter()
        self.history_path = out / HISTORY
        history = self.history_path.read_text().splitlines() if self.history_path.is_file() else []
        self.history = [h for h in (json.loads(line) for line in history if line.strip()) if h["step"] <= self.step]
        self.util_samples: list[float] = []  # GPU utilisation read at each report since the last history entry
        self.unread: tuple[list[str], torch.Tensor] | None = None  # the last step's loss terms, not yet checked

    def _restore_or_start(self) -> None:
        state, out, config = self.state, self.out, self.config
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.batcher.load_state_dict(state["batcher"])
            torch.set_rng_state(state["torch_rng"])
            if self.device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)  # nerfstudio's stratified jitter draws on the GPU
            self.step, self.horizon, self.elapsed_before = int(state["step"]), int(state["horizon"]), float(state["train_seconds"])
            self.log(f"fit: resuming {out} at step {self.step} of {self.horizon}")
        elif self.main:
            out.mkdir(parents=True, exist_ok=True)
            write_header(out, make_header("run", producer="assets2vec fit", seed=config.seed, dataset=str(self.data.resolve()),
                                          config=json.loads(config.to_json()), asset_ids=self.asset_ids))

    # -- the loop ------------------------------------------------------------------------------

    def train(self, progress: bool, on_step: Callable[[int], None] | None) -> dict[str, Any]:
        config = self.config
        self.budget_s = config.max_minutes * 60 if config.max_minutes else None
        self.t_loop = self.last_saved = time.time()
        self.model.train()
        # With a time budget the step count is known only once the speed is: no total (and no
        # misleading ETA) until then.
        sized_by_time = bool(self.budget_s) and self.state is None
        self.bar = tqdm(total=None if sized_by_time else self.horizon, initial=self.step, disable=not progress, unit="step",
                        dynamic_ncols=True, desc="fit")
        self.ema_psnr, self.timed_from, stopped_by = None, None, "steps"
        self.rate_mark = (time.time(), self.step)  # (time, step) the next history entry's rays/s count from
        try:
            # Under DDP a Ctrl-C only raises a flag, honoured by all workers at one step boundary.
            with self.ddp.deferred_interrupts(self.world_size > 1) as flags:
                while self.step < self.horizon:
                    names, terms = self.optimisation_step()
                    self._schedule()
                    if self.step % self.sync_every == 0 or self.step >= self.horizon:
                        self._report(*self._read(names, terms))
                        self.unread = None
                    else:
                        self.unread = (names, terms)
                        self.bar.update(1)
                    if on_step is not None:
                        on_step(self.step)
                    self._periodic()
                    if self._over_budget(flags):
                        stopped_by = "time"
                        break
        except KeyboardInterrupt:
            self.bar.close()
            self.checkpoint(periodic=False)
            self.writer.close()
            self.log(f"fit: interrupted at step {self.step}; checkpoint saved, continue with --resume")
            raise
        return self._finish(stopped_by)

    def optimisation_step(self) -> tuple[list[str], torch.Tensor]:
        """One step on this worker's rows of the global batch; the names of the loss terms and their values
        summed over workers, as a tensor on the device (read it with `_read`: that waits for the device)."""
        config, model, ddp, world_size = self.config, self.model, self.ddp, self.world_size
        for g in self.optimizer.param_groups:
            base = config.lr_field if g["name"] == "fields" else config.lr_codes
            g["lr"] = base * lr_factor(self.step, self.horizon, config)
        for callback in self.callbacks:
            callback.run_callback_at_location(self.step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        # Every worker draws the same batch, but only its own rows.
        batch = self.select(self.batcher.next_indices(*self.rows))
        outputs = model(to_ray_bundle(batch, self.device))
        batch = {k: v.to(self.device) for k, v in batch.items()}
        counts = ddp.sum_(model.local_counts(outputs, batch).detach())
        losses = model.get_loss_dict(outputs, batch, counts=counts)
        table = {k: losses.pop(k) for k in model.TABLE_LOSSES if k in losses}
        # Every term summed over workers (one all-reduce): logs and PSNR describe the global batch.
        names = list(losses) + list(table)
        terms = [losses[k].detach().float() for k in losses] + [v.detach().float() / world_size for v in table.values()]
        terms = ddp.sum_(torch.stack(terms))
        if self.sync_every == 1:
            self._read(names, terms)  # a non-finite loss stops the run before it steps
        self.optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        if world_size > 1:
            ddp.reduce_gradients(list(model.field.parameters()), [model.codes.shape, model.codes.texture],
                                 self.batcher.batch_assets().to(self.device))
        if table:
            sum(table.values()).backward()  # identical on every worker: added once, after the reduction
        self.optimizer.step()
        self.step += 1
        return names, terms

    def _read(self, names: list[str], terms: torch.Tensor) -> tuple[float, dict[str, float]]:
        """(total loss, {term: value}) read from the device; a non-finite loss is an error."""
        reduced = dict(zip(names, terms.tolist()))
        loss_value = float(sum(reduced.values()))
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {self.step}; lower the learning rates")
        return loss_value, reduced

    def _report(self, loss_value: float, reduced: dict[str, float]) -> None:
        """Progress bar (loss, batch PSNR, rays/s, GPU utilisation) and TensorBoard."""
        step = self.step
        psnr = -10.0 * math.log10(max(reduced["rgb_loss"] / max(self.model.config.rgb_loss_mult, 1e-12), 1e-10))  # batch MSE
        self.ema_psnr = psnr if self.ema_psnr is None else 0.9 * self.ema_psnr + 0.1 * psnr
        if step % 25 == 0:
            for k, v in reduced.items():
                self.writer.add_scalar(f"train/{k}", v, step)
            self.writer.add_scalar("train/psnr", psnr, step)
        rays_s = (self.bar.format_dict.get("rate") or 0.0) * self.batcher.batch_size
        util = gpu_utilisation(self.device)
        extra = {} if util is None else {"gpu": f"{util:.0f}%"}
        if util is not None:
            self.util_samples.append(util)
        self.bar.set_postfix(loss=f"{loss_value:.4f}", psnr=f"{self.ema_psnr:.2f}", rays_s=f"{rays_s:,.0f}", **extra, refresh=False)
        self.bar.update(1)

    def _schedule(self) -> None:
        """With a time budget, the schedule shortened to end within it once the speed is known."""
        step, config = self.step, self.config
        if step == 20 or (self.timed_from and step == self.timed_from[1] + 30):
            synchronize(self.device)  # a GPU's queued steps are not done yet: time what is done
        now = time.time()
        if step == 20:
            self.timed_from = (now, step)
        # With a time budget, shorten the schedule once the speed is known, so the
        # learning rate still anneals before the budget ends.
        if self.budget_s and self.timed_from and step == self.timed_from[1] + 30 and self.state is None:
            rate = 30 / (now - self.timed_from[0])
            left = self.budget_s - (now - self.t_start) - 0.04 * self.budget_s
            horizon = min(self.horizon, step + max(1, int(rate * left * 0.97)))
            self.horizon = self.ddp.broadcast_ints([horizon])[0]  # rank 0's clock decides for all
            self.bar.total = self.horizon
            self.log(f"fit: {rate:.1f} steps/s; the schedule will end at step {self.horizon} to fit {config.max_minutes:g} min")

    def _periodic(self) -> None:
        step, config = self.step, self.config
        if step % config.eval_every == 0 and step < self.horizon:
            self.quick_eval()
        if step % config.checkpoint_every == 0 and step < self.horizon:
            self.checkpoint(periodic=True)
        elif config.checkpoint_minutes and time.time() - self.last_saved >= 60 * config.checkpoint_minutes and step < self.horizon:
            self.checkpoint(periodic=False)  # by time: only the latest checkpoint, no step file

    def _over_budget(self, flags: dict[str, bool]) -> bool:
        over = bool(self.budget_s and time.time() - self.t_start > self.budget_s)
        if self.world_size > 1:
            over = bool(self.ddp.broadcast_ints([int(over)])[0])  # rank 0's clock decides for all
            if self.ddp.any_flag([flags["stop"]], self.device)[0]:
                raise KeyboardInterrupt
        return over

    def _finish(self, stopped_by: str) -> dict[str, Any]:
        self.bar.close()
        self.quick_eval()
        self.checkpoint(periodic=False)
        self.writer.close()
        # No worker returns (or tears the process group down) before rank 0's checkpoint is on
        # disk: a worker leaving early would report a run that is not there yet.
        self.ddp.barrier()
        summary = {
            "run": str(self.out), "steps": self.step, "horizon": self.horizon, "stopped_by": stopped_by,
            "train_seconds": round(self.elapsed_before + time.time() - self.t_loop, 1), "assets": len(self.asset_ids),
            "final_quick_psnr": self.history[-1]["psnr"] if self.history else None,
        }
        self.log(f"fit: done, {self.step} steps in {summary['train_seconds']:.0f} s; checkpoint {latest_checkpoint(self.out)}")
        return summary

    # -- evaluations and checkpoints -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(), "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "batcher": self.batcher.state_dict(), "torch_rng": torch.get_rng_state(), "asset_ids": self.asset_ids,
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "step": self.step, "horizon": self.horizon, "train_seconds": self.elapsed_before + (time.time() - self.t_loop),
            "dataset": str(self.data.resolve()), "history": self.history,
        }

    def checkpoint(self, periodic: bool) -> None:
        self.last_saved = time.time()
        if self.unread is not None:  # on a GPU the loss is read every few steps: never save weights a NaN reached
            self._read(*self.unread)
            self.unread = None
        if not self.main:
            return
        s = self.snapshot()
        if periodic:
            save_checkpoint(checkpoint_dir(self.out) / f"step-{self.step:07d}.ckpt", s)
        save_checkpoint(latest_checkpoint(self.out), s)
        atomic_write_text(self.history_path, "".join(json.dumps(h) + "\n" for h in self.history))

    def quick_eval(self) -> None:
        if self.quick is None or not self.main:
            return
        now = time.time()
        mark_t, mark_step = self.rate_mark
        rays_s = (self.step - mark_step) * self.batcher.batch_size / max(now - mark_t, 1e-9)
        psnr = self.quick.psnr(self.model)
        entry = {"step": self.step, "seconds": round(time.time() - self.t_start + self.elapsed_before, 2), "psnr": round(psnr, 3),
                 "rays_per_s": round(rays_s)}
        if self.util_samples:
            entry["gpu_util"] = round(sum(self.util_samples) / len(self.util_samples), 1)  # mean since the last entry
            self.util_samples.clear()
        self.rate_mark = (time.time(), self.step)  # the evaluation's own time is not training
        self.history.append(entry)
        self.writer.add_scalar("eval/psnr", psnr, self.step)
        self.log(f"fit: step {self.step}: held-out PSNR {psnr:.2f} dB ({len(self.quick.rows)} assets) at {entry['seconds']:.0f} s")


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
