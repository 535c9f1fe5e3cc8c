"""Using the vectors: inversion, embedding new assets, rendering from codes."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from assets2vec.checkpoint import load_checkpoint
from assets2vec.cli.main import main
from assets2vec.code_bank import CodeBank
from assets2vec.configs import preset
from assets2vec.invert import InversionConfig, _Target, candidate_poses, invert, nearest_codes
from assets2vec.nerf_render import render_views
from assets2vec.train import fit, load_run
from render_core.dataset import RenderedDataset
from render_core.rig import RigConfig


@pytest.fixture(scope="module")
def trained(small_dataset, tmp_path_factory, tiny_fit):
    return tiny_fit(small_dataset, tmp_path_factory.mktemp("latent") / "run", 150)


def _same_renderer_setup(run, dataset):
    """The trained model rendering targets with 64 uniform samples per ray, as inversion does,
    so the only unknown is the code; with the dataset's rig, its poses and intrinsics."""
    model, _, _ = load_run(run)
    model.config.eval_sampler, model.config.num_fine_samples = "coarse_fine", 0
    model.coarse_sampler.num_samples = 64
    ds = RenderedDataset(dataset)
    rig = ds.config.rig
    return model, ds, rig, candidate_poses(rig), ds.load(ds.asset_ids[0]).intrinsics


def test_inversion_recovers_a_known_code(trained, small_dataset):
    model, ds, rig, poses, K = _same_renderer_setup(trained, small_dataset)
    views = [0, 2, 4]
    for row in (1, 4, 6):
        # Images the model itself renders from a known code: inversion must come back to it.
        target = render_views(model, poses[views], K, ds.image_size, model.codes.shape.weight[row].detach(), model.codes.texture.weight[row].detach())
        images = [(im * 255 + 0.5).astype(np.uint8) for im in target["rgb"]]
        # mask_weight 0: a barely trained tiny model renders fog, which a binary mask target would fight.
        known = invert(model, images, K, poses=poses[views], config=InversionConfig(refine_steps=80, refine_rays=1024, num_samples=64, lr=0.02, mask_weight=0.0,
                                                                                         exemplars=0, fine_samples=0))
        mean_shape, mean_texture = model.codes.mean()
        before = render_views(model, poses[views], K, ds.image_size, mean_shape, mean_texture)["rgb"]
        after = render_views(model, poses[views], K, ds.image_size, known.shape_code, known.texture_code)["rgb"]
        psnr = lambda a: float(-10 * np.log10(np.mean((a - target["rgb"]) ** 2)))  # noqa: E731
        # From the mean code to codes that reproduce the known code's renders.
        assert psnr(after) > psnr(before) + 3.0 and psnr(after) > 25.0, (row, psnr(before), psnr(after))
        assert known.camera_index is None and known.score > 25
    # Unknown camera: the pose search over the rig must find a pose that explains the image.
    target = render_views(model, poses[[3]], K, ds.image_size, model.codes.shape.weight[4].detach(), model.codes.texture.weight[4].detach())
    image = (target["rgb"][0] * 255 + 0.5).astype(np.uint8)
    found = invert(model, [image], K, rig=rig, config=InversionConfig(refine_steps=20, search_rounds=((6, 64, 4), (2, 128, 4))))
    assert found.camera_index is not None and 0 <= found.camera_index < rig.n_views
    assert found.c2w.shape == (4, 4) and np.isfinite(found.score)
    # The network stays frozen and trainable afterwards.
    assert all(p.requires_grad for p in model.parameters())


def test_exemplar_start_identifies_a_catalog_asset(trained, small_dataset):
    """An image of a catalog asset, camera unknown: the training code that renders it best is
    found among the exemplars and the fitted code lands on it; without exemplars, a few steps
    from the mean code leave the fit far worse."""
    # Same renderer for targets and inversion: the asset's own code explains its image exactly,
    # and nothing but the exemplar stage decides.
    model, ds, rig, poses, K = _same_renderer_setup(trained, small_dataset)
    S, T = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
    # mask_weight 0: a barely trained tiny model renders fog, which a binary mask target would fight.
    quick = dict(refine_steps=5, search_rounds=((6, 64, 3), (2, 128, 3)), num_samples=64, fine_samples=0, mask_weight=0.0,
                 exemplar_rounds=((256, 4, 0), (1024, 1, 0)))
    for row, view in ((2, 3), (5, 1)):
        image = (render_views(model, poses[[view]], K, ds.image_size, S[row], T[row])["rgb"][0] * 255 + 0.5).astype(np.uint8)
        found = invert(model, [image], K, rig=rig, config=InversionConfig(**quick))
        _, rows = nearest_codes(model, found.shape_code, found.texture_code, 1)
        assert int(rows[0]) == row
        blind = invert(model, [image], K, rig=rig, config=InversionConfig(exemplars=0, **quick))
        assert found.score > blind.score + 1.0, (row, found.score, blind.score)


