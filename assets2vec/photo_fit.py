"""Fit a photo: which of the run's assets is in it, seen by which camera, under which colour cast.

The photo arrives prepared (`assets2vec.photo`): the object cropped and framed, its mask as alpha.
1. Lookup: a framed `CodeBank` (every training code from a sphere of poses finer than the rig,
   each framed like the photo) gives the best (pose, code) starts; colours are compared after a
   per-channel gain, so exposure and white balance do not decide.
2. Selection: the starts render on more pixels (successive halving, closed-form gains).
3. Camera and colour: for the best few starts, with their codes fixed, gradient steps refine the
   camera (a rotation about the object, the distance, the focal length and the principal point,
   as in iNeRF's render-and-compare) together with a per-channel colour gain (exposure and white balance). The losses they
   reach say how well each catalog asset explains the photo; the best and the runner-up (another
   asset) give the margin.
4. Joint: the winner's codes are freed and refined with its camera (its colour gain kept), so an
   asset that is not in the catalog gets codes of its own to search with.
Losses: a Huber loss on the object's colours (shadows and highlights are outliers, not errors
to chase) and the squared error of the silhouette over the whole crop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from nerfstudio.cameras.rays import RayBundle

from assets2vec.code_bank import pixel_directions
from assets2vec.devices import model_device
from assets2vec.invert import frozen, image_to_rgb_mask
from assets2vec.photo import PreparedPhoto
from render_core.poses import rig_poses, sphere_poses
from render_core.rig import RigConfig

PHOTO_ELEVATIONS = (-5.0, 10.0, 25.0, 40.0, 55.0)
"""elevations of the photo bank's poses: photos are mostly taken from a little above the object"""
PHOTO_AZIMUTHS = 12
"""azimuths per elevation (30 degrees apart: the camera fit covers half that)"""


def photo_poses(rig: RigConfig, elevations=PHOTO_ELEVATIONS, azimuths: int = PHOTO_AZIMUTHS) -> np.ndarray:
    """(V + E*A, 4, 4) camera-to-world poses looking at the origin: the rig's own ring views (what the
    run was trained from: a photo taken there starts exactly), then a sphere of E elevations x A azimuths."""
    return np.concatenate([rig_poses(rig), sphere_poses(elevations, azimuths, rig.distance)]).astype(np.float32)


@dataclass
class PhotoFitConfig:
    bank_codes: int = 16
    """codes of the bank lookup that compete (the best distinct codes)"""
    bank_poses: int = 2
    """poses per code: its best ones in the bank"""
    halving: tuple[tuple[int, int], ...] = ((256, 10), (512, 4))
    """successive halving of the starts: (pixels, starts kept) per round"""
    camera_steps: int = 24
    """camera + colour steps for each kept start, codes fixed"""
    camera_rays: int = 256
    """pixels per step and start"""
    camera_lr: float = 0.02
    """Adam learning rate of the camera (radians, log-scale, pixels/size) and colour parameters"""
    joint_steps: int = 16
    """steps on the winner with its codes free too"""
    joint_rays: int = 384
    """pixels per joint step: the joint fit gives the codes to search with, not the answer, so it is the first to save time on"""
    code_lr: float = 0.005
    """the codes' spread is only ~0.15-0.3 per coordinate: Adam moves each by about this per step"""
    num_samples: int = 24
    fine_samples: int = 24
    mask_weight: float = 1.0
    huber_delta: float = 0.1
    code_reg: float = 1e-3
    white_balance: float = 0.35
    """largest log-gain of one channel over the mean of the three (a factor 2 between two channels)"""
    colour_reg: float = 0.005
    """pull of the colour gains towards one (a gain, not an offset: an offset would let any colour
    pass for any other and a wrong asset explain the photo)"""
    seed: int = 0


