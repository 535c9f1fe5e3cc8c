"""The photo encoder's top-1 on Blender photos (no NeRF fit), with Blender's own mask and with the
run's segmenter's, for cheap variants of how it is trained and asked: a record of the experiment in
docs/experiments.md ("What the misses are"), not a product path.

    .venv/bin/python benchmarks/photo_encoder_variants.py demo/run demo/photos_in
    .venv/bin/python benchmarks/photo_encoder_variants.py demo/run demo/photos_in --opened 0.25 --save /tmp/opened.pt
    .venv/bin/python benchmarks/photo_encoder_variants.py demo/run demo/photos_in --encoder /tmp/opened.pt --also demo/run/photo_encoder.pt

Rows: `base` (one crop, the object filling 60 % of it, as the search makes it), `fills3` (log-probabilities
averaged over crops filled 50, 60 and 70 %), `fills3+mirror` (and their mirror images), `ensemble`
(the one crop, averaged with the encoder `--also`). `--opened P` first trains an encoder with the
default config whose training masks are morphologically opened in a share P of the photos.
"""
import argparse, json, sys
from pathlib import Path

import numpy as np
import torch, torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import assets2vec.photo_views as photo_views
from assets2vec.images import read_image
from assets2vec.photo import PhotoError, object_mask, prepare_photo
from assets2vec.photo_encoder import EncoderConfig, TrainedEncoder, run_meshes, train_encoder
from assets2vec.photo_segmenter import TrainedSegmenter
from assets2vec.run import Run


def opened_masks(share: float):
    """Patch the Randomiser so `share` of its masks lose their thin parts (a 3x3 opening)."""
    plain = photo_views.Randomiser._segmentation

    def segmentation(self, alpha, shadow):
        mask = plain(self, alpha, shadow)
        opened = F.max_pool2d(-F.max_pool2d(-mask, 3, stride=1, padding=1), 3, stride=1, padding=1)
        pick = (torch.rand(len(mask), generator=self.gen) < share).view(-1, 1, 1, 1)
        return torch.where(pick, torch.minimum(mask, opened), mask)

    photo_views.Randomiser._segmentation = segmentation


def main() -> None:
    from PIL import Image

    ap = argparse.ArgumentParser()
    ap.add_argument("run"); ap.add_argument("photos")
    ap.add_argument("--encoder", help="encoder file (default: the run's)")
    ap.add_argument("--also", help="a second encoder file, for the ensemble row")
    ap.add_argument("--opened", type=float, help="train an encoder with this share of opened masks first")
    ap.add_argument("--save", help="where --opened saves its encoder")
    args = ap.parse_args()
    torch.set_num_threads(2)
    run = Run.open(args.run)
    if args.opened is not None:
        opened_masks(args.opened)
        config = EncoderConfig()
        renders = photo_views.render_views(run_meshes(run), config.views, progress=False, total=len(run.asset_ids))
        encoder = train_encoder(renders, run.asset_ids, config, progress=False)
        if args.save:
            encoder.save(args.save)
    else:
        encoder = TrainedEncoder.load(args.encoder or run.encoder_path)
    others = [TrainedEncoder.load(args.also)] if args.also else []
    segmenter = TrainedSegmenter.load(run.segmenter_path)
    row = {a: i for i, a in enumerate(encoder.asset_ids)}
    variants = {"base": ([0.6], False, False), "fills3": ([0.5, 0.6, 0.7], False, False),
                "fills3+mirror": ([0.5, 0.6, 0.7], True, False)}
    if others:
        variants["ensemble"] = ([0.6], False, True)
    hits: dict = {}
    for r in (json.loads(x) for x in open(f"{args.photos}/photos.jsonl")):
        name = f"{r['asset_id']}__{r['j']}"
        rgb = read_image(f"{args.photos}/photos/{name}.png")[..., :3]
        truth = np.asarray(Image.open(f"{args.photos}/masks/{name}.png")) > 127
        try:
            found = object_mask(rgb, segmenter=segmenter, name=name)[0]
        except PhotoError:
            found = None
        for source, mask in (("Blender's mask", truth), ("segmenter's mask", found)):
            for v, (fills, mirror, ensemble) in variants.items():
                ok = False
                if mask is not None:
                    rgba = np.dstack([rgb, mask.astype(np.uint8) * 255])
                    logp = []
                    for fill in fills:
                        crop = prepare_photo(rgba, 64, fill=fill, name=name).image
                        crops = [crop, np.ascontiguousarray(crop[:, ::-1])] if mirror else [crop]
                        for e in [encoder] + (others if ensemble else []):
                            logp += [torch.log(e.probabilities(c) + 1e-9) for c in crops]
                    ok = int(torch.stack(logp).mean(0).argmax()) == row[r["asset_id"]]
                hits.setdefault((source, v, r["setting"]), []).append(ok)
    for source in ("Blender's mask", "segmenter's mask"):
        for v in variants:
            print(f"{source:17s} {v:14s} " + "  ".join(f"{s} {np.mean(hits[(source, v, s)]):.1%}"
                                                       for s in ("studio", "backdrop", "clutter")))


if __name__ == "__main__":
    main()