def test_bank_start_identifies_a_catalog_asset(trained, small_dataset):
    """The bank lookup finds the (pose, code) pair an image was rendered from, and the inversion
    that starts from the bank lands on that asset."""
    model, ds, rig, poses, K = _same_renderer_setup(trained, small_dataset)
    S, T = model.codes.shape.weight.detach(), model.codes.texture.weight.detach()
    bank = CodeBank.build(model, poses, K, ds.image_size, grid=8, num_samples=64, progress=False)
    assert tuple(bank.renders.shape) == (len(poses), len(S), 64, 4)
    quick = dict(refine_steps=5, num_samples=64, fine_samples=0, mask_weight=0.0, exemplar_rounds=((256, 4, 0), (1024, 1, 0)))
    for row, view in ((2, 3), (5, 1)):
        image = (render_views(model, poses[[view]], K, ds.image_size, S[row], T[row])["rgb"][0] * 255 + 0.5).astype(np.uint8)
        target = _Target([image], poses[:1, None], K)
        pose_rows, code_rows, err = bank.search(target.rgb, target.mask, 5, mask_weight=0.0)
        # The image was rendered from this very pair: it matches up to 8-bit and float16 rounding.
        assert int(code_rows[0]) == row and float(err[0]) < 1e-3 and bool((err[:-1] <= err[1:]).all())
        found = invert(model, [image], K, rig=rig, config=InversionConfig(**quick), bank=bank)
        _, rows = nearest_codes(model, found.shape_code, found.texture_code, 1)
        assert int(rows[0]) == row and found.camera_index is not None
    other = dataclasses.replace(rig, distance=rig.distance * 1.5)
    with pytest.raises(ValueError, match="bank was built for"):
        invert(model, [image], K, rig=other, bank=bank)
    fewer = CodeBank(bank.poses, bank.size, bank.grid, bank.renders[:, :3].numpy(), "other")
    with pytest.raises(ValueError, match="built for another run"):
        invert(model, [image], K, rig=rig, bank=fewer)


def test_bank_is_saved_with_the_run_and_rebuilt_when_stale(trained, small_dataset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    model, ds, rig, poses, K = _same_renderer_setup(run, small_dataset)
    bank = CodeBank.for_run(run, model, poses, K, ds.image_size, progress=False)
    files = list((run / "inversion_bank").glob("*.npz"))
    assert len(files) == 1 and not list((run / "inversion_bank").glob("*.tmp"))
    # Read back, not rebuilt.
    with monkeypatch.context() as m:
        m.setattr(CodeBank, "build", classmethod(lambda *a, **k: pytest.fail("a saved bank was rebuilt")))
        again = CodeBank.for_run(run, model, poses, K, ds.image_size, progress=False)
    assert again.key == bank.key and torch.equal(again.renders, bank.renders)
    # A damaged file is an error naming it when read directly, and is rebuilt when asked for by the run.
    files[0].write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="not a readable inversion bank"):
        CodeBank.load(files[0])
    with pytest.warns(UserWarning, match="not a readable inversion bank"):
        assert torch.equal(CodeBank.for_run(run, model, poses, K, ds.image_size, progress=False).renders, bank.renders)
    # Codes that changed (a grown or retrained run) get their own bank.
    with torch.no_grad():
        model.codes.shape.weight[0] += 0.5
    grown = CodeBank.for_run(run, model, poses, K, ds.image_size, progress=False)
    assert grown.key != bank.key and not torch.equal(grown.renders[:, 0], bank.renders[:, 0])
    assert torch.allclose(grown.renders[:, 1:].float(), bank.renders[:, 1:].float(), atol=2e-3)
    assert len(list((run / "inversion_bank").glob("*.npz"))) == 2


