"""Inversion: fit shape and texture codes to one or more images with the network frozen.

Codes start at the mean training code. With the camera unknown, every candidate pose
(the rig's views, or a denser grid of elevations x azimuths) gets its own copy of the
codes and all copies are optimised together for a few steps on the same pixels; the
poses whose copies explain the image best survive (successive halving). Then the
training codes nearest to the survivors' codes (exemplars) are rendered from those poses
and compared with the searched codes on pixels drawn uniformly over the image; the
refinement starts from whichever explains the image best. Refinement renders finely
(uniform samples plus samples where those found density), so thin parts are not missed.
The fit score is the PSNR of the final render against the image(s) on the sampled pixels.

With a `CodeBank` (renders of every training code from every candidate pose on a coarse
grid, built once per run), the camera-unknown search starts from a lookup instead: the
bank's best (pose, code) pairs and the mean code at the best pose compete by successive
halving as above, and refinement starts from the winner. This is what `assets2vec invert` uses
for images taken from the rig's own poses; photos from any camera go through `assets2vec.photo_fit`
(`Catalog.search_image`, the app).

The search renders with uniform samples inside the object's box (no occupancy grid: the
codes change every step) and supervises the object's mask too, taken from the image's
alpha or, for an opaque image on white, from its non-white pixels.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from nerfstudio.cameras.rays import RayBundle

from assets2vec.data.rays import camera_rays
from assets2vec.devices import model_device
from assets2vec.models.latent_nerf import LatentNeRFModel
from render_core.poses import rig_poses
from render_core.rig import RigConfig

if TYPE_CHECKING:
    from assets2vec.code_bank import CodeBank

MAX_IMAGE_SIDE = 4096


@dataclass
class InversionConfig:
    search_rounds: tuple[tuple[int, int, int], ...] = ((18, 64, 6), (6, 128, 8), (2, 256, 10))
    """unknown camera, successive halving: (candidates kept, pixels per candidate, steps) per round;
    every candidate sees the same pixels, and the worst are dropped before the next round"""
    refine_steps: int = 10
    """steps on the chosen pose"""
    refine_rays: int = 512
    """pixels per refine step"""
    num_samples: int = 24
    """uniform samples per ray inside the box"""
    fine_samples: int = 24
    """after the pose search (comparing exemplars, refining): samples drawn where the uniform ones
    found density, so thin parts are not missed"""
    lr: float = 0.05
    """Adam learning rate of the codes"""
    foreground_fraction: float = 0.6
    """share of sampled pixels on the object"""
    mask_weight: float = 0.5
    """weight of the mask (coverage) loss next to the colour loss"""
    code_reg: float = 1e-3
    """pull towards the mean code, so a single view does not wander off the training manifold"""
    exemplars: int = 32
    """before refining, the codes are also tried from the k training codes nearest to the search's
    result (at each surviving pose); refinement starts from whichever explains the image best (0: off)"""
    exemplar_rounds: tuple[tuple[int, int, int], ...] = ((256, 4, 0), (1024, 1, 24))
    """successive halving over the exemplars: (pixels, candidates kept, fine samples) per round;
    pixels are drawn uniformly over the image, so a fit that spills onto the background pays in full"""
    exemplar_poses: int = 2
    """how many of the search's best poses the exemplars are tried at"""
    exemplar_lr: float = 0.005
    """refinement learning rate when a training code won: Adam moves every coordinate by about the
    learning rate per step, and the codes' spread is only ~0.15-0.3 per coordinate"""
    bank_candidates: int = 32
    """with a CodeBank: the best (pose, training code) pairs of the bank lookup that compete as starts"""
    bank_search_rounds: tuple[tuple[int, int, int], ...] = ()
    """with a CodeBank: the pose search from the mean code runs only at the bank's best poses
    (the first round's `keep` distinct poses), so an image of an asset the bank does not hold still
    gets a free fit to compete with the bank's codes"""
    seed: int = 0
    """seed of the pixel sampling"""


