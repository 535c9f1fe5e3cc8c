"""Embedding on several workers: each shard embeds its own assets into a folder of its own,
then `merge_embeddings` appends every shard's codes to the run in one checkpoint write.

A shard never writes the run (two workers rewriting one checkpoint would lose each other's
codes). It saves its codes in numbered part files, each written atomically, so a rerun resumes
after the last part and memory and rewrite cost stay flat however large the shard. The shard's
header pins the network (a digest of every weight but the code tables), the dataset and the
split; merging refuses shards of another network, dataset or split, and a split with a shard
missing. Embedding is deterministic per asset, so the merged run holds the same codes, in the
same order, as one `embed` process would have written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from assets2vec.checkpoint import CheckpointError, latest_checkpoint, save_checkpoint
from assets2vec.embed import EMBED_CONFIG, EmbedConfig, embed_asset
from assets2vec.run import Run
from render_core.artifacts import ArtifactError, atomic_save_npz, atomic_write_json, load_npz, make_header, read_header, write_header
from render_core.dataset import RenderedDataset
from render_core.shards import Shard


def _parts(out: Path) -> list[Path]:
    return sorted((out / "parts").glob("part-*.npz"))


def shard_codes(out: Path) -> dict[str, Any]:
    """{"ids": [...], "shape": (n, ds), "texture": (n, dt), "scores": (n,)} of a shard folder."""
    ids, shape, texture, scores = [], [], [], []
    for p in _parts(out):
        z = load_npz(p)
        ids += [str(x) for x in z["ids"]]
        shape.append(z["shape"]), texture.append(z["texture"]), scores.append(z["scores"])
    if not ids:
        return {"ids": [], "shape": None, "texture": None, "scores": np.zeros(0)}
    return {"ids": ids, "shape": np.concatenate(shape), "texture": np.concatenate(texture), "scores": np.concatenate(scores)}


def embed_shard(run: str | os.PathLike, data: str | os.PathLike, shard: Shard, out: str | os.PathLike, *,
                config: EmbedConfig = EMBED_CONFIG, save_every: int = 10, progress: bool = True,
                log: Callable[[str], None] = print, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Embed the assets of `data` that shard `shard` owns and `run` lacks, into folder `out` (on `device`)."""
    run, out = Path(run), Path(out)
    opened = Run.open(run)
    model, fit_config, state, digest = opened.model(device), opened.config, opened.state, opened.digest
    dataset = RenderedDataset(data)
    header = make_header("embedding", producer="assets2vec embed --shard", seed=config.seed, run=str(run.resolve()),
                         network=digest, dataset=str(Path(data).resolve()), shard=str(shard),
                         embedding=config.to_json())
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: is a file; an embedding shard is a folder")
    if (out / "artifact.json").exists():
        old = read_header(out, "embedding")
        for key in ("network", "dataset", "shard", "embedding", "seed"):
            if old.get(key) != header.get(key):
                raise ArtifactError(f"{out}: holds an embedding shard with another {key} ({old.get(key)!r}); use a new folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_header(out, header)
    (out / "parts").mkdir(exist_ok=True)
    done = set(shard_codes(out)["ids"]) | set(state["asset_ids"])
    todo = [a for a in dataset.asset_ids if shard.owns(a) and a not in done]
    part = len(_parts(out))
    failed: dict[str, str] = {}
    buf: dict[str, list] = {"ids": [], "shape": [], "texture": [], "scores": []}
    t0 = time.time()

    def flush() -> None:
        nonlocal part
        if not buf["ids"]:
            return
        atomic_save_npz(out / "parts" / f"part-{part:06d}.npz", ids=np.array(buf["ids"]), shape=np.stack(buf["shape"]),
                        texture=np.stack(buf["texture"]), scores=np.array(buf["scores"], np.float32))
        part += 1
        for v in buf.values():
            v.clear()

    bar = tqdm(todo, desc=f"embed {shard}", unit="asset", disable=not progress)
    for n, asset_id in enumerate(bar, 1):
        try:
            result = embed_asset(model, fit_config, dataset, asset_id, config)
        except Exception as exc:  # one bad asset must not stop the shard
            failed[asset_id] = f"{type(exc).__name__}: {exc}"
            continue
        buf["ids"].append(asset_id)
        buf["shape"].append(result.shape_code.detach().cpu().numpy())
        buf["texture"].append(result.texture_code.detach().cpu().numpy())
        buf["scores"].append(result.score)
        if n % save_every == 0:
            flush()
    flush()
    codes = shard_codes(out)
    report = {"shard": str(shard), "embedded_now": len(todo) - len(failed), "in_shard_folder": len(codes["ids"]),
              "failed": failed, "seconds": round(time.time() - t0, 1)}
    atomic_write_json(out / "report.json", report)
    log(f"embed {shard}: {report['embedded_now']} assets embedded into {out} ({report['in_shard_folder']} in all), {len(failed)} failed")
    return report


def merge_embeddings(run: str | os.PathLike, shards: list[Path], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Append the codes of embedding shard folders to `run` (assets it already has are skipped)."""
    run = Path(run)
    if not shards:
        raise ValueError("merge: no shard folders given")
    headers = [read_header(p, "embedding") for p in shards]
    opened = Run.open(run)
    model, state, digest = opened.model(), opened.state, opened.digest
    for p, h in zip(shards, headers):
        if h.get("network") != digest:
            raise CheckpointError(f"{p}: was embedded with another network than {run}'s (retrained since?); embed it again")
        if h.get("dataset") != headers[0].get("dataset"):
            raise ArtifactError(f"{p}: embeds {h.get('dataset')}, not {headers[0].get('dataset')}; merge one dataset at a time")
    specs = [Shard.parse(h["shard"]) for h in headers]
    counts = {s.count for s in specs}
    if len(counts) > 1:
        raise ArtifactError(f"merge: shards of different splits ({sorted(map(str, specs))}); merge one split at a time")
    n = counts.pop()
    missing = sorted(set(range(n)) - {s.index for s in specs})
    if missing:
        raise ArtifactError(f"merge: shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing; their assets would be lost")
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for p in shards:
        c = shard_codes(p)
        for i, a in enumerate(c["ids"]):
            found.setdefault(a, (c["shape"][i], c["texture"][i]))
    have = set(state["asset_ids"])
    # The dataset's order, as one `embed` process would have appended them.
    dataset = Path(headers[0]["dataset"])
    order = RenderedDataset(dataset).asset_ids if dataset.is_dir() else sorted(found)
    new = [a for a in order if a in found and a not in have]
    if new:
        model.codes.grow(torch.as_tensor(np.stack([found[a][0] for a in new])), torch.as_tensor(np.stack([found[a][1] for a in new])))
        embedded = dict(state.get("embedded", {}))
        embedded.update({a: str(dataset) for a in new})
        out = {k: v for k, v in state.items() if k not in ("format", "format_version", "package_version", "optimizer")}
        out.update(model=model.state_dict(), asset_ids=list(state["asset_ids"]) + new, embedded=embedded)
        save_checkpoint(latest_checkpoint(run), out)
    report = {"merged_shards": len(shards), "added": len(new), "already_in_run": len(found) - len(new),
              "assets_in_run": len(state["asset_ids"]) + len(new)}
    log(f"merge: {len(new)} assets added to {run} ({report['assets_in_run']} in all)")
    return report