def test_inversion_bad_input(trained):
    model, _, _ = load_run(trained)
    K = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="at least one image"):
        invert(model, [], K, rig=RigConfig())
    with pytest.raises(ValueError, match="H x W x 3"):
        invert(model, [np.zeros((8, 8), np.uint8)], K, rig=RigConfig())
    with pytest.raises(ValueError, match="one image at a time"):
        invert(model, [np.zeros((8, 8, 3), np.uint8)] * 2, K, rig=RigConfig())


def test_a_failed_inversion_leaves_every_gradient_flag_as_it_was(trained):
    """Inversion freezes the network; an error inside must not leave it frozen, nor unfreeze what was frozen."""
    model, _, _ = load_run(trained)
    params = list(model.parameters())
    params[0].requires_grad_(False)  # frozen by the caller: stays frozen
    before = [p.requires_grad for p in params]
    with pytest.raises(ValueError):
        invert(model, [np.zeros((8, 8), np.uint8)], np.eye(3, dtype=np.float32), rig=RigConfig())
    assert [p.requires_grad for p in params] == before and not params[0].requires_grad and params[1].requires_grad


def test_render_latent_cli(trained, tmp_path, capsys):
    ids = load_checkpoint(trained)["asset_ids"]
    gif = tmp_path / "turn.gif"
    assert main(["render-latent", str(trained), "turntable", ids[0], "--out", str(gif), "--frames", "4", "--size", "24"]) == 0
    frames = Image.open(gif)
    assert frames.n_frames == 4 and frames.size == (24, 24)
    grid = tmp_path / "swap.png"
    assert main(["render-latent", str(trained), "swap", "0", "1", "2", "--out", str(grid), "--size", "16"]) == 0
    assert Image.open(grid).size == (48, 48)
    assert main(["render-latent", str(trained), "interpolate", "0", "3", "--out", str(tmp_path / "i.png"), "--size", "16", "--steps", "4"]) == 0
    assert Image.open(tmp_path / "i.png").size == (64, 16)
    assert main(["render-latent", str(trained), "pca", "texture", "--out", str(tmp_path / "p.png"), "--size", "16", "--steps", "3", "--components", "2"]) == 0
    assert Image.open(tmp_path / "p.png").size == (48, 32)
    capsys.readouterr()
    assert main(["render-latent", str(trained), "turntable", "no-such-asset", "--out", str(gif)]) == 2
    assert "not in this run" in capsys.readouterr().err
    assert main(["render-latent", str(trained), "swap", "0", "1", "--out", str(tmp_path / "x.gif")]) == 2


def test_invert_cli(trained, small_dataset, tmp_path, capsys):
    ds = RenderedDataset(small_dataset)
    v = ds.load(ds.asset_ids[2])
    path = tmp_path / "photo.png"
    Image.fromarray(v.rgb[1]).save(path)
    capsys.readouterr()
    assert main(["invert", str(trained), str(path), "--k", "3"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert len(out["nearest"]) == 3 and out["camera_index"] is not None
    assert list((trained / "inversion_bank").glob("*.npz")), "the CLI saves the run's inversion bank"
    assert main(["invert", str(trained), str(path), "--k", "3", "--no-bank"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip())["nearest"]) == 3
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert main(["invert", str(trained), str(bad)]) == 2
    assert "not a readable image" in capsys.readouterr().err


def test_embed_grows_the_run_without_touching_the_network(small_dataset, tmp_path, capsys):
    cfg = preset("tiny")
    cfg.steps, cfg.max_assets = 60, 5
    run = tmp_path / "run"
    fit(small_dataset, run, cfg, progress=False, log=lambda m: None)
    before = load_checkpoint(run)
    assert main(["embed", str(run), str(small_dataset), "--steps", "10", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["embedded"] == 3 and summary["skipped_existing"] == 5 and not summary["failed"]
    after = load_checkpoint(run)
    assert after["asset_ids"][:5] == before["asset_ids"] and len(after["asset_ids"]) == 8
    for k, v in before["model"].items():
        if k.startswith("codes."):
            assert torch.equal(after["model"][k][:5], v)
        else:
            assert torch.equal(after["model"][k], v), k
    # Rerunning finds nothing new; evaluating the new assets works from the grown run.
    assert main(["embed", str(run), str(small_dataset), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["embedded"] == 0
    model, _, _ = load_run(run)
    assert model.codes.num_assets == 8
