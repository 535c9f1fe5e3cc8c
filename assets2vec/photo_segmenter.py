"""The photo segmenter: where the catalog's object is in a photo, learned from the run's own meshes.

A colour-model cut (GrabCut) decides object against background by colour alone: it takes a cast
shadow with the object on a studio sweep, and the neighbouring things of a cluttered room. A small
U-Net trained per run under domain randomisation learns what the catalog's objects look like against
anything else: the run's meshes rendered from random cameras under random lights
(`assets2vec.photo_views`), laid anywhere in a frame over plain sweeps, walls over floors, textures in
perspective and shaded geometric distractors (Tobin et al. 2017 used the same kind of distractors),
with cast shadows and a camera's colour cast. Its answer seeds GrabCut, which sets the mask's edge
at the photo's full resolution (`assets2vec.photo.object_mask`). It is then fine-tuned on photos cut from
one-asset scenes of the scene generator, rooms in perspective (`assets2vec.photo_scenes`).

Trained beside the photo encoder (`assets2vec photo-encoder RUN`), from renders of its own (finer than
the encoder's, 96² rather than 64²), and saved in the run folder as plain tensors (`torch.load(weights_only=True)`): nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from assets2vec.devices import autocast
from assets2vec.photo_encoder import conv_stage
from assets2vec.photo_views import Randomiser
from assets2vec.tensor_files import load_tensors, reading, save_tensors

FORMAT = 1


@dataclass
class SegmenterConfig:
    size: int = 96
    """side of the square the photo is resized to for the network"""
    width: int = 16
    """channels of the first stage (doubled at each of the three below it)"""
    steps: int = 2000
    batch: int = 24
    lr: float = 3e-3
    weight_decay: float = 1e-4
    box: tuple[float, float] = (0.15, 0.85)
    """the object's box's longer side, as a share of the frame"""
    offset: float = 0.2
    """the object's centre is at most this share of the frame off the frame's centre"""
    distractors: int = 6
    """at most this many geometric distractors in a cluttered frame"""
    views: int = 32
    """renders per asset"""
    render_size: int = 96
    """their side in pixels: as fine as the network's input, so the object is no blurrier than its background"""
    scenes: int = 1500
    """one-asset scenes (`assets2vec.photo_scenes`) to fine-tune on after `steps`; 0: composed photos only"""
    scene_steps: int = 1000
    scene_share: float = 0.5
    """the share of each fine-tuning batch cut from scenes; the rest are composed photos"""
    scene_lr: float = 1e-3
    seed: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "SegmenterConfig":
        d = {"scenes": 0, **d}  # a segmenter saved before scenes existed was trained without them
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class UNet(torch.nn.Module):
    """(B, 3, s, s) sRGB in [0, 1] -> (B, 1, s, s) logits of "the object". Two channels of pixel
    coordinates are added to the input: a photographer frames the object, so where a region lies
    is evidence of what it is (CoordConv, Liu et al. 2018)."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.down = torch.nn.ModuleList([conv_stage(5, w), conv_stage(w, 2 * w), conv_stage(2 * w, 4 * w), conv_stage(4 * w, 8 * w)])
        self.up = torch.nn.ModuleList([conv_stage(8 * w + 4 * w, 4 * w), conv_stage(4 * w + 2 * w, 2 * w), conv_stage(2 * w + w, w)])
        self.head = torch.nn.Conv2d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        ys = torch.linspace(-1, 1, H, device=x.device).view(1, 1, H, 1).expand(B, 1, H, W)
        xs = torch.linspace(-1, 1, W, device=x.device).view(1, 1, 1, W).expand(B, 1, H, W)
        h = torch.cat([x * 2 - 1, xs, ys], 1)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        return self.head(h)


def distractor_meshes():
    """Geometric primitives (trimesh's generators), normalised as assets are: clutter that is not an asset."""
    import trimesh.creation as tc

    from render_core.assets.mesh import MeshData, normalize

    shapes = [tc.box((1, 1, 1)), tc.box((1.0, 0.4, 0.7)), tc.icosphere(3), tc.cylinder(0.5, 1.2, sections=32),
              tc.cone(0.5, 1.0, sections=32), tc.torus(0.5, 0.18), tc.capsule(1.0, 0.35)]
    for i, m in enumerate(shapes):
        mesh, _ = normalize(MeshData(verts=np.asarray(m.vertices, np.float32), faces=np.asarray(m.faces, np.int64),
                                     vertex_colors=np.full((len(m.vertices), 3), 0.8, np.float32)), "y")
        yield f"distractor-{i}", mesh


class Composer(Randomiser):
    """Draws training photos with their object masks: an asset's render anywhere in the frame, at any
    size the photos may have it, over a random background, with distractors behind and in front of it."""

    def __init__(self, size: int, generator: torch.Generator, distractors: torch.Tensor, config: SegmenterConfig):
        super().__init__(size, generator)
        self.distractors = distractors.permute(0, 3, 1, 2).float() / 255.0  # (D, 4, r, r) grey primitives
        self.config = config

    def _place(self, rgba: torch.Tensor, box: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """(B, 4, size, size): each render with its box's longer side `box` (B,) of the frame, its centre
        `offset` (B, 2) frames off the frame's centre; transparent elsewhere."""
        return self._crop(rgba, self.size, 1.0, box.reciprocal(), -offset, premultiplied=True)

    def _pattern(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) in [0, 1]: per image one of plain, stripes, checks, bricks or fine noise at
        texture coordinates `u`, `v` (B, h, w): the printed and woven surfaces of rooms."""
        B, h, w = u.shape
        kind = torch.randint(5, (B,), generator=self.gen).view(B, 1, 1)
        stripes = torch.floor(u) % 2
        checks = (torch.floor(u) + torch.floor(v)) % 2
        row = torch.floor(2 * v)
        mortar = ((2 * v - row) < 0.12) | (((u + 0.5 * (row % 2)) % 1) < 0.06)
        bricks = torch.where(mortar, 1.0, 0.3 * torch.rand(B, 1, 1, generator=self.gen))
        grain = F.interpolate(torch.rand(B, 1, max(2, h // 3), max(2, w // 3), generator=self.gen), size=(h, w), mode="bilinear",
                              align_corners=False)[:, 0]
        out = torch.where(kind == 0, torch.zeros_like(u), torch.where(kind == 1, stripes, torch.where(kind == 2, checks,
                          torch.where(kind == 3, bricks, grain))))
        return out[:, None]

    def _room(self, B: int) -> torch.Tensor:
        """(B, 3, s, s) a wall over a floor seen in perspective, each plain or patterned in two colours."""
        s = self.size
        horizon = self._u(B, 0.0, 0.6).view(B, 1, 1)
        yy = torch.linspace(0, 1, s).view(1, s, 1).expand(B, s, s)
        xx = torch.linspace(-1, 1, s).view(1, 1, s).expand(B, s, s)
        depth = 1.0 / (yy - horizon).clamp(min=0.02)
        f_floor, f_wall = self._u(B, 0.5, 4.0).view(B, 1, 1), self._u(B, 2.0, 12.0).view(B, 1, 1)
        floor_p = self._pattern(xx * depth * f_floor, depth * f_floor)
        wall_p = self._pattern(xx * f_wall, yy * f_wall * self._u(B, 0.0, 1.0).view(B, 1, 1))
        colours = [torch.rand(B, 3, 1, 1, generator=self.gen) for _ in range(4)]
        floor = colours[0] * floor_p + colours[1] * (1 - floor_p)
        wall = colours[2] * wall_p + colours[3] * (1 - wall_p)
        return torch.where((yy > horizon)[:, None], floor, wall)

    def _shadow(self, alpha: torch.Tensor) -> torch.Tensor:
        """(B, 1, s, s) multiplier: half the photos have the soft shadow of an overcast or studio light,
        the others the hard shadow a sun or a spot casts: the silhouette projected onto the floor from
        the object's foot, flattened, sheared and at times flipped towards the camera."""
        soft = super()._shadow(alpha)
        B, s = len(alpha), alpha.shape[-1]
        rows = (alpha[:, 0] > 0.5).any(2).float() * torch.arange(s, dtype=torch.float32)
        foot = rows.amax(1).view(B, 1, 1)  # the object's lowest row, in pixels
        squash = self._u(B, 0.15, 0.7) * torch.where(torch.rand(B, generator=self.gen) < 0.5, -1.0, 1.0)
        shear = self._u(B, -1.5, 1.5).view(B, 1, 1)
        y = torch.arange(s, dtype=torch.float32).view(1, s, 1).expand(B, s, s) + 0.5
        x = torch.arange(s, dtype=torch.float32).view(1, 1, s).expand(B, s, s) + 0.5
        y_in = foot + (y - foot) / squash.view(B, 1, 1)
        x_in = x - shear * (y - foot)
        grid = torch.stack([2 * x_in / s - 1, 2 * y_in / s - 1], -1)
        cast = F.grid_sample(alpha, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        cast = F.avg_pool2d(cast, 3, stride=1, padding=1)
        depth = self._u(B, 0.25, 0.75).view(B, 1, 1, 1)
        hard = 1 - depth * cast.clamp(0, 1)
        return torch.where((torch.rand(B, generator=self.gen) < 0.5).view(B, 1, 1, 1), soft, hard)

    def _clutter(self, B: int) -> torch.Tensor:
        """(B, 4, s, s) premultiplied layer of 0 to `config.distractors` tinted primitives (transparent elsewhere)."""
        s = self.size
        layer = torch.zeros(B, 4, s, s)
        count = torch.randint(self.config.distractors + 1, (B,), generator=self.gen)
        for k in range(self.config.distractors):
            pick = torch.randint(len(self.distractors), (B,), generator=self.gen)
            tint = 0.15 + 0.85 * torch.rand(B, 3, 1, 1, generator=self.gen)
            item = self.distractors[pick].clone()
            item[:, :3] = item[:, :3] * tint
            placed = self._place(item, self._u(B, 0.1, 0.5), torch.stack([self._u(B, -0.5, 0.5), self._u(B, -0.5, 0.5)], 1))
            placed = placed * (k < count).float().view(B, 1, 1, 1)
            a = placed[:, 3:4]
            layer = torch.cat([placed[:, :3] * a + layer[:, :3] * (1 - a), a + layer[:, 3:4] * (1 - a)], 1)
        return layer

    def compose(self, rgba: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, s, s) photos in [0, 1] and (B, 1, s, s) masks of the object's visible pixels, from
        (B, S, S, 4) uint8 renders."""
        x = rgba.permute(0, 3, 1, 2).float() / 255.0
        B, c = len(x), self.config
        obj = self._place(x, self._u(B, *c.box), torch.stack([self._u(B, -c.offset, c.offset), self._u(B, -c.offset, c.offset)], 1))
        alpha = obj[:, 3:4]
        bg = torch.where((torch.rand(B, generator=self.gen) < 0.5).view(B, 1, 1, 1), self._room(B), self._background(B, self.size))
        cluttered = (torch.rand(B, generator=self.gen) < 0.5).view(B, 1, 1, 1).float()
        behind, front = self._clutter(B), self._clutter(B)
        front = front * (torch.rand(B, generator=self.gen) < 0.3).view(B, 1, 1, 1).float() * cluttered
        behind = behind * cluttered
        # Front distractors are kept small: in a photo of an object, what hides it does not hide most of it.
        hidden = (alpha * front[:, 3:4]).flatten(1).sum(1) / alpha.flatten(1).sum(1).clamp(min=1.0)
        front = front * (hidden <= 0.4).float().view(B, 1, 1, 1)
        shadow = self._shadow(torch.maximum(alpha, behind[:, 3:4]))
        img = behind[:, :3] + bg * shadow * (1 - behind[:, 3:4])
        img = obj[:, :3] * alpha + img * (1 - alpha)
        img = front[:, :3] + img * (1 - front[:, 3:4])
        mask = ((alpha * (1 - front[:, 3:4])) > 0.5).float()
        return self._camera(img.clamp(0, 1)), mask


@dataclass
class TrainedSegmenter:
    net: UNet
    config: SegmenterConfig
    history: list[dict]

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> "TrainedSegmenter":
        self.net.to(device)
        return self

    @torch.no_grad()
    def probability(self, rgb: np.ndarray, width: int | None = None) -> np.ndarray:
        """(H, W) float32 in [0, 1]: the probability that each pixel of the (H, W, 3) uint8 photo is the object.
        The photo is padded to a square with its border and resized to the network's side. `width`: the
        answer's width, the photo's own by default (a search asks for GrabCut's working size, so a large
        photo's probabilities are not enlarged to full size only to be reduced again)."""
        import cv2

        h, w = rgb.shape[:2]
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        square = cv2.copyMakeBorder(np.ascontiguousarray(rgb), top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE)
        s = self.config.size
        small = cv2.resize(square, (s, s), interpolation=cv2.INTER_AREA if side > s else cv2.INTER_LINEAR)
        x = torch.as_tensor(small).permute(2, 0, 1)[None].float().div(255.0).to(self.device)
        self.net.eval()
        p = torch.sigmoid(self.net(x))[0, 0].float().cpu().numpy()
        f = 1.0 if width is None else width / w
        out_h, out_w = max(1, round(h * f)), max(1, round(w * f))
        sq = max(round(side * f), out_h, out_w)
        p = cv2.resize(p, (sq, sq), interpolation=cv2.INTER_LINEAR)
        t, l = min(round(top * f), sq - out_h), min(round(left * f), sq - out_w)
        return np.ascontiguousarray(p[t:t + out_h, l:l + out_w])

    def save(self, path: str | os.PathLike) -> Path:
        return save_tensors(path, {"format": FORMAT, "state": self.net.state_dict(), "config": json.dumps(self.config.to_json()),
                                   "history": json.dumps(self.history)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainedSegmenter":
        with reading(path, "photo segmenter"):
            d = load_tensors(path, FORMAT)
            config = SegmenterConfig.from_json(json.loads(d["config"]))
            net = UNet(config.width)
            net.load_state_dict(d["state"])
        return cls(net.eval(), config, json.loads(d["history"]))


def _loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice: the Dice term keeps a small object's thin parts from
    being outvoted by the background's pixels."""
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * mask).flatten(1).sum(1) + 1) / (p.flatten(1).sum(1) + mask.flatten(1).sum(1) + 1)
    return F.binary_cross_entropy_with_logits(logits, mask) + dice.mean()


HOLD_OUT = 20
"""every HOLD_OUT-th scene is held out of the fine-tuning, to measure it"""


def train_segmenter(renders: np.ndarray, distractors: np.ndarray, config: SegmenterConfig = SegmenterConfig(),
                    progress: bool = True, log=print, device: torch.device | str = "cpu",
                    scenes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> TrainedSegmenter:
    """Train on `renders` (N, V, S, S, 4) uint8 of the run's assets and `distractors` (D, S, S, 4) uint8
    renders of primitives; every step composes new photos (on the CPU, from the seeded generator, so
    the draws do not depend on the device). The last view of every asset is held out: the mask IoU on
    photos composed from them is reported after training.

    `scenes`: (images, masks, scene index) cut from one-asset scenes (`photo_scenes.scene_crops`); with
    them, `config.scene_steps` more steps fine-tune on batches of which `config.scene_share` are scene
    crops. A fine-tune rather than a mix from the start, because that is the schedule that was measured
    against photos from another renderer (docs/experiments.md). Every `HOLD_OUT`-th scene is held out."""
    from tqdm.auto import tqdm

    N, V = renders.shape[:2]
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    device = torch.device(device)
    net = UNet(config.width).to(device)
    views = torch.as_tensor(renders)
    train_v = V - 1 if V > 1 else V
    compose = Composer(config.size, gen, torch.as_tensor(distractors), config)
    tune = scenes is not None and config.scene_steps > 0
    total = config.steps + (config.scene_steps if tune else 0)
    history, t0 = [], time.time()
    bar = tqdm(total=total, disable=not progress, unit="step", desc="photo segmenter")

    def train(steps: int, opt, sched, scene_batch=None) -> float:
        net.train()
        for step in range(steps):
            b = config.batch - (0 if scene_batch is None else scene_batch[0])
            a = torch.randint(N, (b,), generator=gen)
            v = torch.randint(train_v, (b,), generator=gen)
            img, mask = compose.compose(views[a, v])
            if scene_batch is not None:
                si, sm = scene_batch[1]()
                img, mask = torch.cat([img, compose._camera(si)]), torch.cat([mask, sm])
            with autocast(device):
                logits = net(img.to(device))
            loss = _loss(logits.float(), mask.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        return round(float(loss.detach()), 4)

    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss = train(config.steps, opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.1))
    entry = {"steps": config.steps, "loss": loss}
    scene_iou = None
    if tune:
        images, masks, index = scenes
        held = index % HOLD_OUT == HOLD_OUT - 1
        si = torch.as_tensor(images[~held]).permute(0, 3, 1, 2)
        sm = torch.as_tensor(masks[~held])[:, None]
        if len(si) == 0:
            raise ValueError(f"no scene crops left to train on after holding out every {HOLD_OUT}th scene")
        k = max(1, min(config.batch - 1, round(config.batch * config.scene_share)))

        def draw():
            j = torch.randint(len(si), (k,), generator=gen)
            img, m = si[j].float() / 255.0, sm[j].float()
            flip = torch.rand(k, generator=gen) < 0.5  # the rooms' walls stand left and right of the floor
            img[flip], m[flip] = img[flip].flip(-1), m[flip].flip(-1)
            return img, m

        opt = torch.optim.AdamW(net.parameters(), lr=config.scene_lr, weight_decay=config.weight_decay)
        loss = train(config.scene_steps, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.scene_steps), (k, draw))
        entry.update(scene_steps=config.scene_steps, scene_crops=int(len(si)), loss=loss)
        if held.any():
            scene_iou = _iou(net, torch.as_tensor(images[held]).permute(0, 3, 1, 2).float() / 255.0,
                             torch.as_tensor(masks[held])[:, None].float())
            entry["held_out_scene_iou"] = round(scene_iou, 4)
    bar.close()
    iou = _held_out_iou(net, views[:, V - 1], torch.as_tensor(distractors), config) if V > 1 else float("nan")
    entry.update(held_out_iou=round(iou, 4), seconds=round(time.time() - t0, 1))
    history.append(entry)
    log(f"photo segmenter: {total} steps in {time.time() - t0:.0f} s; mask IoU on held-out composed photos {iou:.3f}"
        + ("" if scene_iou is None else f", on held-out scenes {scene_iou:.3f}"))
    return TrainedSegmenter(net.eval(), config, history)


@torch.no_grad()
def _overlap(net: UNet, img: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(intersection, union) in pixels of the network's answers on photos `img` (B, 3, s, s) and `mask` (B, 1, s, s)."""
    net.eval()
    found = (net(img.to(next(net.parameters()).device)).cpu() > 0).float()
    return float((found * mask).sum()), float(((found + mask) > 0).float().sum())


def _iou(net: UNet, img: torch.Tensor, mask: torch.Tensor) -> float:
    """Mask IoU over all of `img` (B, 3, s, s) and `mask` (B, 1, s, s), pooled."""
    inter = union = 0.0
    for part in torch.arange(len(img)).split(64):
        i, u = _overlap(net, img[part], mask[part])
        inter, union = inter + i, union + u
    return inter / max(union, 1.0)


@torch.no_grad()
def _held_out_iou(net: UNet, views: torch.Tensor, distractors: torch.Tensor, config: SegmenterConfig) -> float:
    compose = Composer(config.size, torch.Generator().manual_seed(config.seed + 1), distractors, config)
    inter = union = 0.0
    for part in torch.arange(len(views)).split(64):  # composed in parts: a large run's photos need not all be in memory
        img, mask = compose.compose(views[part])
        i, u = _overlap(net, img, mask)
        inter, union = inter + i, union + u
    return inter / max(union, 1.0)


def train_for_run(run_path: str | os.PathLike, config: SegmenterConfig = SegmenterConfig(), progress: bool = True,
                  log=print, device: torch.device | str = "cpu") -> Path:
    """Render the run's assets and the distractors (and, with `config.scenes`, one-asset scenes of the
    assets), train the segmenter and save it in the run folder; returns the file."""
    from assets2vec.photo_encoder import report_unreadable, run_meshes
    from assets2vec.photo_views import ViewConfig, render_views
    from assets2vec.run import Run

    run = Run.open(run_path)
    t0 = time.time()
    views = ViewConfig(views=config.views, size=config.render_size, seed=config.seed)
    failed: list = []
    renders = render_views(run_meshes(run, failed), views, progress=progress, total=len(run.asset_ids), device=device)
    clutter = render_views(distractor_meshes(), replace(views, views=24), progress=False, device=device)
    log(f"photo segmenter: {renders.shape[0]} assets x {renders.shape[1]} views rendered in {time.time() - t0:.0f} s")
    report_unreadable(failed, "photo segmenter", log)
    bad = {i for i, _ in failed}
    renders = renders[[k for k, i in enumerate(run.asset_ids) if i not in bad]]
    if len(renders) == 0:
        raise ValueError(f"{run_path}: none of the run's {len(run.asset_ids)} meshes could be read; the segmenter needs some")
    scenes = None
    if config.scenes > 0 and config.scene_steps > 0:
        from assets2vec.photo_scenes import run_pool, scene_crops

        t1 = time.time()
        pool = [a for a in run_pool(run, []) if a.id not in bad]  # those left out are named above
        scenes = scene_crops(pool, config.scenes, config.seed, config.size, device=device, progress=progress, log=log)
        log(f"photo segmenter: {len(scenes[0])} photos cut from {len(set(scenes[2].tolist()))} of {config.scenes} "
            f"one-asset scenes in {time.time() - t1:.0f} s")
        if len(scenes[0]) == 0:
            log("photo segmenter: no scene showed its asset whole and large enough; trained on composed photos only")
            scenes = None
    segmenter = train_segmenter(renders, clutter.reshape(-1, *clutter.shape[2:]), config, progress=progress, log=log,
                                device=device, scenes=scenes)
    return segmenter.save(run.segmenter_path)


def for_run(path: Path) -> TrainedSegmenter | None:
    """A run's photo segmenter, or None when it has none."""
    return TrainedSegmenter.load(path) if path.is_file() else None
