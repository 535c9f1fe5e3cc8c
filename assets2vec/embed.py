"""Grow a trained run with new assets: their codes are fitted, the network is untouched.

A new asset's codes are fitted with the loss `fit` trained the run's own codes with (the same
surface-guided samples, colour, coverage, depth and free-space terms, the same code-norm
penalty, on its training views; held-out views left out), the network frozen, from the mean code.
A photo's inversion (`invert`) has no depth or known surface and renders with a few uniform
samples per ray; on rendered assets its codes reach several dB less on held-out views than the
training loss's, and their decoded shapes land farther from where training puts the same asset
(BENCHMARKS.md, "Embedding new assets"), so they would not sit among the trained assets as they should.

The codes are appended to the run's tables and the checkpoint is rewritten atomically every few
assets and every few minutes, so an interrupted embed keeps what it finished and a rerun skips
assets the run already has.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from assets2vec.checkpoint import latest_checkpoint, save_checkpoint
from assets2vec.data.rays import AssetBatcher, build_ray_table, to_ray_bundle
from assets2vec.devices import model_device
from assets2vec.invert import frozen
from assets2vec.run import Run
from render_core.artifacts import sweep_stale_temps
from render_core.dataset import RenderedDataset


@dataclass(frozen=True)
class EmbedConfig:
    steps: int = 200
    """optimisation steps per asset"""
    rays: int = 1024
    """training rays per step, drawn like fit's (a share on the object, edge rays as the run had them)"""
    lr: float = 0.03
    """Adam learning rate of the two codes, decayed tenfold over the steps"""
    seed: int = 0
    """seed of the ray draws and the samples along them; with it an asset's codes are reproducible"""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.rays < 1 or not self.lr > 0:
            raise ValueError(f"embedding needs positive steps, rays and learning rate, got {self.steps}, {self.rays}, {self.lr}")

    def to_json(self) -> dict[str, Any]:
        return {"objective": "fit", "steps": self.steps, "rays": self.rays, "lr": self.lr}


EMBED_CONFIG = EmbedConfig()


@dataclass
class EmbedResult:
    shape_code: torch.Tensor  # (ds,)
    texture_code: torch.Tensor  # (dt,)
    score: float  # PSNR (dB) of the colour on the training rays of the last steps
    seconds: float


@contextmanager
def _training_pass(model, generator: torch.Generator):
    """The model in training mode (fit's samplers and losses) drawing from `generator`, with every
    weight frozen; afterwards its mode, generator and flags are as they were."""
    was_training, old_generator = model.training, model.generator
    model.generator = generator
    with frozen(model):
        model.train()
        try:
            yield model
        finally:
            model.train(was_training)
            model.generator = old_generator


def embed_asset(model, fit_config, dataset: RenderedDataset, asset_id: str, config: EmbedConfig = EMBED_CONFIG) -> EmbedResult:
    """Codes for one rendered asset of `dataset`, fitted with the run's training loss, network frozen."""
    t0 = time.time()
    table = build_ray_table(dataset, [asset_id], split="train", n_holdout=fit_config.n_holdout, seed=fit_config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    batcher = AssetBatcher(table, 1, config.rays, gen, fit_config.foreground_fraction, fit_config.edge_fraction)
    device = model_device(model)
    mean_shape, mean_texture = model.codes.mean()
    shape = mean_shape.detach().clone().requires_grad_(True)
    texture = mean_texture.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([shape, texture], lr=config.lr)
    colour: list[float] = []
    with _training_pass(model, gen):
        for step in range(config.steps):
            for g in opt.param_groups:
                g["lr"] = config.lr * 0.1 ** (step / config.steps)
            batch = table.select(batcher.next_indices())
            bundle = to_ray_bundle(batch, device)
            n = len(batch["rgb"])
            bundle.metadata["shape_code"] = shape.expand(n, -1)
            bundle.metadata["texture_code"] = texture.expand(n, -1)
            outputs = model(bundle)
            batch = {k: v.to(device) for k, v in batch.items()}
            losses = model.get_loss_dict(outputs, batch, table_losses=False)  # those are the table's, not one asset's
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{asset_id}: the embedding loss became {float(loss)} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step >= config.steps - 10:
                colour.append(float(((outputs["rgb"].detach() - batch["rgb"]) ** 2).mean()))
    mse = max(float(np.mean(colour)), 1e-10)
    return EmbedResult(shape.detach(), texture.detach(), float(-10 * np.log10(mse)), time.time() - t0)


def embed(
    run: str | os.PathLike,
    data: str | os.PathLike,
    *,
    config: EmbedConfig = EMBED_CONFIG,
    save_every: int = 10,
    save_minutes: float = 2.0,
    progress: bool = True,
    log: Callable[[str], None] = print,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    run = Path(run)
    opened = Run.open(run)
    sweep_stale_temps(run)  # left by an embed killed while saving
    model, fit_config, state = opened.model(device), opened.config, opened.state
    dataset = RenderedDataset(data)
    _, trained_size = opened.rig()
    if dataset.image_size != trained_size:
        log(f"embed: note: {data} is rendered at {dataset.image_size} px, the run was trained at {trained_size} px")
    known = set(state["asset_ids"])
    todo = [a for a in dataset.asset_ids if a not in known]
    skipped = len(dataset.asset_ids) - len(todo)
    if not todo:
        log(f"embed: all {len(dataset.asset_ids)} assets of {data} are already in {run}")
        return {"embedded": 0, "skipped_existing": skipped, "failed": {}}
    ids = list(state["asset_ids"])
    embedded = dict(state.get("embedded", {}))
    failed: dict[str, str] = {}
    new_shape, new_texture, new_ids = [], [], []
    t0 = saved = time.time()

    def flush() -> None:
        nonlocal saved
        saved = time.time()
        if not new_ids:
            return
        model.codes.grow(torch.stack(new_shape).to(model.device), torch.stack(new_texture).to(model.device))
        ids.extend(new_ids)
        for a in new_ids:
            embedded[a] = str(Path(data).resolve())
        new_shape.clear(), new_texture.clear(), new_ids.clear()
        # The optimizer state belongs to the old table sizes; a grown run is for use, not for resuming.
        out = {k: v for k, v in state.items() if k not in ("format", "format_version", "package_version", "optimizer")}
        out.update(model=model.state_dict(), asset_ids=list(ids), embedded=embedded)
        save_checkpoint(latest_checkpoint(run), out)

    bar = tqdm(todo, desc="embed", unit="asset", disable=not progress)
    scores = []
    for n, asset_id in enumerate(bar, 1):
        try:
            result = embed_asset(model, fit_config, dataset, asset_id, config)
        except Exception as exc:  # one bad asset must not stop the batch
            failed[asset_id] = f"{type(exc).__name__}: {exc}"
            continue
        new_shape.append(result.shape_code)
        new_texture.append(result.texture_code)
        new_ids.append(asset_id)
        scores.append(result.score)
        bar.set_postfix(fit_psnr=f"{np.mean(scores):.2f}", refresh=False)
        if n % save_every == 0 or time.time() - saved >= 60 * save_minutes:
            flush()
    flush()
    summary = {
        "embedded": len(scores), "skipped_existing": skipped, "failed": failed, "assets_in_run": len(ids),
        "mean_fit_psnr": float(np.mean(scores)) if scores else None, "seconds": round(time.time() - t0, 1),
    }
    log(f"embed: added {len(scores)} assets to {run} ({len(ids)} in all), {len(failed)} failed")
    return summary

