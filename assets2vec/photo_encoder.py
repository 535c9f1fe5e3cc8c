"""The photo encoder: which catalog asset a photo shows, from one forward pass.

Fitting the NeRF to a photo compares renders with the photo pixel by pixel; a photo whose light, lens
and background our renders never had is then explained best by whatever asset shares its colours. A
small CNN trained on the run's own meshes under domain randomisation (`assets2vec.photo_views`)
learns which asset it sees whatever the light and background. Search by photo takes its answer from
the encoder and fits the NeRF on that asset only, for the camera, the colour cast, the codes and the
check of the answer (`Catalog.search_image`).

Trained per run (`assets2vec photo-encoder RUN`, `train_for_run`) and saved in the run folder as
plain tensors with the run's asset ids, read back with `torch.load(weights_only=True)`: nothing is
unpickled.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from assets2vec.devices import autocast
from assets2vec.photo_views import Randomiser, ViewConfig, render_views
from assets2vec.tensor_files import load_tensors, reading, save_tensors

FORMAT = 1
PROPOSALS = 8
"""assets a search by photo returns as the encoder's proposals, most probable first"""
NEAREST = 5
"""training views a photo's familiarity is read from (`TrainedEncoder.familiarity`)"""


@dataclass
class EncoderConfig:
    views: ViewConfig = field(default_factory=ViewConfig)
    size: int = 48
    """input side: the prepared photo's crop is resized to this"""
    width: int = 24
    """channels of the first stage (doubled at each of the four)"""
    dim: int = 128
    """embedding size"""
    epochs: int = 40
    batch: int = 96
    lr: float = 3e-3
    weight_decay: float = 5e-4
    temperature: float = 16.0
    """scale of the cosine logits"""
    seed: int = 0

    def to_json(self) -> dict:
        d = asdict(self)
        d["views"] = asdict(self.views)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "EncoderConfig":
        views = d.get("views", {})
        views = ViewConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in views.items()})
        return cls(**{**{k: v for k, v in d.items() if k != "views"}, "views": views})


def conv_stage(cin: int, cout: int) -> torch.nn.Sequential:
    """Two 3x3 convolutions, each batch-normalised and rectified."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False), torch.nn.BatchNorm2d(cout), torch.nn.ReLU(inplace=True),
        torch.nn.Conv2d(cout, cout, 3, padding=1, bias=False), torch.nn.BatchNorm2d(cout), torch.nn.ReLU(inplace=True))


class PhotoEncoder(torch.nn.Module):
    """(B, 4, s, s) crops (sRGB and the object's mask) -> (B, n_assets) cosine logits, and the embeddings."""

    def __init__(self, n_assets: int, config: EncoderConfig):
        super().__init__()
        w = config.width
        self.features = torch.nn.Sequential(
            conv_stage(4, w), torch.nn.MaxPool2d(2), conv_stage(w, 2 * w), torch.nn.MaxPool2d(2),
            conv_stage(2 * w, 4 * w), torch.nn.MaxPool2d(2), conv_stage(4 * w, 8 * w),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8 * w, config.dim))
        # One learned direction per catalog asset: a cosine classifier (its rows are the assets' prototypes).
        self.prototypes = torch.nn.Parameter(torch.randn(n_assets, config.dim) / math.sqrt(config.dim))
        self.temperature = config.temperature

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x * 2 - 1), dim=-1)

    def classify(self, e: torch.Tensor) -> torch.Tensor:
        """(B, n_assets) logits of unit embeddings (B, dim)."""
        return self.temperature * e @ F.normalize(self.prototypes, dim=-1).T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))


