"""The photo encoder: randomised training photos, a CNN that tells assets apart under them, its file,
and the photo search that compares only the assets it proposes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from assets2vec.photo import FILL
from assets2vec.photo_encoder import EncoderConfig, TrainedEncoder, train_encoder
from assets2vec.photo_views import Randomiser, ViewConfig, random_cameras


def _shapes(views: int = 6, size: int = 32) -> np.ndarray:
    """(3, V, S, S, 4) uint8 'renders' of three objects told apart by shape and colour (a red square,
    a green disc, a blue bar), a little smaller or larger from view to view."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] + 0.5
    out = np.zeros((3, views, size, size, 4), np.uint8)
    for v in range(views):
        r = size * rng.uniform(0.2, 0.3)
        c = size / 2 + rng.uniform(-3, 3, 2)
        masks = [(abs(xx - c[0]) < r) & (abs(yy - c[1]) < r), (xx - c[0]) ** 2 + (yy - c[1]) ** 2 < r * r,
                 (abs(xx - c[0]) < r) & (abs(yy - c[1]) < r / 3)]
        for i, (m, colour) in enumerate(zip(masks, [(200, 40, 40), (40, 170, 60), (50, 60, 200)])):
            out[i, v][m] = (*colour, 255)
    return out


def test_randomised_photos_are_framed_like_a_prepared_photo_and_seeded():
    renders = torch.as_tensor(_shapes().reshape(-1, 32, 32, 4))
    a = Randomiser(40, torch.Generator().manual_seed(0))(renders)
    b = Randomiser(40, torch.Generator().manual_seed(0))(renders)
    c = Randomiser(40, torch.Generator().manual_seed(1))(renders)
    assert a.shape == (18, 4, 40, 40) and torch.equal(a, b) and not torch.equal(a, c)
    assert a[:, :3].min() >= 0 and a[:, :3].max() <= 1 and set(a[:, 3].unique().tolist()) <= {0.0, 1.0}
    # The mask's box spans about FILL of the crop (the box is drawn 0.85-1.2 times off, as a segmentation errs).
    m = a[:, 3] > 0.5
    side = torch.maximum(m.any(1).sum(1), m.any(2).sum(1)).float() / 40
    assert FILL / 1.3 < side.median() < FILL / 0.8
    # The background is not the renders' black: something is drawn behind every object.
    assert (a[:, :3].mean((1, 2, 3)) > 0.02).all()


def test_random_cameras_frame_the_object_as_asked():
    cfg = ViewConfig(fill=(0.5, 0.5), fov=(30.0, 50.0))
    cams = random_cameras(np.random.default_rng(0), 8, cfg)
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    # PyTorch3D's screen: the unit box's corners stay inside the frame, and it fills a fair share of it.
    pts = cams.transform_points_ndc(torch.as_tensor(corners, dtype=torch.float32)[None].expand(8, 8, 3))[..., :2]
    extent = (pts.amax(1) - pts.amin(1)).amax(-1) / 2  # share of the frame's width
    assert (pts.abs() < 1).all() and (extent > 0.25).all() and (extent < 0.6).all()
    assert np.allclose(cams.fov.numpy(), random_cameras(np.random.default_rng(0), 8, cfg).fov.numpy())


@pytest.fixture(scope="module")
def shapes_encoder():
    cfg = EncoderConfig(size=32, width=8, dim=16, epochs=12, batch=6, lr=1e-2)
    return train_encoder(_shapes(), ["square", "disc", "bar"], cfg, progress=False, log=lambda m: None)


