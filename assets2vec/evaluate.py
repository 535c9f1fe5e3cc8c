"""Held-out evaluation of a run: PSNR, SSIM, mask IoU, and the shape/texture swap test.

Every asset's held-out views (the same ones `fit` held out, chosen from seed and asset
id) are rendered from the asset's codes. The swap test renders pairs (i, j) with the
shape code of i and the texture code of j: the silhouette should stay asset i's, and
the colours should move to asset j's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure
from tqdm.auto import tqdm

from assets2vec.data.rays import holdout_views
from assets2vec.nerf_render import render_views
from assets2vec.run import EVAL_JSON, Run
from render_core.artifacts import atomic_write_json
from render_core.dataset import RenderedDataset



def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(-10.0 * np.log10(max(float(np.mean((pred - gt) ** 2)), 1e-10)))


def ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM of (H, W, 3) images in [0, 1] (torchmetrics, Gaussian window 11, sigma 1.5)."""
    p = torch.as_tensor(pred, dtype=torch.float32).permute(2, 0, 1)[None]
    g = torch.as_tensor(gt, dtype=torch.float32).permute(2, 0, 1)[None]
    return float(structural_similarity_index_measure(p, g, data_range=1.0))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def mean_colour(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean RGB over masked pixels (3,), NaN if the mask is empty."""
    return rgb[mask].mean(0) if mask.any() else np.full(3, np.nan)


def evaluate(
    run: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    max_assets: int | None = None,
    swap_pairs: int = 32,
    seed: int = 0,
    progress: bool = True,
    write: bool = True,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    t0 = time.time()
    opened = Run.open(run)
    model, config, state = opened.model(device), opened.config, opened.state
    dataset = RenderedDataset(data if data is not None else state["dataset"])
    ids: list[str] = state["asset_ids"]
    present = set(dataset.asset_ids)
    # Assets embedded later live in other datasets: evaluate those of the run this one has.
    rows = [i for i, a in enumerate(ids) if a in present][: max_assets or None]
    if not rows:
        raise ValueError(f"{dataset.root}: holds none of the run's assets; evaluate with a dataset the run was trained or embedded on")
    if config.n_holdout < 1:
        raise ValueError(f"{run}: the run held out no views, so there is nothing to evaluate on")
    shape, texture = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()

    per_asset: list[dict[str, float]] = []
    held: dict[int, tuple[np.ndarray, ...]] = {}
    for i in tqdm(rows, desc="eval", unit="asset", disable=not progress):
        v = dataset.load(ids[i])
        hv = holdout_views(ids[i], v.n_views, config.n_holdout, config.seed)
        out = render_views(model, v.c2w[hv], v.intrinsics, dataset.image_size, shape[i], texture[i])
        gt = v.rgb[hv].astype(np.float32) / 255.0
        gt_mask = v.alpha[hv] > 0.5
        pred_mask = out["accumulation"] > 0.5
        per_asset.append({
            "psnr": float(np.mean([psnr(out["rgb"][k], gt[k]) for k in range(len(hv))])),
            "ssim": float(np.mean([ssim(out["rgb"][k], gt[k]) for k in range(len(hv))])),
            "mask_iou": float(np.mean([iou(pred_mask[k], gt_mask[k]) for k in range(len(hv))])),
        })
        # What the swap test needs: first held-out view, its camera, masks, colours.
        all_mask = v.alpha > 0.5
        held[i] = (v.c2w[hv[:1]], v.intrinsics, gt_mask[0], pred_mask[0], out["rgb"][0], mean_colour(v.rgb.astype(np.float32) / 255.0, all_mask))

    result: dict[str, Any] = {
        "run": str(run), "step": int(state["step"]), "dataset": str(dataset.root), "assets": len(rows),
        "heldout_views_per_asset": config.n_holdout, "image_size": dataset.image_size,
        "psnr": float(np.mean([a["psnr"] for a in per_asset])),
        "ssim": float(np.mean([a["ssim"] for a in per_asset])),
        "mask_iou": float(np.mean([a["mask_iou"] for a in per_asset])),
    }
    if len(rows) >= 2 and swap_pairs > 0:
        result["swap"] = swap_test(model, held, shape, texture, rows, dataset.image_size, swap_pairs, seed)
    result["seconds"] = round(time.time() - t0, 1)
    result["per_asset_psnr"] = {ids[i]: round(a["psnr"], 3) for i, a in zip(rows, per_asset)}
    if write:
        target = Path(run) if Path(run).is_dir() else Path(run).parent.parent
        atomic_write_json(target / EVAL_JSON, result)
    return result


def swap_test(model, held, shape, texture, rows, size, n_pairs, seed) -> dict[str, Any]:
    """Shape of i with texture of j, on i's first held-out view, for `n_pairs` random pairs i != j."""
    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < n_pairs:
        i, j = rng.choice(rows, 2, replace=False)
        pairs.append((int(i), int(j)))
    iou_swapped, iou_unswapped, to_texture, to_shape, unswapped = [], [], [], [], []
    for i, j in pairs:
        c2w, K, gt_mask_i, pred_mask_i, rgb_i, colour_i = held[i]
        colour_j = held[j][5]
        out = render_views(model, c2w, K, size, shape[i], texture[j])
        mask = out["accumulation"][0] > 0.5
        iou_swapped.append(iou(mask, gt_mask_i))
        iou_unswapped.append(iou(pred_mask_i, gt_mask_i))
        c = mean_colour(out["rgb"][0], mask)
        to_texture.append(float(np.linalg.norm(c - colour_j)))
        to_shape.append(float(np.linalg.norm(c - colour_i)))
        unswapped.append(float(np.linalg.norm(mean_colour(rgb_i, pred_mask_i) - colour_i)))
    s, u = float(np.nanmean(iou_swapped)), float(np.nanmean(iou_unswapped))
    return {
        "pairs": len(pairs),
        "silhouette_iou_swapped": s,
        "silhouette_iou_unswapped": u,
        "silhouette_iou_gap": abs(s - u),
        # Mean foreground colour distance (RGB in [0, 1]) to the texture donor j (should be small,
        # like the unswapped render's to its own asset) and to the shape donor i (should be larger).
        "colour_distance_to_texture_source": float(np.nanmean(to_texture)),
        "colour_distance_to_shape_source": float(np.nanmean(to_shape)),
        "colour_distance_unswapped": float(np.nanmean(unswapped)),
    }