@dataclass
class InversionResult:
    shape_code: torch.Tensor  # (ds,)
    texture_code: torch.Tensor  # (dt,)
    c2w: np.ndarray  # (4, 4) the fitted camera of the first image (OpenGL convention)
    camera_index: int | None  # which candidate pose won, when the camera was searched
    score: float  # PSNR (dB) of the fitted render on the sampled pixels
    seconds: float
    losses: list[float] = field(default_factory=list)


def image_to_rgb_mask(image: np.ndarray, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3|4) uint8 or float -> rgb on white (H, W, 3) float and mask (H, W) float in [0, 1]."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"{name}: expected an H x W x 3 (RGB) or x 4 (RGBA) image, got shape {a.shape}")
    if max(a.shape[:2]) > MAX_IMAGE_SIDE:
        raise ValueError(f"{name}: {a.shape[1]}x{a.shape[0]} pixels exceeds the {MAX_IMAGE_SIDE} px limit")
    f = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if not np.isfinite(f).all() or f.min() < 0 or f.max() > 1:
        raise ValueError(f"{name}: pixel values must be uint8 or floats in [0, 1]")
    if f.shape[2] == 4:
        alpha = f[..., 3]
        rgb = f[..., :3] * alpha[..., None] + (1 - alpha[..., None])
    else:
        rgb = f
        alpha = (rgb.min(-1) < 0.97).astype(np.float32)  # opaque render on white: the object is what is not white
    return rgb, alpha


# The poses inversion searches: the rig's views, or its elevations x N azimuths.
candidate_poses = rig_poses


class _Target:
    """Pixels of the images with their rays for every candidate pose."""

    def __init__(self, images: list[np.ndarray], poses: np.ndarray, intrinsics: np.ndarray,
                 device: torch.device | str = "cpu"):
        size = images[0].shape[0]
        rgbs, masks = zip(*(image_to_rgb_mask(im, f"image {i}") for i, im in enumerate(images)))
        self.rgb = torch.as_tensor(np.stack(rgbs)).reshape(-1, 3).to(device)  # (I*H*W, 3)
        self.mask = torch.as_tensor(np.stack(masks)).reshape(-1).to(device)
        self.n_images, self.size = len(images), size
        rays = camera_rays(poses.reshape(-1, 4, 4).astype(np.float32), intrinsics, size)
        K = poses.shape[0]
        # poses: (K, I, 4, 4) -> rays (K, I*H*W, 3), on the model's device like everything rendered.
        # Index tensors drawn from the CPU generator may index them (torch moves such an index).
        self.origins = rays.origins.reshape(K, -1, 3).to(device)
        self.directions = rays.directions.reshape(K, -1, 3).to(device)
        self.fg = torch.nonzero(self.mask > 0.5).squeeze(1)
        self.bg = torch.nonzero(self.mask <= 0.5).squeeze(1)

    @property
    def true_fraction(self) -> float:
        """The object's share of the image: sampling at it weighs every pixel alike, so a fit that
        spills density onto the background pays for it in full."""
        return len(self.fg) / max(1, len(self.fg) + len(self.bg))

    def sample(self, n: int, fg_fraction: float, gen: torch.Generator) -> torch.Tensor:
        n_fg = min(int(round(n * fg_fraction)), n) if len(self.fg) else 0
        parts = []
        if n_fg:
            parts.append(self.fg[torch.randint(len(self.fg), (n_fg,), generator=gen)])
        if n - n_fg and len(self.bg):
            parts.append(self.bg[torch.randint(len(self.bg), (n - n_fg,), generator=gen)])
        return torch.cat(parts)


def _render_rays(model: LatentNeRFModel, origins, directions, shape, texture, num_samples: int, num_fine: int = 0):
    """Differentiable render of rays (N, 3) with per-ray codes (N, d): uniform samples in the box,
    plus `num_fine` where those found density."""
    bundle = RayBundle(origins=origins, directions=directions, pixel_area=torch.ones_like(origins[:, :1]),
                       metadata={"shape_code": shape, "texture_code": texture})
    return model.render_uniform(bundle, num_samples, num_fine)


