"""Grow a trained run with new assets by inversion: codes are fitted, the network is untouched.

Each new asset's training views (all but its held-out ones, with their known cameras)
are inverted from the mean code; the codes are appended to the run's tables and the
checkpoint is rewritten atomically every few assets and every few minutes, so an interrupted embed keeps
what it finished and a rerun skips assets the run already has.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from assets2vec.checkpoint import latest_checkpoint, save_checkpoint
from assets2vec.data.rays import holdout_views
from assets2vec.invert import InversionConfig, invert
from assets2vec.run import Run
from render_core.artifacts import sweep_stale_temps
from render_core.dataset import RenderedDataset

# A new asset is not in the table: no exemplar starts; its known cameras need no search.
EMBED_CONFIG = InversionConfig(refine_steps=80, refine_rays=1024, lr=0.03, exemplars=0, fine_samples=0)


def invert_asset(model, fit_config, dataset: RenderedDataset, asset_id: str, config: InversionConfig):
    """Codes for one rendered asset from its training views (held-out ones left out) and known cameras."""
    v = dataset.load(asset_id)
    held = holdout_views(asset_id, v.n_views, fit_config.n_holdout, fit_config.seed)
    views = np.setdiff1d(np.arange(v.n_views), held)
    return invert(model, [v.rgb[k] for k in views], v.intrinsics, poses=v.c2w[views], config=config)


def embed(
    run: str | os.PathLike,
    data: str | os.PathLike,
    *,
    config: InversionConfig = EMBED_CONFIG,
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
            result = invert_asset(model, fit_config, dataset, asset_id, config)
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

