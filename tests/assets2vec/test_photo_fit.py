"""The photo fit on a field whose truth is known: a few boxes of known proportions and colours, rendered
by the same volume rendering the NeRF uses. A photo of one of them from a camera off the bank's poses,
with another lens, an exposure and white-balance change and a coloured background, must give back the
box, the camera and the colour change."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from assets2vec.code_bank import CodeBank, pixel_directions
from assets2vec.photo import FILL, prepare_photo
from assets2vec.photo_fit import MatchRule, PhotoFitConfig, fit_photo, photo_poses
from render_core.rig import RigConfig, camera_to_world, intrinsics, look_at_rt

SIZE = 48
DIST, FOV = 2.6, 40.0
# (half extents) and (colour of the -x.. +x gradient) per box: different proportions and colours
EXTENTS = [(0.45, 0.2, 0.12), (0.15, 0.45, 0.15), (0.3, 0.3, 0.1), (0.2, 0.12, 0.45), (0.4, 0.4, 0.35), (0.12, 0.12, 0.12)]
COLOURS = [(0.8, 0.2, 0.2), (0.2, 0.7, 0.3), (0.3, 0.3, 0.8), (0.8, 0.7, 0.2), (0.6, 0.6, 0.6), (0.2, 0.6, 0.7)]


class Boxes(torch.nn.Module):
    """A stand-in for `LatentNeRFModel` with the interface the photo fit uses: code tables, densities
    and `render_uniform`. Shape code = a box's half extents; texture code = its colour. The colour
    varies along x and y, so the box's orientation is visible, and the density edge is smooth, so the
    render is differentiable in the camera."""

    def __init__(self):
        super().__init__()
        self.codes = SimpleNamespace(shape=torch.nn.Embedding.from_pretrained(torch.tensor(EXTENTS)),
                                     texture=torch.nn.Embedding.from_pretrained(torch.tensor(COLOURS)))
        self.grid_sampler = SimpleNamespace(half_size=0.5)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def density_at(self, positions, shape_code):
        outside = (positions.abs() - shape_code).amax(-1, keepdim=True)  # > 0 outside the box
        return 200.0 * torch.sigmoid(-outside / 0.01)

    def render_uniform(self, bundle, num_samples: int, num_fine: int = 0):
        o, d = bundle.origins, bundle.directions
        n = num_samples + num_fine
        t = torch.linspace(-0.9, 0.9, n)[None] + o.norm(dim=-1, keepdim=True)  # (N, n) through the origin's sphere
        pts = o[:, None] + d[:, None] * t[..., None]
        s, c = bundle.metadata["shape_code"], bundle.metadata["texture_code"]
        sigma = self.density_at(pts, s[:, None].expand_as(pts))[..., 0]
        delta = 1.8 / n
        alpha = 1 - torch.exp(-sigma * delta)
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10], 1), 1)
        w = alpha * trans
        shade = 0.75 + 0.25 * torch.stack([pts[..., 0], pts[..., 1], -pts[..., 0]], -1) / 0.5
        rgb = (c[:, None] * shade).clamp(0, 1)
        acc = w.sum(1, keepdim=True)
        return {"rgb": (w[..., None] * rgb).sum(1) + (1 - acc), "accumulation": acc}


def photo_of(model, row, azimuth, elevation, fov, distance, gain, size=128, background=(70, 110, 160)):
    """(size, size, 3) uint8 of box `row` from a camera off the bank, colours scaled by `gain`, on a coloured wall."""
    R, T = look_at_rt(np.float32([elevation]), np.float32([azimuth]), distance)
    c2w = camera_to_world(R, T)
    K = intrinsics(fov, size)
    o, d = pixel_directions(c2w, torch.tensor([float(K[0, 0])]), torch.tensor([size / 2.0]), torch.tensor([size / 2.0]),
                            torch.arange(size * size), size)
    from nerfstudio.cameras.rays import RayBundle

    n = size * size
    bundle = RayBundle(origins=o[0], directions=d[0], pixel_area=torch.ones(n, 1),
                       metadata={"shape_code": model.codes.shape.weight[[row]].expand(n, 3),
                                 "texture_code": model.codes.texture.weight[[row]].expand(n, 3)})
    with torch.no_grad():
        out = model.render_uniform(bundle, 96)
    acc = out["accumulation"].view(size, size, 1).numpy()
    obj = (out["rgb"].view(size, size, 3).numpy() - (1 - acc)) / np.clip(acc, 1e-6, None)
    obj = np.clip(obj * np.asarray(gain), 0, 1)
    # A photo's edge is crisp: the field's soft edge (smooth so that it has camera gradients) is
    # sharpened around its half-opacity level before the object is laid on the wall.
    edge = np.clip((acc - 0.5) * 4 + 0.5, 0, 1)
    img = obj * edge + np.asarray(background) / 255.0 * (1 - edge)
    return (img * 255 + 0.5).astype(np.uint8), c2w[0].numpy()


@pytest.fixture(scope="module")
def boxes():
    model = Boxes()
    bank = CodeBank.build(model, photo_poses(RigConfig(distance=DIST, fov_deg=FOV, floor_views=0)), intrinsics(FOV, SIZE), SIZE, grid=10, num_samples=48, progress=False,
                          fill=FILL)
    return model, bank


def test_bank_framing_centres_each_code(boxes):
    """Each (pose, code) render of a framed bank has its object centred, spanning about FILL of the grid."""
    model, bank = boxes
    assert bank.framing.shape == (len(bank.poses), len(EXTENTS), 3)
    cover = bank.renders[..., 3].float().view(len(bank.poses), len(EXTENTS), 10, 10)
    rows = (cover > 0.5).any(-1).float().sum(-1)  # grid rows the object touches
    cols = (cover > 0.5).any(-2).float().sum(-1)
    longer = torch.maximum(rows, cols)
    assert longer.min() >= 4 and longer.max() <= 8  # FILL of 10 cells, give or take the grid's coarseness


@pytest.mark.parametrize("row", [0, 3])
def test_photo_off_the_bank_gives_back_the_box_camera_and_colour(boxes, row):
    model, bank = boxes
    gain = (1.25, 1.0, 0.8)  # warmer and brighter than the catalog's colours
    img, c2w = photo_of(model, row, azimuth=47.0, elevation=18.0, fov=30.0, distance=3.2, gain=gain)
    photo = prepare_photo(img, SIZE)
    fit = fit_photo(model, photo, bank, PhotoFitConfig(seed=0))
    assert fit.row == row
    assert fit.runner_up is not None and fit.runner_up != row and fit.margin > 0
    # The camera: the box's corners land where the true camera puts them (the bank's nearest pose is
    # 15-20 degrees off, with another lens).
    from render_core.rig import project

    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * np.asarray(EXTENTS[row])
    true_uv, _ = project(corners, c2w, intrinsics(30.0, 128))
    fit_uv, _ = project(corners, fit.c2w, photo.framing.intrinsics_in_photo(fit.K))
    nearest = int(np.argmax([p[:3, 3] @ c2w[:3, 3] for p in bank.poses]))
    start_uv, _ = project(corners, bank.poses[nearest], photo.framing.intrinsics_in_photo(bank.intrinsics_of(nearest, row, np.eye(3))))
    error, start_error = (np.linalg.norm(uv - true_uv, axis=1).mean() for uv in (fit_uv, start_uv))
    # (the box's hidden back corners are not seen, so they are only loosely pinned down)
    assert error < 0.04 * 128 and error < start_error
    np.testing.assert_allclose(fit.gain, gain, rtol=0.12)  # the dim channels (a red box's blue) are read from little light
    assert fit.iou > 0.85 and MatchRule()(fit)
    # Each term of the rule can refuse the fit alone; a familiarity of None (an older encoder) does not decide.
    rule = MatchRule(max_loss=fit.loss, min_iou=fit.iou, min_probability=0.5, min_familiarity=0.6)
    assert rule(fit, 0.5, 0.6) and rule(fit, 0.5, None) and rule(fit, None, None)
    assert not rule(fit, 0.49, 0.6) and not rule(fit, 0.5, 0.59)
    assert "familiarity of at least 0.6" in rule.describe() and "familiarity" not in MatchRule().describe()
    assert "IoU" in rule.describe() and "IoU" not in MatchRule(min_iou=0.0).describe()  # a term that cannot refuse is not stated
    assert MatchRule(**rule.to_json()) == rule


def test_fitted_camera_reprojects_onto_the_photo(boxes):
    """The fitted camera, mapped back through the crop, puts the box where the photo shows it."""
    from render_core.rig import project

    model, bank = boxes
    img, _ = photo_of(model, 0, azimuth=200.0, elevation=30.0, fov=50.0, distance=2.2, gain=(1, 1, 1), size=160)
    photo = prepare_photo(img, SIZE)
    fit = fit_photo(model, photo, bank, PhotoFitConfig(seed=0))
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * np.asarray(EXTENTS[0])
    uv, _ = project(corners, fit.c2w, photo.framing.intrinsics_in_photo(fit.K))
    x0, y0, x1, y1 = photo.box
    assert abs(uv[:, 0].min() - x0) < 8 and abs(uv[:, 0].max() - x1) < 8
    assert abs(uv[:, 1].min() - y0) < 8 and abs(uv[:, 1].max() - y1) < 8


def test_a_rig_bank_is_refused(boxes):
    model, bank = boxes
    plain = CodeBank(bank.poses, bank.size, bank.grid, bank.renders.numpy(), "plain")
    img, _ = photo_of(model, 1, 10.0, 20.0, 40.0, 2.6, (1, 1, 1))
    with pytest.raises(ValueError, match="framed"):
        fit_photo(model, prepare_photo(img, SIZE), plain)


def test_a_nonfinite_gradient_does_not_poison_the_fit():
    """A gradient through the renderer that is NaN at one step (the loss itself finite) must not turn
    the camera and codes into NaN: the search would then fail on a photo it had all but fitted."""
    from assets2vec.photo_fit import _joint

    class Camera(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.offset = torch.nn.Parameter(torch.tensor([0.5, -0.5]))

    class Loss:
        t = SimpleNamespace(sample=lambda n, gen: torch.arange(n))
        calls = 0

        def __call__(self, cam, shape, texture, gain, idx, fine):
            self.calls += 1
            x = shape.square().sum() + texture.square().sum() + cam.offset.square().sum()
            if self.calls == 3:  # a finite loss whose gradient is not: sqrt at 0
                x = x + torch.sqrt(cam.offset[0] * 0)
            return x.reshape(1), None

    cam = Camera()
    config = PhotoFitConfig(joint_steps=6)
    shape, texture, losses = _joint(Loss(), cam, torch.ones(4), torch.ones(3), torch.ones(1, 3),
                                    (torch.zeros(4), torch.zeros(3)), config, torch.Generator().manual_seed(0))
    assert all(np.isfinite(losses)) and torch.isfinite(shape).all() and torch.isfinite(texture).all()
    assert torch.isfinite(cam.offset).all() and losses[-1] < losses[0]