def invert(
    model: LatentNeRFModel,
    images: list[np.ndarray],
    intrinsics: np.ndarray,
    poses: np.ndarray | None = None,
    rig: RigConfig | None = None,
    config: InversionConfig = InversionConfig(),
    azimuth_steps: int | None = None,
    bank: "CodeBank | None" = None,
) -> InversionResult:
    """Fit codes to `images` (each (S, S, 3|4)), all of one object.

    `poses`: (I, 4, 4) known cameras, one per image. Without them, the camera of the
    first image is searched over `rig`'s poses (or a denser grid with `azimuth_steps`);
    further images then need known poses relative to it, so only one image is allowed.
    `bank`: renders of the training codes from the same candidate poses (`CodeBank`); with it,
    the search starts from a lookup of the best (pose, code) pairs instead of from every pose.
    """
    with frozen(model):
        return _invert(model, images, intrinsics, poses, rig, config, azimuth_steps, bank)


@contextmanager
def frozen(model):
    """The network's gradients off inside (codes are fitted, weights stay); each parameter's own flag is
    restored afterwards, also when the body raises."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _invert(model, images, intrinsics, poses, rig, config, azimuth_steps, bank) -> InversionResult:
    t0 = time.time()
    if not images:
        raise ValueError("inversion needs at least one image")
    sizes = {im.shape[:2] for im in images}
    if len(sizes) != 1 or images[0].shape[0] != images[0].shape[1]:
        raise ValueError(f"images must be square and all the same size, got {sorted(sizes)}")
    model.eval()
    gen = torch.Generator().manual_seed(config.seed)
    candidates = _candidate_cameras(images, poses, rig, azimuth_steps)
    target = _Target(images, candidates, np.asarray(intrinsics, dtype=np.float32), model_device(model))
    loss_fn = _CodeLoss(model, target, config)
    K = candidates.shape[0]
    shape = loss_fn.mean_shape.expand(K, -1).clone().requires_grad_(True)
    texture = loss_fn.mean_texture.expand(K, -1).clone().requires_grad_(True)
    chosen, which, from_bank = 0, torch.zeros(1, dtype=torch.long), None
    if K > 1:
        which, from_bank = _pose_search(model, loss_fn, target, candidates, shape, texture, config, bank, gen)
        chosen = int(which[0])
    loss_fn.fine = config.fine_samples  # the pose search renders coarsely; refinement, finely
    start_shape, start_texture, lr = shape[chosen].detach(), texture[chosen].detach(), config.lr
    starts = None
    if from_bank is not None:
        bank_poses, bank_rows = from_bank
        table_s, table_t = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
        starts = (torch.cat([which, bank_poses]), torch.cat([shape.detach()[which], table_s[bank_rows]]),
                  torch.cat([texture.detach()[which], table_t[bank_rows]]), [True] * len(which) + [False] * len(bank_rows))
    elif config.exemplars > 0:
        starts = _exemplars(model, shape.detach(), texture.detach(), which[: config.exemplar_poses], config.exemplars)
    if starts is not None:
        rounds = [(target.sample(n, target.true_fraction, gen), keep, f) for n, keep, f in config.exemplar_rounds]
        chosen, start_shape, start_texture, from_table = _best_start(loss_fn, *starts, rounds)
        lr = config.exemplar_lr if from_table else lr
    target.origins, target.directions = target.origins[chosen : chosen + 1], target.directions[chosen : chosen + 1]
    shape, texture, losses, colour = _refine(loss_fn, target, start_shape, start_texture, lr, config, gen)
    return InversionResult(
        shape_code=shape, texture_code=texture, c2w=candidates[chosen, 0],
        camera_index=chosen if K > 1 else None, score=float(-10 * torch.log10(colour.clamp(min=1e-10))[0]),
        seconds=time.time() - t0, losses=losses,
    )


def _candidate_cameras(images, poses, rig, azimuth_steps) -> np.ndarray:
    """(K, I, 4, 4): the known cameras (K = 1), or for one image the rig's poses to search."""
    if poses is not None:
        poses = np.asarray(poses, dtype=np.float32).reshape(-1, 4, 4)
        if len(poses) != len(images):
            raise ValueError(f"got {len(poses)} poses for {len(images)} images")
        return poses[None]
    if len(images) != 1:
        raise ValueError("with an unknown camera, invert one image at a time (or pass the poses)")
    if rig is None:
        raise ValueError("an unknown camera is searched over a rig: pass rig=RigConfig(...) or the poses")
    return candidate_poses(rig, azimuth_steps)[:, None]