@dataclass
class TrainedEncoder:
    net: PhotoEncoder
    config: EncoderConfig
    asset_ids: list[str]
    history: list[dict]
    views: torch.Tensor | None = None
    """(N, V, dim) float16 embeddings of one randomised photo of each training view of each asset
    (`reference_views`); None in an encoder saved before they were kept"""

    def _input(self, crop: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(crop)).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(self.config.size, self.config.size), mode="area")
        return torch.cat([x[:, :3], (x[:, 3:] > 0.5).float()], 1).to(self.device)

    @torch.no_grad()
    def embedding(self, crop: np.ndarray) -> torch.Tensor:
        """(dim,) unit embedding of a prepared photo's crop (S, S, 4) uint8 (alpha = mask)."""
        self.net.eval()
        return self.net.embed(self._input(crop))[0]

    @torch.no_grad()
    def probabilities(self, crop: np.ndarray, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """(n_assets,) probabilities of each asset for a prepared photo's crop (S, S, 4) uint8 (alpha = mask);
        pass the crop's `embedding` when it is already computed."""
        e = self.embedding(crop) if embedding is None else embedding
        return torch.softmax(self.net.classify(e[None]), -1)[0].cpu()

    @torch.no_grad()
    def read(self, crop: np.ndarray) -> tuple[torch.Tensor, float | None]:
        """(probabilities (n_assets,), familiarity with the most probable asset) of a prepared photo's crop,
        from one pass of the encoder: what a search asks of it."""
        e = self.embedding(crop)
        probs = self.probabilities(crop, embedding=e)
        return probs, self.familiarity(crop, int(probs.argmax()), embedding=e)

    @torch.no_grad()
    def familiarity(self, crop: np.ndarray, row: int, embedding: torch.Tensor | None = None) -> float | None:
        """How much the crop looks like asset `row` as the encoder was taught it: the mean cosine between
        its embedding and its `NEAREST` nearest training views of that asset (deep nearest neighbours,
        Sun et al. 2022). A softmax must share its mass among the catalog's assets, so a duck can be a
        sofa with confidence; its embedding still lies far from every view of the sofa. None without
        reference views. Pass the crop's `embedding` when it is already computed."""
        if self.views is None:
            return None
        e = (self.embedding(crop) if embedding is None else embedding).cpu()
        near = self.views[row].float() @ e
        return float(near.topk(min(NEAREST, len(near))).values.mean().clamp(-1.0, 1.0))  # the views are stored in half precision

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> "TrainedEncoder":
        """Move the network to `device` (in place); returns self."""
        self.net.to(device)
        return self

    def propose(self, crop: np.ndarray, k: int) -> torch.Tensor:
        """(k,) rows of the assets the crop most probably shows, most probable first."""
        return torch.topk(self.probabilities(crop), min(k, len(self.asset_ids))).indices

    def save(self, path: str | os.PathLike) -> Path:
        payload = {"format": FORMAT, "state": self.net.state_dict(), "config": json.dumps(self.config.to_json()),
                   "asset_ids": list(self.asset_ids), "history": json.dumps(self.history)}
        if self.views is not None:
            payload["views"] = self.views
        return save_tensors(path, payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainedEncoder":
        with reading(path, "photo encoder"):
            d = load_tensors(path, FORMAT)
            config = EncoderConfig.from_json(json.loads(d["config"]))
            net = PhotoEncoder(len(d["asset_ids"]), config)
            net.load_state_dict(d["state"])
            views = d.get("views")
            if views is not None and (views.ndim != 3 or views.shape[0] != len(d["asset_ids"]) or views.shape[2] != config.dim):
                raise ValueError(f"reference views of shape {tuple(views.shape)} do not fit {len(d['asset_ids'])} assets")
        return cls(net.eval(), config, list(d["asset_ids"]), json.loads(d["history"]), views)


def train_encoder(renders: np.ndarray, asset_ids: list[str], config: EncoderConfig = EncoderConfig(),
                  progress: bool = True, log=print, device: torch.device | str = "cpu", skip=()) -> TrainedEncoder:
    """Train on `renders` (N, V, S, S, 4) uint8 of the N assets `asset_ids`; each step draws new photos
    from them (`Randomiser`, on the CPU from its seeded generator, so the draws do not depend on the
    device) and the network steps on `device`. Holds out one view per asset to report accuracy on.
    `skip`: rows with no renders (unreadable meshes): never drawn, so never proposed."""
    from tqdm.auto import tqdm

    N, V = renders.shape[:2]
    if N != len(asset_ids) or N < 2:
        raise ValueError(f"need renders of at least two assets, one per id: got {N} renders for {len(asset_ids)} ids")
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    device = torch.device(device)
    net = PhotoEncoder(N, config).to(device)
    views = torch.as_tensor(renders)
    train_v = V - 1 if V > 1 else V
    keep = torch.tensor([i for i in range(N) if i not in set(skip)], dtype=torch.long)
    if len(keep) < 2:
        raise ValueError(f"need renders of at least two assets; {N - len(keep)} of {N} meshes could not be read")
    items = torch.stack(torch.meshgrid(keep, torch.arange(train_v), indexing="ij"), -1).reshape(-1, 2)
    steps_per_epoch = max(1, len(items) // config.batch)
    total = steps_per_epoch * config.epochs
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total, pct_start=0.15)
    rand = Randomiser(config.size, gen)
    history, t0 = [], time.time()
    bar = tqdm(total=total, disable=not progress, unit="step", desc="photo encoder")
    for epoch in range(config.epochs):
        net.train()
        order = items[torch.randperm(len(items), generator=gen)]
        for b in range(steps_per_epoch):
            batch = order[b * config.batch:(b + 1) * config.batch]
            x = rand(views[batch[:, 0], batch[:, 1]]).to(device)
            with autocast(device):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), batch[:, 0].to(device), label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        if V > 1:
            acc = _held_out_accuracy(net, views[:, V - 1], config, keep)
            history.append({"epoch": epoch + 1, "loss": round(float(loss.detach()), 4), "held_out_top1": round(acc, 4),
                            "seconds": round(time.time() - t0, 1)})
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", held_out=f"{acc:.2f}", refresh=False)
    bar.close()
    if history:
        log(f"photo encoder: {config.epochs} epochs in {time.time() - t0:.0f} s; top-1 on held-out randomised views "
            f"{history[-1]['held_out_top1']:.1%}")
    encoder = TrainedEncoder(net.eval(), config, list(asset_ids), history)
    encoder.views = reference_views(encoder, renders)
    return encoder


@torch.no_grad()
def reference_views(encoder: TrainedEncoder, renders: np.ndarray) -> torch.Tensor:
    """(N, V, dim) float16 embeddings of one randomised photo of each of `renders` (N, V, S, S, 4), drawn
    from the encoder's seed: what each asset looks like to the encoder, for `TrainedEncoder.familiarity`.
    An asset with no renders (an unreadable mesh) gets zeros: nothing looks like it."""
    net, config = encoder.net.eval(), encoder.config
    rand = Randomiser(config.size, torch.Generator().manual_seed(config.seed + 2))
    views = torch.as_tensor(renders)
    out = torch.zeros(views.shape[0], views.shape[1], config.dim)
    for i, v in enumerate(views):
        if bool(v[..., 3].any()):
            out[i] = net.embed(rand(v).to(encoder.device)).cpu()
    return out.half()


@torch.no_grad()
def _held_out_accuracy(net: PhotoEncoder, views: torch.Tensor, config: EncoderConfig, rows: torch.Tensor) -> float:
    """Top-1 on one held-out view of each asset of `rows`, drawn the same way at every epoch."""
    net.eval()
    rand = Randomiser(config.size, torch.Generator().manual_seed(config.seed + 1))
    hits = 0
    for part in rows.split(256):
        x = rand(views[part]).to(next(net.parameters()).device)
        hits += int((net(x).argmax(-1).cpu() == part).sum())
    return hits / len(rows)


def run_meshes(run, failed: list | None = None):
    """(asset id, normalised mesh) of every asset of an opened `Run`, read from the library its dataset
    was rendered from, normalised as the dataset's renders were. An asset whose mesh cannot be read
    now (moved, changed, or never readable by this loader) yields (asset id, None) and is appended to
    `failed` as (asset id, reason): a batch goes on past it."""
    from render_core.assets.loaders import load_mesh
    from render_core.assets.mesh import normalize
    from render_core.dataset import RenderedDataset

    dataset = RenderedDataset(run.dataset)
    library = Path(dataset.header["source_library"])
    up = dataset.header["render"].get("up_axis", "y")
    for asset_id in run.asset_ids:
        try:
            record = dataset.record(asset_id)
            mesh, _ = normalize(load_mesh(library / record.path), up)
        except (ValueError, OSError, KeyError) as exc:  # AssetLoadError is a ValueError
            if failed is None:
                raise
            failed.append((asset_id, str(exc)))
            mesh = None
        yield asset_id, mesh


def report_unreadable(failed: list, what: str, log=print) -> None:
    """One line naming the assets a training left out, and why."""
    if failed:
        shown = "; ".join(f"{i}: {why}" for i, why in failed[:5]) + (f"; and {len(failed) - 5} more" if len(failed) > 5 else "")
        log(f"{what}: {len(failed)} asset(s) left out, their meshes could not be read ({shown})")



def train_for_run(run_path: str | os.PathLike, config: EncoderConfig = EncoderConfig(), progress: bool = True,
                  log=print, device: torch.device | str = "cpu") -> Path:
    """Render the run's assets for the encoder, train it and save it in the run folder (on `device`); returns the file."""
    from assets2vec.run import Run

    run = Run.open(run_path)
    t0 = time.time()
    failed: list = []
    renders = render_views(run_meshes(run, failed), config.views, progress=progress, total=len(run.asset_ids), device=device)
    log(f"photo encoder: {renders.shape[0]} assets x {renders.shape[1]} views rendered in {time.time() - t0:.0f} s")
    report_unreadable(failed, "photo encoder", log)
    skip = {run.asset_ids.index(i) for i, _ in failed}
    encoder = train_encoder(renders, run.asset_ids, config, progress=progress, log=log, device=device, skip=skip)
    return encoder.save(run.encoder_path)


def for_run(encoder_path: Path, asset_ids: list[str]) -> TrainedEncoder | None:
    """A run's photo encoder (`Run.encoder_path`), or None when it has none; an encoder of other assets
    than the run's `asset_ids` is an error."""
    if not encoder_path.is_file():
        return None
    encoder = TrainedEncoder.load(encoder_path)
    if encoder.asset_ids != list(asset_ids):
        raise ValueError(f"{encoder_path}: the photo encoder was trained on other assets than the run's "
                         f"{len(asset_ids)}; retrain it with 'assets2vec photo-encoder {encoder_path.parent}'")
    return encoder