@dataclass
class PhotoFit:
    shape_code: torch.Tensor  # (ds,) the refined codes
    texture_code: torch.Tensor  # (dt,)
    c2w: np.ndarray  # (4, 4) the fitted camera (OpenGL convention)
    K: np.ndarray  # (3, 3) its intrinsics in the crop's pixels
    gain: np.ndarray  # (3,) per-channel colour gain applied to the render
    row: int  # the training code that explained the photo best (camera and colour fitted, code fixed)
    runner_up: int | None  # the best other training code
    loss: float  # the winner's loss with its code fixed
    runner_up_loss: float | None
    joint_loss: float  # the winner's loss once its codes were free too (same pixels)
    psnr: float  # of the final render on the object, colour-corrected
    iou: float  # of the final render's silhouette and the photo's mask
    render: np.ndarray  # (S, S, 4) float: the final render (colour-corrected rgb, coverage)
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def margin(self) -> float:
        """How much worse the runner-up explains the photo: its loss over the winner's, less one."""
        if self.runner_up_loss is None:
            return float("inf")
        return self.runner_up_loss / max(self.loss, 1e-8) - 1.0


class _Cameras(torch.nn.Module):
    """M pinhole cameras, each a start pose refined by a rotation about the origin (where the
    object is), a distance scale, a focal scale and a principal-point shift."""

    def __init__(self, c2w: np.ndarray, intr: np.ndarray, size: int, device: torch.device | str = "cpu"):
        super().__init__()
        M = len(c2w)
        self.size = size
        self.register_buffer("base", torch.as_tensor(np.asarray(c2w, np.float32)))
        self.register_buffer("intr", torch.as_tensor(np.asarray(intr, np.float32)))  # (M, 3): f, cx, cy
        self.rot = torch.nn.Parameter(torch.zeros(M, 3))
        self.log_dist = torch.nn.Parameter(torch.zeros(M))
        self.log_focal = torch.nn.Parameter(torch.zeros(M))
        self.shift = torch.nn.Parameter(torch.zeros(M, 2))  # principal point, in units of the image side
        self.to(device)

    def select(self, rows: torch.Tensor) -> "_Cameras":
        """The cameras `rows`, as they stand now, as new starts."""
        c2w, f, cx, cy = (t.detach()[rows].cpu() for t in self.matrices())
        return _Cameras(c2w.numpy(), torch.stack([f, cx, cy], -1).numpy(), self.size, self.base.device)

    def matrices(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        from pytorch3d.transforms import axis_angle_to_matrix

        R = axis_angle_to_matrix(self.rot)  # (M, 3, 3)
        top = torch.cat([R @ self.base[:, :3, :3], (R @ self.base[:, :3, 3:]) * self.log_dist.exp()[:, None, None]], -1)
        bottom = self.base[:, 3:]
        c2w = torch.cat([top, bottom], 1)
        f = self.intr[:, 0] * self.log_focal.exp()
        return c2w, f, self.intr[:, 1] + self.shift[:, 0] * self.size, self.intr[:, 2] + self.shift[:, 1] * self.size

    def rays(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, P, 3) origins and directions through flat pixel indices (P,)."""
        c2w, f, cx, cy = self.matrices()
        return pixel_directions(c2w, f, cx, cy, pixels, self.size)

    def numpy(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """(c2w (4, 4), K (3, 3)) of camera m."""
        c2w, f, cx, cy = (t.detach()[m].cpu().numpy() for t in self.matrices())
        return c2w.astype(np.float32), np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], np.float32)


class _Target:
    def __init__(self, photo: PreparedPhoto, device: torch.device | str = "cpu"):
        import cv2

        rgb, mask = image_to_rgb_mask(photo.image, "photo")
        self.size = photo.image.shape[0]
        self.rgb = torch.as_tensor(rgb).reshape(-1, 3).to(device)
        self.mask = torch.as_tensor(mask).reshape(-1).to(device)
        # Colours are read one pixel inside the silhouette: a border pixel mixes the object with the
        # background (and a segmentation's border is where it errs), so its colour is neither's.
        core = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8))
        self.core = torch.as_tensor(core.reshape(-1) > 0).to(device) if core.any() else self.mask > 0.5
        self.fg = torch.nonzero(self.core).squeeze(1)
        self.bg = torch.nonzero(self.mask <= 0.5).squeeze(1)
        if len(self.fg) == 0:
            raise ValueError("photo: the prepared crop holds no object pixels")

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """Half on the object (its colours), half anywhere (its silhouette against the background)."""
        n_fg = n // 2
        fg = self.fg[torch.randint(len(self.fg), (n_fg,), generator=gen)]
        anywhere = torch.randint(self.size * self.size, (n - n_fg,), generator=gen)  # the CPU generator: same draws anywhere
        return torch.cat([fg, anywhere.to(fg.device)])


def _render_crops(model, origins, directions, shape, texture, num_samples: int, num_fine: int):
    """rgb (M, P, 3) and coverage (M, P) of codes (M, d) along rays (M, P, 3)."""
    M, P, _ = origins.shape
    bundle = RayBundle(origins=origins.reshape(-1, 3), directions=directions.reshape(-1, 3),
                       pixel_area=torch.ones(M * P, 1, device=origins.device),
                       metadata={"shape_code": shape.repeat_interleave(P, 0), "texture_code": texture.repeat_interleave(P, 0)})
    out = model.render_uniform(bundle, num_samples, num_fine)
    return out["rgb"].view(M, P, 3), out["accumulation"].view(M, P)


def _colour_gain(log_exposure: torch.Tensor, log_balance: torch.Tensor, limit: float) -> torch.Tensor:
    """(M, 3) per-channel gains: an exposure (M, 1), free, times a white balance (M, 3) whose channels
    differ by at most a factor exp(2 * limit): a photo's light may be warm or cool, but a gain free per
    channel would let a beige asset pass for a grey one."""
    balance = log_balance - log_balance.mean(-1, keepdim=True)
    return (log_exposure + limit * torch.tanh(balance / limit)).exp()


def _split_gain(gain: torch.Tensor, limit: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(log exposure (M, 1), raw log white balance (M, 3)) whose `_colour_gain` is nearest to `gain` (M, 3)."""
    log = gain.log()
    exposure = log.mean(-1, keepdim=True)
    balance = (log - exposure).clamp(-0.999 * limit, 0.999 * limit)
    return exposure, limit * torch.atanh(balance / limit)


def _closed_form_gain(rgb: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(M, 3) per-channel gains that best map rendered colours (M, P, 3) to the target's (P, 3) on pixels
    weighted by `weight` (P,) or (M, P); one where a candidate has no weighted pixel."""
    w = weight[..., None] if weight.dim() == 2 else weight[None, :, None]
    num, den = (rgb * target[None] * w).sum(1), (rgb * rgb * w).sum(1)
    return torch.where(den > 1e-6, num / den.clamp(min=1e-6), torch.ones_like(num)).clamp(0.25, 4.0)


class _Loss:
    def __init__(self, model, target: _Target, config: PhotoFitConfig):
        self.model, self.t, self.c = model, target, config

    def __call__(self, cams: _Cameras, shape, texture, gain, pixels, fine: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-camera data losses (M,) and colour errors (M,) on `pixels`."""
        o, d = cams.rays(pixels)
        rgb, acc = _render_crops(self.model, o, d, shape, texture, self.c.num_samples, fine)
        pred = rgb * gain[:, None]
        on = self.t.core[pixels].float()  # (P,) the photo's object, inside its border
        err = F.huber_loss(pred, self.t.rgb[pixels].expand_as(pred), reduction="none", delta=self.c.huber_delta).sum(-1)
        colour = (err * on).sum(1) / on.sum().clamp(min=1)
        cover = ((acc - self.t.mask[pixels]) ** 2).mean(1)
        mse = (((pred - self.t.rgb[pixels]) ** 2).mean(-1) * on).sum(1) / on.sum().clamp(min=1)
        return colour + self.c.mask_weight * cover, mse.detach()


def fit_photo(model, photo: PreparedPhoto, bank, config: PhotoFitConfig = PhotoFitConfig(),
              codes: torch.Tensor | None = None) -> PhotoFit:
    """Fit the run's codes, a camera and a colour transform to a prepared photo (see the module doc).
    `bank`: a framed `CodeBank` of the run's codes at the photo's size. `codes`: the code rows to
    compare (e.g. the photo encoder's proposals); all of them without."""
    t0 = time.time()
    if bank.framing is None:
        raise ValueError("photo search needs a framed inversion bank (CodeBank.for_run(..., fill=FILL))")
    target = _Target(photo, model_device(model))
    if bank.size != target.size:
        raise ValueError(f"the bank was built for {bank.size} px crops, the photo was prepared at {target.size} px")
    model.eval()
    with frozen(model):
        return _fit(model, target, bank, config, t0, codes)


def _fit(model, target: _Target, bank, config: PhotoFitConfig, t0: float, codes=None) -> PhotoFit:
    gen = torch.Generator().manual_seed(config.seed)
    loss_fn = _Loss(model, target, config)
    table_s, table_t = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
    # 1. the bank's best (pose, code) pairs, each pose framed for its code
    pose_rows, code_rows, _ = bank.search(target.rgb, target.mask, config.bank_codes, config.mask_weight, colour_gain=True,
                                          per_code=config.bank_poses, codes=codes)
    cams = _Cameras(bank.poses[pose_rows.numpy()], bank.framing[pose_rows.numpy(), code_rows.numpy()], target.size,
                    model_device(model))
    # 2. successive halving with closed-form gains; 3. camera and colour with the codes fixed
    cams, rows, start_gain = _halving(model, target, cams, code_rows, table_s, table_t, config, gen)
    gains, scores, eval_idx = _fit_cameras(loss_fn, cams, table_s[rows], table_t[rows], start_gain, config, gen)
    order = torch.argsort(scores)
    best = int(order[0])
    others = [int(m) for m in order[1:] if int(rows[m]) != int(rows[best])]
    runner = others[0] if others else None
    # 4. joint refinement of the winner. The gain stays as the catalog asset's fit found it: with the
    # texture code free the two would trade colour between them, and the gain is the photo's colour
    # cast relative to the catalog's colours.
    cam = cams.select(torch.tensor([best]))
    lg = gains[best:best + 1].log()
    shape, texture, losses = _joint(loss_fn, cam, table_s[rows[best]], table_t[rows[best]], lg.exp(),
                                    (table_s.mean(0), table_t.mean(0)), config, gen)
    # 5. the final render over the whole crop: silhouette IoU, colour PSNR on the object, the overlay
    joint, render, psnr, iou = _final(loss_fn, target, cam, shape, texture, lg.exp(), eval_idx, config)
    c2w, K = cam.numpy(0)
    return PhotoFit(
        shape_code=shape[0], texture_code=texture[0], c2w=c2w, K=K, gain=lg.detach()[0].exp().cpu().numpy(),
        row=int(rows[best]), runner_up=None if runner is None else int(rows[runner]),
        loss=float(scores[best]), runner_up_loss=None if runner is None else float(scores[runner]),
        joint_loss=float(joint[0]), psnr=psnr, iou=iou, render=render, seconds=time.time() - t0, losses=losses,
    )


def _halving(model, target: _Target, cams: _Cameras, rows, table_s, table_t, config: PhotoFitConfig, gen):
    """(cameras, code rows, colour gains) of the starts that survive successive halving: each round
    scores every start on more pixels, its colour gain in closed form, and keeps the best."""
    with torch.no_grad():
        for pixels, keep in config.halving:
            idx = target.sample(pixels, gen)
            o, d = cams.rays(idx)
            on = target.core[idx].float()
            losses, gains = [], []
            for part in torch.arange(len(rows)).split(16):
                rgb, acc = _render_crops(model, o[part], d[part], table_s[rows[part]], table_t[rows[part]], config.num_samples, 0)
                # the gain is read where both show the object: elsewhere the render is its white background
                gain = _colour_gain(*_split_gain(_closed_form_gain(rgb, target.rgb[idx], on * (acc > 0.9).float()),
                                                 config.white_balance), config.white_balance)
                gains.append(gain)
                err = F.huber_loss(rgb * gain[:, None], target.rgb[idx].expand_as(rgb), reduction="none",
                                   delta=config.huber_delta).sum(-1)
                losses.append((err * on).sum(1) / on.sum().clamp(min=1) + config.mask_weight * ((acc - target.mask[idx]) ** 2).mean(1))
            ranked = torch.argsort(torch.cat(losses)).cpu()  # indexes the CPU code rows
            order = ranked[:keep]
            other = ranked[rows[ranked] != rows[order[0]]]
            if len(other) and not (rows[order] != rows[order[0]]).any():
                order = torch.cat([order[:-1] if keep > 1 else order, other[:1]])  # keep a runner-up asset to compare with
            cams, rows, start_gain = cams.select(order), rows[order], torch.cat(gains)[order]
    return cams, rows, start_gain


def _fit_cameras(loss_fn: _Loss, cams: _Cameras, s_fixed, t_fixed, start_gain, config: PhotoFitConfig, gen):
    """(gains, scores, scoring pixels): every camera and colour gain refined with its codes fixed (from
    the closed-form gain, so the steps go to the camera), then scored on the same pixels."""
    exposure, balance = (t.clone().requires_grad_(True) for t in _split_gain(start_gain, config.white_balance))
    opt = torch.optim.Adam([*cams.parameters(), exposure, balance], lr=config.camera_lr)
    for i in range(config.camera_steps):
        for g in opt.param_groups:
            g["lr"] = config.camera_lr * (0.1 ** (i / config.camera_steps))
        gain = _colour_gain(exposure, balance, config.white_balance)
        data, _ = loss_fn(cams, s_fixed, t_fixed, gain, loss_fn.t.sample(config.camera_rays, gen), 0)
        reg = config.colour_reg * gain.log().square().sum(-1)
        opt.zero_grad()
        (data + reg).sum().backward()
        _drop_nonfinite_grads(opt)
        opt.step()
    eval_idx = loss_fn.t.sample(1024, gen)  # the pixels every fixed-code and the joint fit are scored on
    with torch.no_grad():
        gains = _colour_gain(exposure, balance, config.white_balance)
        scores, _ = loss_fn(cams, s_fixed, t_fixed, gains, eval_idx, config.fine_samples)
    return gains, scores, eval_idx


def _joint(loss_fn: _Loss, cam: _Cameras, shape0, texture0, gain, means, config: PhotoFitConfig, gen):
    """(shape (1, ds), texture (1, dt), losses): the winner's camera and codes refined together."""
    mean_s, mean_t = means
    shape = shape0[None].clone().requires_grad_(True)
    texture = texture0[None].clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [*cam.parameters()], "lr": config.camera_lr * 0.3},
                            {"params": [shape, texture], "lr": config.code_lr}])
    base_lrs = [g["lr"] for g in opt.param_groups]
    losses = []
    for i in range(config.joint_steps):
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * (0.1 ** (i / config.joint_steps))
        data, _ = loss_fn(cam, shape, texture, gain, loss_fn.t.sample(config.joint_rays, gen), config.fine_samples)
        reg = config.code_reg * ((shape - mean_s).square().sum() + (texture - mean_t).square().sum())
        opt.zero_grad()
        (data.sum() + reg).backward()
        _drop_nonfinite_grads(opt)
        opt.step()
        losses.append(float(data.detach()))
    return shape.detach(), texture.detach(), losses