def test_encoder_tells_objects_apart_on_backgrounds_and_colour_casts_it_never_saw(shapes_encoder):
    enc = shapes_encoder
    assert enc.history[-1]["held_out_top1"] >= 2 / 3
    # A "photo": the disc, brighter and warmer, on a grey-blue wall, as prepare_photo frames it.
    size = 64
    yy, xx = np.mgrid[:size, :size] + 0.5
    disc = (xx - 32) ** 2 + (yy - 32) ** 2 < 19 ** 2
    crop = np.zeros((size, size, 4), np.uint8)
    crop[..., :3] = (90, 110, 140)
    crop[disc, :3] = (70, 205, 70)
    crop[disc, 3] = 255
    p = enc.probabilities(crop)
    assert p.shape == (3,) and abs(float(p.sum()) - 1) < 1e-5 and int(p.argmax()) == 1
    assert enc.propose(crop, 2)[0] == 1 and len(enc.propose(crop, 10)) == 3


def test_familiarity_is_the_mean_cosine_to_the_nearest_training_views_of_the_asset(shapes_encoder, monkeypatch):
    """The mechanics, on embeddings set by hand: the `NEAREST` closest views of the named asset count,
    the other assets' views do not."""
    from assets2vec.photo_encoder import NEAREST

    enc = shapes_encoder
    assert enc.views.shape == (3, 6, 16) and enc.views.dtype == torch.float16
    e = torch.zeros(16)
    e[0] = 1.0
    views = torch.zeros(3, 6, 16)
    cosines = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, -1.0])
    views[1, :, 0] = cosines
    views[1, :, 1] = (1 - cosines ** 2).sqrt()
    views[0, :, 0] = 1.0  # another asset's views, all on the photo's embedding: not read for asset 1
    monkeypatch.setattr(enc, "views", views.half())
    monkeypatch.setattr(enc.net, "embed", lambda x: e[None].expand(len(x), -1))
    crop = np.zeros((64, 64, 4), np.uint8)
    assert enc.familiarity(crop, 1) == pytest.approx(float(cosines.sort(descending=True).values[:NEAREST].mean()), abs=2e-3)
    assert enc.familiarity(crop, 0) == pytest.approx(1.0, abs=2e-3)


def test_one_read_gives_the_probabilities_and_the_familiarity_of_the_most_probable_asset(shapes_encoder):
    crop = (np.random.default_rng(0).random((64, 64, 4)) * 255).astype(np.uint8)
    probs, familiarity = shapes_encoder.read(crop)
    assert torch.allclose(probs, shapes_encoder.probabilities(crop))
    assert familiarity == pytest.approx(shapes_encoder.familiarity(crop, int(probs.argmax())), abs=1e-6)


