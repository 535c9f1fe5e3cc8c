"""`assets2vec eval`: held-out metrics and the swap test, as JSON."""

from __future__ import annotations

import json

from assets2vec.cli.main import main
from assets2vec.configs import preset
from assets2vec.train import fit


def test_eval_json_and_swap_invariance(small_dataset, tmp_path, capsys):
    cfg = preset("tiny")
    cfg.steps = 40
    run = tmp_path / "run"
    fit(small_dataset, run, cfg, progress=False, log=lambda m: None)
    assert main(["eval", str(run), "--json", "--quiet", "--swap-pairs", "6"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("psnr", "ssim", "mask_iou", "swap", "step", "assets"):
        assert key in result
    assert result["assets"] == 8 and result["step"] == 40
    assert 5.0 < result["psnr"] < 60.0 and 0.0 <= result["ssim"] <= 1.0 and 0.0 <= result["mask_iou"] <= 1.0
    swap = result["swap"]
    assert swap["pairs"] == 6
    # Density never reads the texture code: swapping textures cannot move a silhouette.
    assert swap["silhouette_iou_gap"] < 1e-9
    assert json.loads((run / "eval.json").read_text())["psnr"] == result["psnr"]


def test_eval_refuses_non_runs(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--quiet"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