def _drop_nonfinite_grads(opt: torch.optim.Optimizer) -> None:
    """Zero the gradient entries that are NaN or infinite. A gradient through the renderer can come out
    non-finite at some camera while the loss itself is finite; one Adam step on it makes the camera
    and codes NaN for good, and the search then fails on a photo it had all but fitted. A zeroed
    entry leaves that parameter to its momentum for one step, as a skipped step would."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def _final(loss_fn: _Loss, target: _Target, cam: _Cameras, shape, texture, gain, eval_idx, config: PhotoFitConfig):
    """(joint loss, render (S, S, 4), colour PSNR on the object, silhouette IoU) of the refined fit."""
    with torch.no_grad():
        joint, _ = loss_fn(cam, shape, texture, gain, eval_idx, config.fine_samples)
        rgbs, accs = [], []
        for part in torch.arange(target.size * target.size).split(4096):
            o, d = cam.rays(part)
            rgb, acc = _render_crops(loss_fn.model, o, d, shape, texture, config.num_samples, config.fine_samples)
            rgbs.append((rgb * gain[:, None]).clamp(0, 1)[0])
            accs.append(acc[0])
        rgb, acc = torch.cat(rgbs), torch.cat(accs)
        on = target.mask > 0.5
        mse = ((rgb[target.core] - target.rgb[target.core]) ** 2).mean().clamp(min=1e-10)
        iou = ((acc > 0.5) & on).sum() / ((acc > 0.5) | on).sum().clamp(min=1)
    S = target.size
    render = torch.cat([rgb, acc[:, None]], -1).view(S, S, 4).cpu().numpy()
    return joint, render, float(-10 * torch.log10(mse)), float(iou)


@dataclass(frozen=True)
class MatchRule:
    """When a search by photo names a catalog asset, and when the answer is "no asset in the catalog matches".

    The catalog asset that won, with its code fixed, must explain the photo: its loss (colour Huber
    plus silhouette error, after the camera and colour fit) at most `max_loss`, and the final
    silhouette IoU at least `min_iou`; with a photo encoder, the encoder's probability of the asset
    at least `min_probability` and the photo's familiarity (`TrainedEncoder.familiarity`: how close
    it lies to the asset's own training views) at least `min_familiarity` too. Thresholds are chosen
    by `benchmarks/photo_search.py --choose-rule` (the most photos of assets not in the catalog
    flagged while at most 5 % of those in it are), never on the benchmark's test photos: `MatchRule()`
    on photos from our own renderer (a run without an encoder), `ENCODER_RULE` on the development
    photos from Blender (seed 0)."""

    # Fit losses of assets in and out of the catalog overlap on photos, so without an encoder this rule flags little.
    max_loss: float = 0.103
    min_iou: float = 0.0
    min_probability: float = 0.0
    min_familiarity: float = -1.0
    """a cosine: -1 lets everything through"""

    def __call__(self, fit: PhotoFit, probability: float | None = None, familiarity: float | None = None) -> bool:
        ok = fit.loss <= self.max_loss and fit.iou >= self.min_iou
        ok = ok and (probability is None or probability >= self.min_probability)
        # an encoder saved before it kept its training views has no familiarity: the other terms decide
        return ok and (familiarity is None or familiarity >= self.min_familiarity)

    def describe(self) -> str:
        out = f"a match needs a fit loss of at most {self.max_loss:g}"
        out += f" and a silhouette IoU of at least {self.min_iou:g}" if self.min_iou > 0 else ""
        out += f" and the encoder's probability at least {self.min_probability:g}" if self.min_probability > 0 else ""
        return out + (f" and a familiarity of at least {self.min_familiarity:g}" if self.min_familiarity > -1 else "")

    def to_json(self) -> dict:
        return {"max_loss": self.max_loss, "min_iou": self.min_iou, "min_probability": self.min_probability,
                "min_familiarity": self.min_familiarity}


# Chosen on the development photos from Blender (seed 0; BENCHMARKS.md) with the default encoder and
# segmenter, by `photo_search.py`'s rule search over the fit's terms, the encoder's probability and the
# familiarity (`benchmarks/photo_rescore.py`: searched photos of catalog assets and of our generator's
# other assets, plus never-fitted photos of meshes made by others). Only the familiarity decides: the
# loss bound is the largest loss seen and the search dropped the probability and IoU terms.
# Re-choose it when the encoder's or the segmenter's recipe changes.
ENCODER_RULE = MatchRule(max_loss=0.61486, min_iou=0.0, min_probability=0.0, min_familiarity=0.79443)
"""the match rule of a run with a photo encoder (see `MatchRule`)"""
# The rule chosen the same way before searches reported the familiarity: for an encoder saved before it
# kept its training views, which has none to report.
ENCODER_RULE_NO_FAMILIARITY = MatchRule(max_loss=0.61486, min_iou=0.36283, min_probability=0.20914)
