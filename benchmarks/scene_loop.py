"""The feedback loop, measured: does weighting the next batch toward a model's weak spots help?

Per seed, on a built catalog (the demo's by default):
  1. batch A: uniform scenes; train a small CNN ensemble that classifies object crops by family;
  2. batch V: uniform scenes; the model's per-crop loss -> ERRORS.csv -> `Catalog.weak_spots`
     (exactly what `assets2vec weak-spots` does) -> weights and weak regions;
  3. batch B: the same number of scenes twice, same scene seed, once drawn with the weak-spot
     weights and once uniformly; retrain from the same initialisation on A+B for each;
  4. score both on one fixed uniform test batch: accuracy overall and on crops of assets inside
     this seed's weak regions.

The training batches are always rasterized. The test batch can come from Blender instead
(`--test-renderer blender`, or `--test-dir` for a SCENES folder made by `scenes generate
--renderer blender`): a domain the model never trained on, so its errors are real ones. The summary
gives mean ± standard error over seeds and a paired test (t and Wilcoxon) of weighted against uniform.

    make demo            # builds demo/catalog
    .venv/bin/python benchmarks/scene_loop.py demo/catalog --seeds 0 1 2 3 4
    .venv/bin/python benchmarks/scene_loop.py demo/catalog --seeds $(seq 0 9) --test-dir /tmp/blender_scenes

Writes benchmarks/results/scene_loop.json; prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec import Catalog  # noqa: E402
from render_core.artifacts import atomic_write_json  # noqa: E402
from render_core.scenes import config_from_dict  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "scene_loop.json"
CROP = 32


def crops(folder: Path, classes: dict[str, int], min_visible: float = 0.3):
    """(N, 3, CROP, CROP) float crops around every annotated object, labels (N,), asset ids."""
    X, y, ids = [], [], []
    for label in sorted((folder / "labels").glob("*.json")):
        rec = json.loads(label.read_text())
        img = Image.open(folder / "images" / rec["image"]).convert("RGB")
        for o in rec["objects"]:
            if not o.get("annotated") or o["asset_id"] is None or o["visible_fraction"] < min_visible:
                continue
            x, yy, w, h = o["bbox"]
            side = max(w, h) * 1.15
            cx, cy = x + w / 2, yy + h / 2
            box = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
            X.append(np.asarray(img.crop(box).resize((CROP, CROP), Image.BILINEAR), np.float32) / 255.0)
            y.append(classes[o["label"]])
            ids.append(o["asset_id"])
    return torch.tensor(np.stack(X)).permute(0, 3, 1, 2), torch.tensor(y), ids


def make_model(n_classes: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, n_classes))


def train(X: torch.Tensor, y: torch.Tensor, n_classes: int, seed: int, steps: int = 600, ensemble: int = 3):
    """An ensemble of `ensemble` CNNs (softmax averaged): single small CNNs swing by several points
    between initialisations, which would drown the effect being measured."""
    models = [_train_one(X, y, n_classes, seed * 100 + e, steps) for e in range(ensemble)]
    return lambda X_: torch.stack([torch.softmax(m(X_), -1) for m in models]).mean(0)


def _train_one(X: torch.Tensor, y: torch.Tensor, n_classes: int, seed: int, steps: int) -> torch.nn.Module:
    model = make_model(n_classes, seed)
    opt = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(X), (64,), generator=g)
        xb = X[idx]
        if torch.rand((), generator=g) < 0.5:
            xb = xb.flip(-1)
        loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def probs(model, X):
    return model(X)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scenes", type=int, default=60, help="scenes in batches A, V and B (default: 60)")
    ap.add_argument("--test-scenes", type=int, default=150)
    ap.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "runs" / "scene_loop")
    ap.add_argument("--steps", type=int, default=600, help="training steps per model")
    ap.add_argument("--test-renderer", choices=("raster", "blender"), default="raster", help="renderer of the test batch")
    ap.add_argument("--test-dir", type=Path, help="an existing SCENES folder as the test batch (e.g. Blender scenes)")
    ap.add_argument("--sharpness", type=float, default=2.0, help="weak-spots: exponent on relative error (default: 2)")
    ap.add_argument("--keep-uniform", type=float, default=0.3, help="weak-spots: share of the prior kept (default: 0.3)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = config_from_dict({"image_size": 128, "assets_per_scene": [3, 6], "min_visible_pixels": 30})
    t0 = time.time()
    with Catalog.open(args.catalog) as cat:
        classes = {c: i for i, c in enumerate(sorted({v for v in cat.values("family") if v}))}

        def batch(name: str, n: int, seed: int, weights=None, renderer: str = "raster") -> Path:
            out = args.work / name
            cat.generate_scenes(out, n, seed, cfg, weights=weights, progress=False, renderer=renderer)
            return out

        test_dir = args.test_dir or batch(f"test_{args.test_renderer}", args.test_scenes, 10_000, renderer=args.test_renderer)
        Xt, yt, idt = crops(test_dir, classes)
        rows = []
        for s in args.seeds:
            XA, yA, _ = crops(batch(f"s{s}/A", args.scenes, 100 * s + 1), classes)
            m0 = train(XA, yA, len(classes), s, args.steps)
            XV, yV, idV = crops(batch(f"s{s}/V", args.scenes, 100 * s + 2), classes)
            pV = probs(m0, XV)[torch.arange(len(yV)), yV].numpy()
            err_csv = args.work / f"s{s}" / "errors.csv"
            err_csv.write_text("asset_id,error\n" + "".join(f"{a},{1 - p:.6f}\n" for a, p in zip(idV, pV)))
            ws = cat.weak_spots(err_csv, n=3, size=10, proposals=0, sharpness=args.sharpness, keep_uniform=args.keep_uniform)
            weak = {a for r in ws["regions"] for a in r["members"]}
            (args.work / f"s{s}" / "weights.csv").write_text("id,weight\n" + "".join(f"{a},{w:.10g}\n" for a, w in ws["weights"].items()))
            out = {"seed": s, "share_before": ws["share_before"], "share_after": ws["share_after"],
                   "val_accuracy_m0": float((probs(m0, XV).argmax(-1) == yV).float().mean())}
            in_weak = torch.tensor([a in weak for a in idt])
            for mode, weights in (("weighted", args.work / f"s{s}" / "weights.csv"), ("uniform", None)):
                XB, yB, idB = crops(batch(f"s{s}/B_{mode}", args.scenes, 100 * s + 3, weights), classes)
                m = train(torch.cat([XA, XB]), torch.cat([yA, yB]), len(classes), s, args.steps)
                hit = probs(m, Xt).argmax(-1) == yt
                out[mode] = {"accuracy": float(hit.float().mean()), "weak_accuracy": float(hit[in_weak].float().mean()),
                             "weak_crops_in_B": int(sum(a in weak for a in idB)), "crops_in_B": len(idB)}
            out["weak_test_crops"] = int(in_weak.sum())
            rows.append(out)
            print(json.dumps(out), flush=True)

    def agg(mode, key):
        v = np.array([r[mode][key] for r in rows])
        return {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
                "sem": round(float(v.std(ddof=1) / np.sqrt(len(v))), 4) if len(v) > 1 else None}

    def paired(key):
        """Weighted minus uniform, per seed: mean, standard error and two-sided paired tests."""
        from scipy import stats

        w, u = (np.array([r[m][key] for r in rows]) for m in ("weighted", "uniform"))
        d = w - u
        out = {"mean": round(float(d.mean()), 4), "sem": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4) if len(d) > 1 else None}
        if len(d) > 1:
            out["t_test_p"] = round(float(stats.ttest_rel(w, u).pvalue), 5)
            out["wilcoxon_p"] = round(float(stats.wilcoxon(d).pvalue), 5) if np.any(d != 0) else 1.0
        return out

    summary = {
        "catalog": str(args.catalog), "seeds": args.seeds, "scenes_per_batch": args.scenes, "test_scenes": args.test_scenes,
        "test_crops": len(yt), "image_size": cfg.image_size, "task": "family of object crops (32x32, 3-CNN ensemble)",
        "steps": args.steps, "test_batch": str(test_dir), "test_renderer": args.test_renderer if args.test_dir is None else "given folder",
        "weak_spots": {"sharpness": args.sharpness, "keep_uniform": args.keep_uniform},
        "weak_gain": paired("weak_accuracy"), "overall_gain": paired("accuracy"),
        "weighted": {k: agg("weighted", k) for k in ("accuracy", "weak_accuracy")},
        "uniform": {k: agg("uniform", k) for k in ("accuracy", "weak_accuracy")},
        "weak_gain_per_seed": [round(r["weighted"]["weak_accuracy"] - r["uniform"]["weak_accuracy"], 4) for r in rows],
        "overall_gain_per_seed": [round(r["weighted"]["accuracy"] - r["uniform"]["accuracy"], 4) for r in rows],
        "per_seed": rows, "seconds": round(time.time() - t0, 1),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results, summary)
    print(json.dumps({k: summary[k] for k in ("weighted", "uniform", "weak_gain", "overall_gain", "weak_gain_per_seed",
                                               "overall_gain_per_seed", "seconds")}))


if __name__ == "__main__":
    main()
