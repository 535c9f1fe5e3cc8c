"""`Run`: one owner for a trained RUN folder, as `RenderedDataset` is for a dataset.

    run = Run.open("demo/run")
    run.asset_ids, run.config, run.step
    shape, texture = run.codes()          # float32 numpy (n, ds), (n, dt)
    model = run.model()                   # the frozen network, in eval mode (built once)
    rig, size = run.rig()                 # the rig and image size it was trained on
    run.history, run.evaluation, run.bank_dir

`train.fit` writes the folder; everything that reads one goes through here. `Run.open` accepts
the folder or a checkpoint file and raises `CheckpointError` naming it when it is not a usable run.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from nerfstudio.data.scene_box import SceneBox

from assets2vec.checkpoint import CheckpointError, load_checkpoint
from assets2vec.configs import FitConfig

HISTORY = "history.jsonl"
EVAL_JSON = "eval.json"
BANK_DIR = "inversion_bank"
ENCODER_FILE = "photo_encoder.pt"
SEGMENTER_FILE = "photo_segmenter.pt"

if TYPE_CHECKING:
    from assets2vec.models.latent_nerf import LatentNeRFModel


def network_digest(model_state: dict[str, Any]) -> str:
    """Identity of the network a run's codes belong to: every weight except the code tables."""
    h = hashlib.sha256()
    for k in sorted(model_state):
        if k.startswith("codes."):
            continue
        h.update(k.encode())
        h.update(model_state[k].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def build_model(config: FitConfig, num_assets: int, device: str | torch.device = "cpu", **training) -> LatentNeRFModel:
    """The run's model; `training`: the trainer's `generator` and data-parallel `batch_rows`."""
    h = config.model.scene_half_size
    box = SceneBox(aabb=torch.tensor([[-h, -h, -h], [h, h, h]]))
    return config.model.setup(scene_box=box, num_train_data=num_assets, **training).to(device)


class Run:
    def __init__(self, path: Path, state: dict[str, Any]):
        self.path = path  # the RUN folder (or the checkpoint file it was opened from)
        self.state = state  # the checkpoint: weights, code tables, ids, optimizer and RNG states, config

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Run":
        path = Path(path)
        run = cls(path, load_checkpoint(path))
        run.config  # noqa: B018 - a run whose config cannot be read is refused here, not at first use
        return run

    @property
    def folder(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent.parent

    @cached_property
    def config(self) -> FitConfig:
        try:
            return FitConfig.from_json(self.state["config"])
        except (TypeError, KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{self.path}: checkpoint config is unreadable ({exc})") from exc

    @property
    def asset_ids(self) -> list[str]:
        return list(self.state["asset_ids"])

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def dataset(self) -> str:
        return str(self.state.get("dataset", ""))

    @property
    def embedded(self) -> dict[str, str]:
        """Assets added by `embed`, with the dataset each came from."""
        return dict(self.state.get("embedded", {}))

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        return self.state["model"]

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(shape codes (n, ds), texture codes (n, dt)) as float32, in `asset_ids` order."""
        shape = self.weights["codes.shape.weight"].float().numpy()
        texture = self.weights["codes.texture.weight"].float().numpy()
        if len(shape) != len(self.asset_ids) or len(texture) != len(self.asset_ids):
            raise CheckpointError(f"{self.path}: checkpoint lists {len(self.asset_ids)} asset ids but holds {len(shape)} codes")
        return shape, texture

    @cached_property
    def digest(self) -> str:
        return network_digest(self.weights)

    def model(self, device: str | torch.device = "cpu"):
        """The trained network with its code tables, in eval mode; built once per device."""
        cache = self.__dict__.setdefault("_models", {})
        key = str(device)
        if key not in cache:
            model = build_model(self.config, len(self.asset_ids), device)
            try:
                model.load_state_dict(self.weights)
            except RuntimeError as exc:
                raise CheckpointError(f"{self.path}: checkpoint weights do not match its config ({str(exc).splitlines()[0]})") from exc
            model.codes.trained = len(self.asset_ids) - len(self.embedded)  # `embed` appends after the trained rows
            cache[key] = model.eval()
        return cache[key]

    def rig(self):
        """(rig, image size) the run was trained with (defaults if its dataset has moved)."""
        from render_core.dataset import RenderedDataset
        from render_core.rig import RigConfig

        try:
            ds = RenderedDataset(self.dataset)
            return ds.config.rig, ds.image_size
        except ValueError:
            return RigConfig(), 64

    @property
    def history(self) -> list[dict]:
        """Held-out PSNR over training (`fit`'s quick evaluations), oldest first."""
        p = self.folder / HISTORY
        if not p.is_file():
            return []
        return [json.loads(line) for line in p.read_text("utf-8").splitlines() if line.strip()]

    @property
    def evaluation(self) -> dict | None:
        """The last `assets2vec eval` result, if any."""
        p = self.folder / EVAL_JSON
        return json.loads(p.read_text("utf-8")) if p.is_file() else None

    @property
    def encoder_path(self) -> Path:
        """Where this run's photo encoder is saved (`assets2vec photo-encoder`)."""
        return self.folder / ENCODER_FILE

    @property
    def segmenter_path(self) -> Path:
        """Where this run's photo segmenter is saved (`assets2vec photo-encoder`)."""
        return self.folder / SEGMENTER_FILE

    @property
    def bank_dir(self) -> Path:
        """Where inversion and photo banks of this run are cached."""
        return self.folder / BANK_DIR
