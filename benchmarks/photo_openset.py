"""Does a photo show an asset of the catalog at all? Open-set scores of a photo encoder, on photo folders.

Search by photo must say "no asset in the catalog matches" for a photo of an asset the catalog lacks.
This scores, without the NeRF fit (seconds instead of a whole `photo_search.py` run), how well each of
several confidence scores of a run's photo encoder separates photos of catalog assets (IN folder) from
photos of other assets (OUT folders):

- `msp`: the top softmax probability (what the product's match rule reads);
- `cos`: the top cosine between the photo's embedding and an asset's prototype;
- `energy`: the log-sum-exp of the logits (Liu et al. 2020);
- `knn5`: the mean cosine to the 5 nearest randomised training views of the named asset (Sun et al. 2022);
- `maha`: minus the smallest Mahalanobis distance to an asset's mean training embedding (shared covariance).

For each OUT folder and score: the AUROC, and the share of its photos flagged when the threshold flags
5 % of the IN photos (chosen on the same photos: an upper bound for the development set, not a test
figure). Crops come
from the product's `prepare_photo` with the run's photo segmenter, or with `--true-mask` from the
renderer's own mask (what a perfect segmentation would give).

    .venv/bin/python benchmarks/photo_openset.py demo/catalog demo/photos_in demo/photos_out
    .venv/bin/python benchmarks/photo_openset.py demo/catalog demo/photos_in demo/photos_out demo/photos_foreign_dev \\
        --encoder demo/run/photo_encoder.pt --encoder other.pt [--true-mask]

Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def crops(catalog, folders: list[tuple[Path, bool]], true_mask: bool):
    """(n, S, S, 4) prepared crops of every photo of the folders, and one {"asset", "setting", "inside", "folder"} per crop."""
    from PIL import Image

    from assets2vec.photo import prepare_photo

    size, seg = catalog.model()[2], catalog.photo_segmenter()
    out, meta = [], []
    for folder, inside in folders:
        for line in (folder / "photos.jsonl").read_text().splitlines():
            e = json.loads(line)
            name = f"{e['asset_id']}__{e['j']}"
            img = np.asarray(Image.open(folder / "photos" / f"{name}.png").convert("RGB"))
            if true_mask:
                m = np.asarray(Image.open(folder / "masks" / f"{name}.png")) > 127
                img = np.concatenate([img, (m * 255).astype(np.uint8)[..., None]], -1)
            try:
                out.append(prepare_photo(img, size, name=name, segmenter=seg).image)
            except ValueError as exc:  # refused: the product would answer with this error
                print(f"{name}: {exc}", file=sys.stderr)
                continue
            meta.append({"asset": e["asset_id"], "setting": e["setting"], "inside": inside, "folder": folder.name})
    return np.stack(out), meta


def scores(encoder, crops_: np.ndarray, renders: np.ndarray | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """{score name: (n,) higher = more surely in the catalog}, and (n,) the row of the asset each crop is named as."""
    import torch
    import torch.nn.functional as F

    from assets2vec.photo_encoder import NEAREST, reference_views

    net, cfg = encoder.net.eval(), encoder.config
    x = torch.as_tensor(crops_).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(cfg.size, cfg.size), mode="area")
    x = torch.cat([x[:, :3], (x[:, 3:] > 0.5).float()], 1)
    with torch.no_grad():
        E = net.embed(x)
        logits = net.classify(E)
        # knn5 is the search's familiarity: read from the encoder's reference views, drawn here for an
        # encoder saved before it kept them
        bank = (encoder.views if encoder.views is not None else reference_views(encoder, renders)).float()
    named = logits.argmax(-1)
    near = torch.einsum("pd,pvd->pv", E, bank[named])
    B = bank.reshape(-1, bank.shape[-1]).numpy()
    mu = bank.mean(1).numpy()
    cov = np.cov((B - np.repeat(mu, bank.shape[1], 0)).T) + 1e-3 * np.eye(B.shape[1])
    d = E.numpy()[:, None, :] - mu[None]
    maha = np.einsum("pnd,de,pne->pn", d, np.linalg.inv(cov), d).min(1)
    return {"msp": torch.softmax(logits, -1).max(-1).values.numpy(), "cos": (logits.max(-1).values / net.temperature).numpy(),
            "energy": torch.logsumexp(logits, -1).numpy(), "knn5": near.topk(min(NEAREST, near.shape[1]), -1).values.mean(-1).numpy(),
            "maha": -maha}, named.numpy()


def report(encoder, x: np.ndarray, meta: list[dict], renders: np.ndarray | None, true_mask: bool) -> dict:
    """Top-1 on the in-catalog crops, and each score's AUROC and share flagged, for every outside folder."""
    from sklearn.metrics import roc_auc_score

    s, named = scores(encoder, x, renders)
    inside = np.array([m["inside"] for m in meta])
    setting = np.array([m["setting"] for m in meta])
    folder = np.array([m["folder"] for m in meta])
    row = {encoder.asset_ids[i]: i for i in range(len(encoder.asset_ids))}
    right = np.array([row.get(m["asset"], -1) for m in meta]) == named
    out = {"photos": len(meta), "true_mask": true_mask,
           "top1": {st: round(float(right[inside & (setting == st)].mean()), 3) for st in sorted(set(setting))}, "scores": {}}
    print(f"top-1 of the in-catalog photos: {out['top1']}")
    for name, v in s.items():
        threshold = np.quantile(v[inside], 0.05)
        out["scores"][name] = {}
        for f in sorted(set(folder[~inside])):
            keep = inside | (folder == f)
            out["scores"][name][f] = {
                "auroc": round(float(roc_auc_score(inside[keep], v[keep])), 3),
                "flagged_at_5pct": {st: round(float((v[(folder == f) & (setting == st)] < threshold).mean()), 3)
                                    for st in sorted(set(setting))}}
            print(f"{name:<7} {f}: AUROC {out['scores'][name][f]['auroc']:.3f}  flagged when 5 % of in-catalog are: "
                  f"{out['scores'][name][f]['flagged_at_5pct']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("catalog", type=Path)
    ap.add_argument("inside", type=Path, help="photos of assets the catalog holds (benchmarks/blender_photos.py)")
    ap.add_argument("outside", type=Path, nargs="+", help="folders of photos of assets it does not hold (each scored apart)")
    ap.add_argument("--encoder", type=Path, action="append", default=None,
                    help="a photo encoder file (default: the run's); repeat to compare several on the same crops")
    ap.add_argument("--true-mask", action="store_true", help="crop with the renderer's mask instead of the segmenter's")
    ap.add_argument("--renders", type=Path, default=None, help="cache of the run's encoder views (.npy; made when missing)")
    args = ap.parse_args()

    from assets2vec import Catalog
    from assets2vec.photo_encoder import TrainedEncoder, run_meshes
    from assets2vec.photo_views import render_views
    from assets2vec.run import Run

    with Catalog.open(args.catalog, device="cpu") as cat:
        run_path = Path(cat.store.get_meta("run"))
        encoders = [TrainedEncoder.load(e) for e in args.encoder] if args.encoder else [cat.photo_encoder()]
        if encoders[0] is None:
            raise SystemExit(f"{run_path} has no photo encoder: train one with 'assets2vec photo-encoder {run_path}'")
        x, meta = crops(cat, [(args.inside, True), *((o, False) for o in args.outside)], args.true_mask)
    renders = None  # only an encoder without reference views needs the run's views
    if args.renders and args.renders.is_file():
        renders = np.load(args.renders, allow_pickle=False)
    elif any(e.views is None for e in encoders):
        run = Run.open(run_path)
        renders = render_views(run_meshes(run), encoders[0].config.views, total=len(run.asset_ids))
        if args.renders:
            np.save(args.renders, renders)
    results = []
    for path, encoder in zip(args.encoder or ["the run's"], encoders):
        print(f"encoder: {path}")
        results.append({"encoder": str(path), **report(encoder, x, meta, renders, args.true_mask)})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