class _CodeLoss:
    """Losses of codes seen from the target's candidate poses, rendered with `fine` extra samples
    (none while searching poses, the configured number while refining)."""

    def __init__(self, model, target: "_Target", config: InversionConfig):
        self.model, self.target, self.config, self.fine = model, target, config, 0
        self.mean_shape, self.mean_texture = model.codes.mean()

    def __call__(self, s_codes: torch.Tensor, t_codes: torch.Tensor, pose_rows: torch.Tensor, idx: torch.Tensor,
                 reg: bool = True, fine_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Losses (M,) and colour errors (M,) of codes (M, d) seen from candidate poses (M,) on pixels `idx`
        (without the pull towards the mean code when `reg` is False; `fine_samples` overrides the stage's)."""
        t, c = self.target, self.config
        n, m = len(idx), len(pose_rows)
        o = t.origins[pose_rows][:, idx].reshape(-1, 3)
        d = t.directions[pose_rows][:, idx].reshape(-1, 3)
        out = _render_rays(self.model, o, d, s_codes.repeat_interleave(n, 0), t_codes.repeat_interleave(n, 0), c.num_samples,
                           self.fine if fine_samples is None else fine_samples)
        rgb = out["rgb"].view(m, n, 3)
        acc = out["accumulation"].view(m, n)
        colour = ((rgb - t.rgb[idx]) ** 2).mean((1, 2))
        data = colour + c.mask_weight * ((acc - t.mask[idx]) ** 2).mean(1)
        if not reg:
            return data, colour
        pull = ((s_codes - self.mean_shape) ** 2).sum(-1) + ((t_codes - self.mean_texture) ** 2).sum(-1)
        return data + c.code_reg * pull, colour


def _pose_search(model, loss_fn: _CodeLoss, target, candidates, shape, texture, config: InversionConfig, bank, gen):
    """Candidate poses (rows, best first) after fitting per-pose codes by successive halving, and, with
    a bank, the bank's best (pose rows, code rows) as further starts (else None)."""
    K = candidates.shape[0]
    rounds, which, from_bank = config.search_rounds, torch.arange(K), None
    if bank is not None:
        if len(bank.poses) != K or not np.allclose(bank.poses, candidates[:, 0], atol=1e-4) or bank.size != target.size:
            raise ValueError(f"the inversion bank was built for {len(bank.poses)} poses at {bank.size} px, not for these "
                             f"{K} candidate poses at {target.size} px")
        if bank.n_codes != model.codes.shape.weight.shape[0]:
            raise ValueError(f"the inversion bank holds {bank.n_codes} codes, the model {model.codes.shape.weight.shape[0]}: "
                             f"it was built for another run (CodeBank.for_run keeps one per run)")
        bank_poses, bank_rows, _ = bank.search(target.rgb, target.mask, config.bank_candidates, config.mask_weight)
        rounds = config.bank_search_rounds
        n_poses = rounds[0][0] if rounds else 1
        which, from_bank = torch.as_tensor(list(dict.fromkeys(bank_poses.tolist()))[:n_poses]), (bank_poses, bank_rows)
    # Adam's per-parameter state makes candidates independent, so one optimizer serves all.
    opt = torch.optim.Adam([shape, texture], lr=config.lr)
    for keep, rays, steps in rounds:
        if keep < len(which):
            with torch.no_grad():
                score, _ = loss_fn(shape[which], texture[which], which, target.sample(4 * rays, config.foreground_fraction, gen))
            which = which[torch.argsort(score)[:keep].cpu()]  # selections stay on the CPU, like `which`
        for _ in range(steps):
            loss, _ = loss_fn(shape[which], texture[which], which, target.sample(rays, config.foreground_fraction, gen))
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
    with torch.no_grad():
        final, _ = loss_fn(shape[which], texture[which], which, target.sample(1024, config.foreground_fraction, gen))
    return which[torch.argsort(final).cpu()], from_bank


def _refine(loss_fn: _CodeLoss, target, start_shape, start_texture, lr: float, config: InversionConfig, gen):
    """(shape code, texture code, losses, colour error) after refining one start at the chosen pose."""
    shape = start_shape[None].clone().requires_grad_(True)
    texture = start_texture[None].clone().requires_grad_(True)
    opt = torch.optim.Adam([shape, texture], lr=lr)
    one = torch.zeros(1, dtype=torch.long)
    losses: list[float] = []
    for i in range(config.refine_steps):
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 ** (i / max(1, config.refine_steps)))
        loss, _ = loss_fn(shape, texture, one, target.sample(config.refine_rays, config.foreground_fraction, gen))
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        _, colour = loss_fn(shape, texture, one, target.sample(4 * config.refine_rays, 0.5, gen))
    return shape.detach()[0], texture.detach()[0], losses, colour


def _exemplars(model, shape, texture, poses, k: int):
    """Starts to compare (pose rows, shape codes, texture codes, own): each pose in `poses` with its
    own searched codes, and with the `k` training codes nearest to them."""
    table_s, table_t = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
    pose_rows, s_codes, t_codes, own = [], [], [], []  # own: the pose's searched codes, not a table row
    for p in poses.tolist():
        _, rows = nearest_codes(model, shape[p], texture[p], min(k, len(table_s)))
        rows = torch.as_tensor(rows, dtype=torch.long)
        pose_rows += [p] * (len(rows) + 1)
        own += [True] + [False] * len(rows)
        s_codes += [shape[p][None], table_s[rows]]
        t_codes += [texture[p][None], table_t[rows]]
    return torch.as_tensor(pose_rows), torch.cat(s_codes), torch.cat(t_codes), own


def _best_start(code_loss, pose_rows, s_codes, t_codes, own, rounds, chunk: int = 32):
    """(pose, shape code, texture code, from the table) to refine from: whichever start (codes seen
    from a pose) explains the image best over `rounds` of successive halving ((pixels, candidates
    kept, fine samples) each).

    A training code is a point the network renders well; when the image shows a catalog asset, the
    refinement then starts on it instead of wherever a few steps from the mean code have reached."""
    live = torch.arange(len(pose_rows))
    with torch.no_grad():
        # Successive halving: all candidates coarsely on few pixels, the best few finely on more.
        # On the image alone: the pull towards the mean exists to keep a free fit plausible, and
        # would otherwise favour the barely-moved searched codes over every real asset.
        for pixels, keep, fine in rounds:
            loss = torch.cat([code_loss(s_codes[c], t_codes[c], pose_rows[c], pixels, reg=False, fine_samples=fine)[0]
                              for c in live.split(max(1, chunk * 256 // len(pixels)))])
            live = live[torch.argsort(loss)[:keep].cpu()]
    best = int(live[0])
    return int(pose_rows[best]), s_codes[best], t_codes[best], not own[best]


def nearest_codes(model: LatentNeRFModel, shape: torch.Tensor, texture: torch.Tensor, k: int = 5,
                  whiten: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distances and rows of the k training codes nearest to (shape, texture) in the joint space.

    With `whiten`, every dimension is divided by its spread over the training codes first, so
    dimensions the training barely uses do not dominate the distance.
    """
    table = torch.cat([model.codes.shape.weight, model.codes.texture.weight], 1).detach()
    query = torch.cat([shape, texture])[None]
    if whiten:
        std = table.std(0).clamp(min=1e-6)
        table, query = table / std, query / std
    d = torch.linalg.norm(table - query, dim=1)
    order = torch.argsort(d)[:k]
    return d[order].cpu().numpy(), order.cpu().numpy()
