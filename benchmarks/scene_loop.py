"""The feedback loop, measured: does weighting the next batch toward a model's weak spots help?

Per seed, on a built catalog (the demo's by default):
  1. batch A: uniform rasterized scenes; train a small CNN ensemble that classifies object crops by family;
  2. batch V: the model's per-crop loss -> ERRORS.csv -> `Catalog.weak_spots` (exactly what
     `assets2vec weak-spots` does) -> weights and weak regions. V is uniform rasterized scenes per
     seed, or one given SCENES folder (`--val-dir`, e.g. Blender scenes, the domain the model meets);
  3. batch B: the same number of rasterized scenes once per arm, same scene seed: uniformly, with
     each `--weighting SHARPNESS,KEEP_UNIFORM`, and (`--new-assets K`) with the first weighting plus
     NEW procedural assets generated from K proposals per weak region, rendered, embedded into a copy
     of the run and catalog, and drawn at their region's weight; retrain from the same
     initialisation on A+B for each arm;
  4. score every arm on one fixed test batch: accuracy overall and on crops of assets inside this
     seed's weak regions.

The training batches are always rasterized. The test batch can come from Blender instead
(`--test-renderer blender`, or `--test-dir` for a SCENES folder made by `scenes generate
--renderer blender`): a domain the model never trained on, so its errors are real ones. The summary
gives, per arm, mean ± standard error over seeds and a paired test (t and Wilcoxon) against uniform.

    make demo            # builds demo/catalog
    .venv/bin/python benchmarks/scene_loop.py demo/catalog --seeds 0 1 2 3 4
    .venv/bin/assets2vec scenes generate demo/catalog val/ --n 150 --seed 20000 --config benchmarks/loop_scenes.yaml --renderer blender
    .venv/bin/assets2vec scenes generate demo/catalog test/ --n 150 --seed 10000 --config benchmarks/loop_scenes.yaml --renderer blender
    .venv/bin/python benchmarks/scene_loop.py demo/catalog --seeds $(seq 0 9) --val-dir val --test-dir test \
        --weighting 6,0.1 --new-assets 4

Every batch uses benchmarks/loop_scenes.yaml (128², 3-6 assets). Writes benchmarks/results/scene_loop.json; prints one JSON line last.
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
from assets2vec.catalog.weak_spots import KEEP_UNIFORM, SHARPNESS  # noqa: E402
from render_core.artifacts import atomic_write_json  # noqa: E402
from render_core.scenes import load_config  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coverage_fill import add_proposed_assets  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "scene_loop.json"
SCENES_CONFIG = Path(__file__).resolve().parent / "loop_scenes.yaml"
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


def parse_weighting(text: str) -> tuple[float, float]:
    """'SHARPNESS,KEEP_UNIFORM' -> (sharpness, keep_uniform)."""
    try:
        sharp, keep = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--weighting wants SHARPNESS,KEEP_UNIFORM (e.g. 6,0.1), got {text!r}") from None
    return sharp, keep


def arm_name(sharpness: float, keep_uniform: float) -> str:
    return f"weighted_s{sharpness:g}_k{keep_uniform:g}"


def paired(rows: list[dict], arm: str, key: str) -> dict:
    """`arm` minus uniform, per seed: mean, standard error and two-sided paired tests (t, Wilcoxon)."""
    from scipy import stats

    w, u = (np.array([r[m][key] for r in rows]) for m in (arm, "uniform"))
    d = w - u
    out = {"mean": round(float(d.mean()), 4), "sem": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4) if len(d) > 1 else None,
           "better_in": int((d > 0).sum()), "worse_in": int((d < 0).sum()), "per_seed": [round(float(x), 4) for x in d]}
    if len(d) > 1:
        out["t_test_p"] = round(float(stats.ttest_rel(w, u).pvalue), 5)
        out["wilcoxon_p"] = round(float(stats.wilcoxon(d).pvalue), 5) if np.any(d != 0) else 1.0
    return out


def agg(rows: list[dict], arm: str, key: str) -> dict:
    v = np.array([r[arm][key] for r in rows])
    return {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
            "sem": round(float(v.std(ddof=1) / np.sqrt(len(v))), 4) if len(v) > 1 else None}


NEW_ARM = "weighted_plus_new_assets"


def new_asset_weights(ws: dict, args, seed: int, out: dict) -> dict[str, float]:
    """Weights over the grown catalog: the weak-spot weights of the old assets, and each new asset
    (generated from the proposals near the weak regions) at the mean weight of its region's members."""
    props = ws["proposals"]
    if not props:
        raise SystemExit(f"seed {seed}: the weak regions gave no proposals (no procedural family near them)")
    ids = add_proposed_assets(args.catalog, props, args.work / "grown", 1000 + seed, args.embed_steps,
                              lambda m: print(m, file=sys.stderr, flush=True))
    region_weight = {r["rank"]: float(np.mean([ws["weights"][a] for a in r["members"]])) for r in ws["regions"]}
    w = dict(ws["weights"])
    w.update({a: region_weight[p["region"]] for a, p in zip(ids, props)})
    weak_share = ws["share_after"] + sum(region_weight[p["region"]] for p in props)
    out[NEW_ARM] = {"new_assets": ids, "share_after": weak_share / sum(w.values())}
    return w


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
    ap.add_argument("--val-dir", type=Path, help="an existing SCENES folder as batch V for every seed (e.g. Blender scenes "
                    "of another scene seed than the test batch), instead of uniform rasterized scenes per seed")
    ap.add_argument("--weighting", type=parse_weighting, action="append", metavar="SHARPNESS,KEEP_UNIFORM",
                    help="weak-spots weighting of batch B; repeat to compare several against the same uniform B "
                    f"(default: {SHARPNESS:g},{KEEP_UNIFORM:g}, the weak-spots defaults)")
    ap.add_argument("--new-assets", type=int, default=0, metavar="K",
                    help="also an arm with NEW assets: K proposals per weak region are generated, rendered, embedded "
                    "into a copy of the run and catalog (WORK/grown) and drawn into batch B beside the first weighting "
                    "(default: 0, no such arm)")
    ap.add_argument("--embed-steps", type=int, default=80, help="embedding steps per new asset (default: 80)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    weightings = args.weighting or [(SHARPNESS, KEEP_UNIFORM)]
    arms = [arm_name(*w) for w in weightings] + ([NEW_ARM] if args.new_assets else [])
    if len(set(arms)) != len(arms):
        ap.error("--weighting: the same setting twice")
    torch.set_num_threads(2)
    cfg = load_config(SCENES_CONFIG)
    t0 = time.time()
    with Catalog.open(args.catalog) as cat:
        classes = {c: i for i, c in enumerate(sorted({v for v in cat.values("family") if v}))}

        def batch(name: str, n: int, seed: int, weights=None, renderer: str = "raster") -> Path:
            out = args.work / name
            cat.generate_scenes(out, n, seed, cfg, weights=weights, progress=False, renderer=renderer)
            return out

        test_dir = args.test_dir or batch(f"test_{args.test_renderer}", args.test_scenes, 10_000, renderer=args.test_renderer)
        Xt, yt, idt = crops(test_dir, classes)
        shared_val = crops(args.val_dir, classes) if args.val_dir else None
        rows = []
        for s in args.seeds:
            seed_dir = args.work / f"s{s}"
            XA, yA, _ = crops(batch(f"s{s}/A", args.scenes, 100 * s + 1), classes)
            m0 = train(XA, yA, len(classes), s, args.steps)
            XV, yV, idV = shared_val or crops(batch(f"s{s}/V", args.scenes, 100 * s + 2), classes)
            pV = probs(m0, XV)
            err_csv = seed_dir / "errors.csv"
            err_csv.write_text("asset_id,error\n" + "".join(
                f"{a},{1 - p:.6f}\n" for a, p in zip(idV, pV[torch.arange(len(yV)), yV].numpy())))
            out = {"seed": s, "val_accuracy_m0": float((pV.argmax(-1) == yV).float().mean()),
                   "test_accuracy_m0": float((probs(m0, Xt).argmax(-1) == yt).float().mean())}
            weights, weak = {"uniform": None}, None
            for i, ((sharp, keep), arm) in enumerate(zip(weightings, arms)):
                ws = cat.weak_spots(err_csv, n=3, size=10, proposals=args.new_assets if i == 0 else 0, sharpness=sharp,
                                    keep_uniform=keep, seed=s)
                # The regions do not depend on the weighting; only the draws do.
                weak = {a for r in ws["regions"] for a in r["members"]}
                weights[arm] = seed_dir / f"weights_{arm}.csv"
                weights[arm].write_text("id,weight\n" + "".join(f"{a},{w:.10g}\n" for a, w in ws["weights"].items()))
                out[arm] = {"share_before": ws["share_before"], "share_after": ws["share_after"]}
                if i == 0 and args.new_assets:
                    weights[NEW_ARM] = new_asset_weights(ws, args, s, out)
            in_weak = torch.tensor([a in weak for a in idt])
            for arm, w in weights.items():
                if arm == NEW_ARM:
                    with Catalog.open(args.work / "grown" / "catalog") as grown_cat:
                        grown_cat.generate_scenes(args.work / f"s{s}/B_{arm}", args.scenes, 100 * s + 3, cfg, weights=w,
                                                  progress=False)
                    XB, yB, idB = crops(args.work / f"s{s}/B_{arm}", classes)
                else:
                    XB, yB, idB = crops(batch(f"s{s}/B_{arm}", args.scenes, 100 * s + 3, w), classes)
                m = train(torch.cat([XA, XB]), torch.cat([yA, yB]), len(classes), s, args.steps)
                hit = probs(m, Xt).argmax(-1) == yt
                out.setdefault(arm, {}).update({
                    "accuracy": float(hit.float().mean()), "weak_accuracy": float(hit[in_weak].float().mean()),
                    "weak_crops_in_B": int(sum(a in weak for a in idB)), "crops_in_B": len(idB)})
                if arm == NEW_ARM:
                    out[arm]["new_asset_crops_in_B"] = int(sum(a in set(out[arm]["new_assets"]) for a in idB))
            out["weak_test_crops"] = int(in_weak.sum())
            rows.append(out)
            print(json.dumps(out), flush=True)

    summary = {
        "catalog": str(args.catalog), "seeds": args.seeds, "scenes_per_batch": args.scenes,
        "test_scenes": args.test_scenes if args.test_dir is None else "given folder",
        "test_crops": len(yt), "image_size": cfg.image_size, "task": "family of object crops (32x32, 3-CNN ensemble)",
        "steps": args.steps, "test_batch": str(test_dir),
        "test_renderer": args.test_renderer if args.test_dir is None else "given folder",
        "val_batch": str(args.val_dir) if args.val_dir else "uniform rasterized scenes per seed",
        "weightings": {arm: {"sharpness": sh, "keep_uniform": k} for arm, (sh, k) in zip(arms, weightings)},
        "new_assets_per_region": args.new_assets,
        "gains": {arm: {"weak": paired(rows, arm, "weak_accuracy"), "overall": paired(rows, arm, "accuracy")} for arm in arms},
        "arms": {arm: {k: agg(rows, arm, k) for k in ("accuracy", "weak_accuracy")} for arm in ["uniform", *arms]},
        "per_seed": rows, "seconds": round(time.time() - t0, 1),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results, summary)
    print(json.dumps({k: summary[k] for k in ("gains", "arms", "seconds")}))


if __name__ == "__main__":
    main()