def test_open_set_benchmark_scores_the_search_familiarity(shapes_encoder):
    """benchmarks/photo_openset.py's knn5 score is what a search reports as familiarity (one owner)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("photo_openset", Path(__file__).resolve().parents[2] / "benchmarks" / "photo_openset.py")
    openset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(openset)
    crops = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 4)).astype(np.uint8)
    crops[..., 3] = np.where(crops[..., 3] > 100, 255, 0)
    scores, named = openset.scores(shapes_encoder, crops, None)
    expected = [shapes_encoder.familiarity(c, int(n)) for c, n in zip(crops, named)]
    assert np.allclose(scores["knn5"], expected, atol=1e-4)


def test_reference_views_are_seeded_and_empty_for_an_unreadable_asset(shapes_encoder):
    from assets2vec.photo_encoder import reference_views

    renders = _shapes()
    renders[2] = 0  # no views: the mesh could not be read
    a, b = reference_views(shapes_encoder, renders), reference_views(shapes_encoder, renders)
    assert torch.equal(a, b) and a.shape == (3, 6, 16) and not a[2].any()
    assert torch.allclose(a[:2].float().norm(dim=-1), torch.ones(2, 6), atol=1e-2)


def test_encoder_file_round_trips_and_refuses_pickles(shapes_encoder, tmp_path):
    path = shapes_encoder.save(tmp_path / "enc.pt")
    back = TrainedEncoder.load(path)
    crop = np.dstack([_shapes()[2, 0][..., :3], _shapes()[2, 0][..., 3]])
    assert back.asset_ids == ["square", "disc", "bar"] and back.history == shapes_encoder.history
    assert torch.allclose(back.probabilities(crop), shapes_encoder.probabilities(crop))
    assert torch.equal(back.views, shapes_encoder.views) and back.familiarity(crop, 2) == shapes_encoder.familiarity(crop, 2)
    # An encoder saved before it kept its training views still loads, with no familiarity to give.
    from assets2vec.tensor_files import load_tensors, save_tensors

    d = load_tensors(path, 1)
    save_tensors(tmp_path / "old.pt", {k: v for k, v in d.items() if k != "views"})
    old = TrainedEncoder.load(tmp_path / "old.pt")
    assert old.views is None and old.familiarity(crop, 2) is None
    save_tensors(tmp_path / "bad.pt", {**d, "views": d["views"][:2]})
    with pytest.raises(ValueError, match="bad.pt.*do not fit 3 assets"):
        TrainedEncoder.load(tmp_path / "bad.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"format": 1, "state": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable photo encoder"):
        TrainedEncoder.load(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        TrainedEncoder.load(tmp_path / "junk.pt")


def test_bank_search_restricted_to_proposed_codes():
    from assets2vec.code_bank import CodeBank

    rng = np.random.default_rng(0)
    renders = (rng.random((5, 7, 16, 4)) * 255).astype(np.uint8)  # 5 poses x 7 codes x 4x4 grid
    bank = CodeBank(np.tile(np.eye(4, dtype=np.float32), (5, 1, 1)), 8, 4, renders, "k")
    rgb, mask = torch.rand(64, 3), (torch.rand(64) > 0.5).float()
    poses, codes, _ = bank.search(rgb, mask, 3, per_code=2, codes=torch.tensor([6, 1]))
    assert set(codes.tolist()) == {1, 6} and len(codes) == 4
    poses, codes, err = bank.search(rgb, mask, 10, codes=torch.tensor([2]))
    assert set(codes.tolist()) == {2} and len(codes) == 5 and torch.isfinite(err).all()
    with pytest.raises(ValueError, match="rows in"):
        bank.search(rgb, mask, 3, codes=torch.tensor([7]))


def test_catalog_search_names_the_asset_the_run_encoder_proposes_first(run, small_dataset, tmp_path, capsys):
    from assets2vec.catalog.build import build_catalog
    from assets2vec.cli.main import main
    from assets2vec.photo_fit import ENCODER_RULE, ENCODER_RULE_NO_FAMILIARITY
    from assets2vec.run import Run
    from render_core.dataset import RenderedDataset

    own = tmp_path / "run"
    shutil.copytree(run, own)
    assert main(["photo-encoder", str(own), "--only", "encoder", "--views", "4", "--epochs", "1", "--quiet"]) == 0
    assert Run.open(own).encoder_path.is_file() and "photo encoder saved" in capsys.readouterr().out
    build_catalog(own, tmp_path / "cat", progress=False, log=lambda m: None)
    ds = RenderedDataset(small_dataset)
    Image.fromarray(ds.load(ds.asset_ids[3]).rgb[1]).save(tmp_path / "photo.png")
    assert main(["search", str(tmp_path / "cat"), "--image", str(tmp_path / "photo.png"), "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["proposals"]) == min(8, len(ds.asset_ids)) and set(out["proposals"]) <= set(ds.asset_ids)
    assert out["asset"] == out["proposals"][0] and 0 < out["confidence"]["probability"] <= 1  # the encoder names it
    assert -1 <= out["confidence"]["familiarity"] <= 1 and out["rule"] == ENCODER_RULE.to_json()
    # An encoder saved before it kept its training views has no familiarity: the rule chosen without it decides.
    enc = TrainedEncoder.load(Run.open(own).encoder_path)
    enc.views = None
    enc.save(Run.open(own).encoder_path)
    assert main(["search", str(tmp_path / "cat"), "--image", str(tmp_path / "photo.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["confidence"]["familiarity"] is None and out["rule"] == ENCODER_RULE_NO_FAMILIARITY.to_json()
    # An encoder of other assets is refused with the command that fixes it.
    enc = TrainedEncoder.load(Run.open(own).encoder_path)
    enc.asset_ids = list(reversed(enc.asset_ids))
    enc.save(Run.open(own).encoder_path)
    assert main(["search", str(tmp_path / "cat"), "--image", str(tmp_path / "photo.png")]) == 2
    assert "photo-encoder" in capsys.readouterr().err
    assert main(["photo-encoder", str(own), "--views", "1"]) == 2
    # The segmenter trains alone, beside the encoder, and a search reads it; a bad file is one clear line.
    assert main(["photo-encoder", str(own), "--only", "segmenter", "--segmenter-steps", "2", "--segmenter-scenes", "8",
                 "--segmenter-scene-steps", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "photo segmenter saved" in out and "photo encoder saved" not in out and "of 8 one-asset scenes" in out
    from assets2vec import Catalog
    from assets2vec.photo_segmenter import TrainedSegmenter

    with Catalog.open(tmp_path / "cat") as cat:
        assert isinstance(cat.photo_segmenter(), TrainedSegmenter)
    Run.open(own).segmenter_path.write_bytes(b"junk")
    assert main(["search", str(tmp_path / "cat"), "--image", str(tmp_path / "photo.png")]) == 2
    assert "not a readable photo segmenter" in capsys.readouterr().err
    assert main(["photo-encoder", str(own), "--segmenter-steps", "0"]) == 2
    assert main(["photo-encoder", str(own), "--segmenter-scenes", "-1"]) == 2
    assert "--segmenter-scenes must be 0 or more" in capsys.readouterr().err


def test_unreadable_meshes_are_left_out_and_named(run, monkeypatch):
    """A run's mesh that cannot be read when the encoder trains (moved, changed) is skipped and named;
    the others train."""
    from assets2vec import photo_encoder
    from assets2vec.run import Run
    from render_core.assets import loaders

    opened = Run.open(run)
    bad = opened.asset_ids[1]
    real = loaders.load_mesh

    def load(path, *a, **k):
        if bad in str(path) or path.stem == bad:
            raise loaders.AssetLoadError(path, "unreadable OBJ file (test)")
        return real(path, *a, **k)

    monkeypatch.setattr(loaders, "load_mesh", load)
    failed: list = []
    got = list(photo_encoder.run_meshes(opened, failed))
    assert [i for i, _ in got] == opened.asset_ids and [m is None for _, m in got].count(True) == 1
    assert failed[0][0] == bad and "unreadable OBJ file" in failed[0][1]
    lines: list = []
    photo_encoder.report_unreadable(failed, "photo encoder", lines.append)
    assert bad in lines[0] and "left out" in lines[0]
    with pytest.raises(loaders.AssetLoadError):  # without a list to report to, the error is the caller's
        list(photo_encoder.run_meshes(opened))


def test_encoder_trains_without_the_skipped_assets():
    cfg = EncoderConfig(size=32, width=8, dim=16, epochs=2, batch=6, lr=1e-2)
    renders = _shapes()
    renders[2] = 0  # the bar's mesh could not be read: no views
    enc = train_encoder(renders, ["square", "disc", "bar"], cfg, progress=False, log=lambda m: None, skip={2})
    assert enc.asset_ids == ["square", "disc", "bar"] and 0 <= enc.history[-1]["held_out_top1"] <= 1
    with pytest.raises(ValueError, match="could not be read"):
        train_encoder(renders, ["square", "disc", "bar"], cfg, progress=False, log=lambda m: None, skip={1, 2})


def test_photo_encoder_command_help_states_the_encoder_defaults(capsys):
    from assets2vec.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["photo-encoder", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"training epochs (default: {EncoderConfig.epochs})" in text
    assert f"renders per asset (default: {EncoderConfig().views.views})" in text
    assert build_parser().parse_args(["photo-encoder", "run"]).epochs is None  # filled from EncoderConfig
