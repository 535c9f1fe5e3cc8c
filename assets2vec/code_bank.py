"""CodeBank: every training code rendered from every candidate pose on a coarse pixel grid.

A camera-unknown inversion has to find a pose and a code at once. Gradient steps from the
mean code find both slowly and often settle on a blob at a wrong pose. The bank answers the
discrete part by lookup instead: the image's grid pixels are compared with the renders of all
(pose, code) pairs (a few milliseconds), and the best pairs become the inversion's starts.
Built once per trained run and rig (a progress bar; about 0.15 s per code on this 2-core CPU
at an 8x8 grid and 18 poses) and saved beside the run, keyed by a fingerprint of the network,
codes, poses and grid, so a retrained or grown run never reads a stale bank.

Memory is codes x poses x grid pixels x 4 float16 (9 KB per code at 18 poses and 8x8):
fine to about 10^5 codes; above `MAX_CODES` the inversion goes without it.

A framed bank (`fill` given) is what photos are searched with. A photo's object is cropped so
its box's longer side fills `fill` of the image (`assets2vec.photo`), whatever the lens and
distance it was taken with; so each (pose, code) is rendered with its own intrinsics that frame
that code's decoded object the same way (from the cells its density occupies, projected). The
lookup then compares like with like, and the stored intrinsics are the start of the camera fit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from nerfstudio.cameras.rays import RayBundle
from tqdm.auto import tqdm

from assets2vec.data.rays import camera_rays

MAX_CODES = 100_000
FORMAT = 1
FRAME_RESOLUTION = 24  # density grid whose occupied cells frame a code's object (a 1/24 box cell is under a pixel at 64 px)
FRAME_OPACITY = 0.5


def grid_pixels(size: int, grid: int) -> np.ndarray:
    """(grid*grid,) flat indices of the centres of a grid x grid tiling of a size x size image."""
    if not 1 <= grid <= size:
        raise ValueError(f"bank grid {grid} must be between 1 and the image size {size}")
    c = (np.arange(grid) * size) // grid + size // (2 * grid)
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return (ys * size + xs).reshape(-1)


def fingerprint(model, poses: np.ndarray, intrinsics: np.ndarray, size: int, grid: int, num_samples: int,
                fill: float | None = None) -> str:
    """Hash of everything a bank's renders depend on."""
    framed = "" if fill is None else f" framed {fill:.4f} {FRAME_RESOLUTION} {FRAME_OPACITY}"
    h = hashlib.sha256(f"v{FORMAT} {size} {grid} {num_samples}{framed}".encode())
    for a in (poses, intrinsics):
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    for name, t in sorted(model.state_dict().items()):
        if torch.is_tensor(t) and t.is_floating_point():
            h.update(name.encode())
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class CodeBank:
    """Renders (K poses, N codes, G grid pixels, rgb + coverage) of a run's training codes."""

    def __init__(self, poses: np.ndarray, size: int, grid: int, renders: np.ndarray, key: str,
                 framing: np.ndarray | None = None):
        self.poses = np.asarray(poses, np.float32)  # (K, 4, 4)
        self.size, self.grid, self.key = int(size), int(grid), key
        self.pixels = torch.as_tensor(grid_pixels(self.size, self.grid))
        self.renders = torch.as_tensor(np.asarray(renders, np.float16))  # (K, N, G, 4)
        # framed banks: (K, N, 3) focal length and principal point (f, cx, cy) in pixels per (pose, code)
        self.framing = None if framing is None else np.asarray(framing, np.float32)
        K, N, G, C = self.renders.shape
        if K != len(self.poses) or G != len(self.pixels) or C != 4:
            raise ValueError(f"bank renders of shape {tuple(self.renders.shape)} do not match {len(self.poses)} poses "
                             f"and a {grid}x{grid} grid")
        if self.framing is not None and self.framing.shape != (K, N, 3):
            raise ValueError(f"bank framing of shape {self.framing.shape} does not match {K} poses x {N} codes")

    def intrinsics_of(self, pose: int, code: int, default: np.ndarray) -> np.ndarray:
        """Pinhole K (3, 3) the bank rendered (pose, code) with: its framing, or `default` for a rig bank."""
        if self.framing is None:
            return np.asarray(default, np.float32)
        f, cx, cy = self.framing[pose, code]
        return np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], np.float32)

    @property
    def n_codes(self) -> int:
        return self.renders.shape[1]

    @classmethod
    @torch.no_grad()
    def build(cls, model, poses: np.ndarray, intrinsics: np.ndarray, size: int, grid: int = 8, num_samples: int = 24,
              progress: bool = True, rays_per_batch: int | None = None, key: str | None = None,
              fill: float | None = None) -> "CodeBank":
        """Render every training code of `model` from each of `poses` (K, 4, 4) on the grid pixels;
        with `fill`, each (pose, code) framed so its object's box spans `fill` of the image."""
        shape, texture = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
        N = len(shape)
        if N > MAX_CODES:
            raise ValueError(f"a bank of {N} codes would need {N * len(poses) * grid * grid * 8 / 1e9:.1f} GB; "
                             f"the limit is {MAX_CODES} codes")
        poses = np.asarray(poses, np.float32).reshape(-1, 4, 4)
        pixels = torch.as_tensor(grid_pixels(size, grid))
        G, K = len(pixels), len(poses)
        rays = camera_rays(poses, np.asarray(intrinsics, np.float32), size)
        dev = shape.device  # the model's: rays go to it, renders come back to the CPU
        origins = rays.origins.reshape(K, -1, 3)[:, pixels].to(dev)
        directions = rays.directions.reshape(K, -1, 3)[:, pixels].to(dev)
        renders = torch.empty(K, N, G, 4, dtype=torch.float16)
        if rays_per_batch is None:  # a GPU call needs many rays to be worth its launch; the CPU's size is its cache's
            rays_per_batch = 16384 if dev.type == "cpu" else 1 << 18
        per = max(1, rays_per_batch // G)  # codes per batch
        was_training = model.training
        model.eval()
        framing = None
        if fill is not None:
            framing = frame_codes(model, shape, poses, np.asarray(intrinsics, np.float32), size, fill, progress)
        bar = tqdm(total=K * N, desc="inversion bank", unit="render", disable=not progress, mininterval=1.0)
        for k in range(K):
            for c in range(0, N, per):
                n = min(per, N - c)
                if framing is None:
                    o, d = origins[k].repeat(n, 1), directions[k].repeat(n, 1)
                else:
                    o, d = (t.to(dev) for t in framed_rays(poses[k], framing[k, c:c + n], size, pixels))
                bundle = RayBundle(origins=o, directions=d,
                                   pixel_area=torch.ones(n * G, 1, device=origins.device),
                                   metadata={"shape_code": shape[c:c + n].repeat_interleave(G, 0),
                                             "texture_code": texture[c:c + n].repeat_interleave(G, 0)})
                out = model.render_uniform(bundle, num_samples)
                renders[k, c:c + n, :, :3] = out["rgb"].view(n, G, 3).half().cpu()
                renders[k, c:c + n, :, 3] = out["accumulation"].view(n, G).half().cpu()
                bar.update(n)
        bar.close()
        model.train(was_training)
        key = key or fingerprint(model, poses, intrinsics, size, grid, num_samples, fill)
        return cls(poses, size, grid, renders.numpy(), key, framing)

    def search(self, rgb: torch.Tensor, mask: torch.Tensor, k: int, mask_weight: float = 0.5, colour_gain: bool = False,
               per_code: int | None = None, codes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Best `k` (pose row, code row, error) pairs for one image: `rgb` (S*S, 3) and `mask` (S*S,) flattened.

        With `colour_gain`, each pair's colours are first scaled per channel by the gains that fit the
        image best on the object (closed form, clamped to [0.25, 4]): a photo's exposure and white
        balance are a per-channel gain in linear light, and nearly one in sRGB too.
        With `per_code`, the best `k` codes each with their best `per_code` poses (k * per_code pairs,
        the best code first): distinct assets compete, not one asset at its neighbouring poses.
        With `codes` (rows), only those codes are searched (e.g. the photo encoder's proposals)."""
        if len(rgb) != self.size * self.size:
            raise ValueError(f"the bank was built for {self.size}x{self.size} images, got {len(rgb)} pixels")
        # The lookup runs where the renders are (the CPU: it is a few milliseconds); the image may come
        # from the model's device, and the answer goes back as CPU rows.
        ref_rgb, ref_mask = rgb.cpu()[self.pixels].float(), mask.cpu()[self.pixels].float()
        r = self.renders.float()
        col = r[..., :3]
        if colour_gain:
            on = (ref_mask > 0.5).float()[:, None]  # (G, 1): the photo's object pixels
            gain = ((col * ref_rgb * on).sum(-2) / (col * col * on).sum(-2).clamp(min=1e-6)).clamp(0.25, 4.0)
            col = col * gain[..., None, :]
            # Off the object the photo is white: compare the colours where the photo shows the object only.
            err = (((col - ref_rgb) ** 2) * on).sum((-1, -2)) / (3 * on.sum().clamp(min=1))
        else:
            err = ((col - ref_rgb) ** 2).mean((-1, -2))
        err = err + mask_weight * ((r[..., 3] - ref_mask) ** 2).mean(-1)  # (K, N)
        n_codes = self.n_codes
        if codes is not None:
            codes = torch.as_tensor(codes, dtype=torch.long).cpu().unique()
            if len(codes) == 0 or int(codes.min()) < 0 or int(codes.max()) >= self.n_codes:
                raise ValueError(f"codes to search must be rows in [0, {self.n_codes}), got {codes.tolist()}")
            err = err.masked_fill(~torch.isin(torch.arange(self.n_codes), codes), float("inf"))
            n_codes = len(codes)
        if per_code is None:
            err, order = torch.topk(err.flatten(), min(k, err.shape[0] * n_codes), largest=False)
            return order // self.n_codes, order % self.n_codes, err
        best, poses = torch.topk(err, min(per_code, err.shape[0]), dim=0, largest=False)  # (P, N) each
        codes = torch.topk(best[0], min(k, n_codes), largest=False).indices  # (k,)
        return poses[:, codes].T.reshape(-1), codes.repeat_interleave(poses.shape[0]), best[:, codes].T.reshape(-1)

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a temporary file renamed into place): a reader never sees half a bank."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                extra = {} if self.framing is None else {"framing": self.framing}
                np.savez(f, poses=self.poses, size=self.size, grid=self.grid, renders=self.renders.numpy(),
                         key=np.frombuffer(self.key.encode(), np.uint8), format=FORMAT, **extra)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CodeBank":
        """Read a saved bank (plain arrays only: nothing is unpickled)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != FORMAT:
                    raise ValueError(f"format {int(z['format'])}, expected {FORMAT}")
                return cls(z["poses"], int(z["size"]), int(z["grid"]), z["renders"], bytes(z["key"]).decode(),
                           z["framing"] if "framing" in z.files else None)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: not a readable inversion bank ({e})") from e

    @classmethod
    def for_run(cls, run: str | os.PathLike, model, poses: np.ndarray, intrinsics: np.ndarray, size: int,
                grid: int = 8, num_samples: int = 24, progress: bool = True, fill: float | None = None) -> "CodeBank":
        """The run's bank for these poses and grid: read from `RUN/inversion_bank/` when its fingerprint
        matches, else built and saved there (kept in memory only when the run folder is read-only)."""
        key = fingerprint(model, poses, intrinsics, size, grid, num_samples, fill)
        path = Path(run) / "inversion_bank" / f"{key[:20]}.npz"
        try:
            saved = cls.load(path) if path.exists() else None
        except ValueError as e:
            warnings.warn(f"{e}; rebuilding it")
            saved = None
        if saved is not None and saved.key == key:
            return saved
        bank = cls.build(model, poses, intrinsics, size, grid, num_samples, progress, key=key, fill=fill)
        try:
            bank.save(path)
        except OSError as e:
            warnings.warn(f"{path}: could not save the inversion bank ({e}); it is kept in memory only")
        return bank


def run_bank(run: str | os.PathLike, model, rig, size: int, progress: bool = True) -> CodeBank | None:
    """The bank a camera-unknown inversion against `run` should use: its training codes seen from
    `rig`'s poses at `size` px (read from the run folder or built there), or None above `MAX_CODES`."""
    from render_core.poses import rig_poses
    from render_core.rig import intrinsics

    if model.codes.shape.weight.shape[0] > MAX_CODES:
        return None
    return CodeBank.for_run(run, model, rig_poses(rig), intrinsics(rig.fov_deg, size), size, progress=progress)



@torch.no_grad()
def frame_codes(model, shape_codes: torch.Tensor, poses: np.ndarray, K: np.ndarray, size: int, fill: float,
                progress: bool = False) -> np.ndarray:
    """(K, N, 3) intrinsics (f, cx, cy) that frame each code's decoded object from each pose: the box of
    its occupied cells, projected, centred in the image with its longer side spanning `fill` of it."""
    from assets2vec.catalog.geometry import opacity_grid
    from assets2vec.model_components.occupancy import cell_centres

    r, h = FRAME_RESOLUTION, model.grid_sampler.half_size
    pts = cell_centres(r, h, shape_codes.device)
    w2c = np.linalg.inv(np.asarray(poses, np.float64))  # (K, 4, 4)
    out = np.empty((len(poses), len(shape_codes), 3), np.float32)
    for n in tqdm(range(len(shape_codes)), desc="bank framing", unit="code", disable=not progress, mininterval=1.0):
        occ = opacity_grid(model, shape_codes[n], pts, 2 * h / r) >= FRAME_OPACITY
        p = pts[occ].cpu().numpy().astype(np.float64) if occ.any() else np.zeros((1, 3))
        cam = np.einsum("kij,nj->kni", w2c[:, :3, :3], p) + w2c[:, None, :3, 3]  # (K, P, 3) camera space
        z = np.maximum(-cam[..., 2], 1e-3)
        u = K[0, 0] * cam[..., 0] / z + K[0, 2]
        v = -K[1, 1] * cam[..., 1] / z + K[1, 2]
        # A cell is 2h/r wide: pad the box by half a cell's projection so thin parts count whole.
        pad = K[0, 0] * (h / r) / z.min(1)
        lo_u, hi_u, lo_v, hi_v = u.min(1) - pad, u.max(1) + pad, v.min(1) - pad, v.max(1) + pad
        s = fill * size / np.maximum(np.maximum(hi_u - lo_u, hi_v - lo_v), 1e-3)
        out[:, n, 0] = K[0, 0] * s
        out[:, n, 1] = (K[0, 2] - (lo_u + hi_u) / 2) * s + size / 2
        out[:, n, 2] = (K[1, 2] - (lo_v + hi_v) / 2) * s + size / 2
    return out


def pixel_directions(c2w: torch.Tensor, f: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, pixels: torch.Tensor,
                     size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays (origins, unit directions), each (M, P, 3), through flat pixel indices `pixels` (P,) of a
    size x size image, for M pinhole cameras: c2w (M, 4, 4), f, cx, cy (M,); pixel centres at +0.5,
    camera looking along -Z with +Y up, as the datasets store them. Differentiable in every camera input."""
    pixels = pixels.to(c2w.device)
    u = (pixels % size).to(c2w.dtype) + 0.5
    v = torch.div(pixels, size, rounding_mode="floor").to(c2w.dtype) + 0.5
    x = (u[None] - cx[:, None]) / f[:, None]
    y = -(v[None] - cy[:, None]) / f[:, None]
    d = torch.stack([x, y, -torch.ones_like(x)], -1)  # (M, P, 3) camera space
    d = torch.einsum("mij,mpj->mpi", c2w[:, :3, :3], d)
    d = d / d.norm(dim=-1, keepdim=True)
    return c2w[:, None, :3, 3].expand_as(d), d


def framed_rays(pose: np.ndarray, framing: np.ndarray, size: int, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n*G, 3) origins and directions of grid `pixels` (G,) for one pose and n framings (n, 3)."""
    n = len(framing)
    fr = torch.as_tensor(framing, dtype=torch.float32)
    c2w = torch.as_tensor(np.asarray(pose, np.float32))[None].expand(n, 4, 4)
    o, d = pixel_directions(c2w, fr[:, 0], fr[:, 1], fr[:, 2], pixels, size)
    return o.reshape(-1, 3).contiguous(), d.reshape(-1, 3).contiguous()
