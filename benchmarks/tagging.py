"""Few-shot attribute tagging on the procedural families' ground truth, and disentanglement.

For each attribute (shape: legs, base, armrests, family; texture: colour, pattern, frame),
each number of labels per class (5, 10, 20) and each space (shape, texture, joint codes, the
geometry the shape codes decode to, `catalog.geometry`, the colours the codes paint on the
asset's surface, `catalog.appearance`, and the texture codes less the texture typical of
assets shaped alike, `catalog.texture_only`):
draw that many labelled assets per class, fit `AttributeClassifier` (model chosen by
cross-validation, exactly what `assets2vec tag` does), and score it on every other asset
that has the attribute. Repeated over several seeds. Classes with fewer than
labels + 5 assets are left out of that cell (reported). Accuracy is plain accuracy on the
held-out assets; since training labels are balanced, chance is 1/classes, and the
disentanglement check uses balanced accuracy against that chance.

    .venv/bin/assets2vec assets generate benchmarks/runs/lib400 --n 400 --seed 7
    .venv/bin/assets2vec render benchmarks/runs/lib400 benchmarks/runs/ds400 --size 64
    .venv/bin/assets2vec fit benchmarks/runs/ds400 --out benchmarks/runs/fit400 --steps 6000 --seed 0
    .venv/bin/python benchmarks/tagging.py benchmarks/runs/fit400

A reference column, "silhouettes", classifies the ground-truth alpha masks of every
training view (a PCA of their pixels to 64 numbers): what the same few-shot
classifiers reach from perfect multi-view silhouettes, which real assets do not come with.
`--silhouettes DATASET` takes them from another rendering of the same library instead (e.g.
one at 128²), to see whether resolution is what limits that reference.

A second reference, "mesh", runs each asset's own mesh through the geometry space's
recipe (surface points voxelised on the same grid, cropped to the object's box, seen as
silhouettes and depth maps, described by pixels and HOG, PCA): what the geometry space would give if the network decoded every asset perfectly.
The gap between "geometry" and "mesh" is what better training would buy; the gap
between "mesh" and 100 % is the descriptor and the few labels.

`errors` in the output lists, for the geometry space at the largest label count, which
(family, true, predicted) mistakes the held-out assets get, summed over the seeds.

Writes benchmarks/results/tagging.json; prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec import Catalog  # noqa: E402
from assets2vec.catalog.build import build_catalog  # noqa: E402
from assets2vec.catalog.geometry import GeometryPCA  # noqa: E402
from assets2vec.catalog.spaces import FEATURE_SPACES, STANDARDISED_SPACES  # noqa: E402
from assets2vec.catalog.tagging import AttributeClassifier  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "tagging.json"
SHAPE_ATTRS = ("legs", "base", "armrests", "family")
TEXTURE_ATTRS = ("colour", "pattern", "frame")


@contextmanager
def temporary_catalog(run: Path, **build_options) -> Iterator[Catalog]:
    """The run's catalog, built in a temporary folder (removed on exit) with `build_options` for `build_catalog`."""
    with tempfile.TemporaryDirectory() as tmp:
        build_catalog(run, Path(tmp) / "cat", progress=False, log=lambda m: None, **build_options)
        with Catalog.open(Path(tmp) / "cat") as cat:
            yield cat


def draw(y: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded `per_class` training rows of each class with at least per_class + 5 assets, the test rows
    (every other asset of those classes), and those classes."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    kept = classes[counts >= per_class + 5]
    if len(kept) == 0:
        return np.zeros(0, int), np.zeros(0, int), kept
    train = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in kept])
    return train, np.setdiff1d(np.flatnonzero(np.isin(y, kept)), train), kept


def run_cell(X: np.ndarray, y: np.ndarray, per_class: int, seed: int, standardize: bool = True,
             family: np.ndarray | None = None) -> dict | None:
    train, test, kept = draw(y, per_class, seed)
    if len(kept) < 2:
        return None
    classes = np.unique(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = AttributeClassifier(random_state=seed, standardize=standardize).fit(X[train], y[train])
        pred = clf.predict(X[test])
    wrong = np.flatnonzero(pred != y[test])
    errors = Counter((str(family[test[i]]) if family is not None else "", str(y[test[i]]), str(pred[i])) for i in wrong)
    return {"accuracy": accuracy_score(y[test], pred), "balanced_accuracy": balanced_accuracy_score(y[test], pred),
            "chance": 1.0 / len(kept), "classes": len(kept), "dropped": sorted(set(classes) - set(kept)),
            "model": clf.model_name_, "test": int(len(test)), "errors": errors}


def pca_coords(x: np.ndarray, dim: int = 64) -> np.ndarray:
    """(n, dim) coordinates of descriptors x (n, D): centred, the top `dim` principal directions, one scale
    making the mean squared norm 1."""
    xc = x - x.mean(0)
    y = xc @ np.linalg.svd(xc, full_matrices=False)[2][:dim].T
    return y / np.sqrt((y ** 2).sum(1).mean())


def pixel_pca(P: np.ndarray, dim: int = 64) -> np.ndarray:
    """`pca_coords` of uint8 images P (n, D) (the geometry space's PCA on pixels alone, as it was before HOG)."""
    return pca_coords(P.astype(np.float32) / 255.0, dim)


def silhouettes(cat: Catalog, run: Path, dataset: Path | None = None) -> np.ndarray:
    """(n, 64) PCA coordinates of every asset's ground-truth alpha over all its rendered views
    (the run's training dataset, or `dataset`, another rendering of the same assets)."""
    from assets2vec.checkpoint import load_checkpoint
    from render_core.dataset import RenderedDataset

    ds = RenderedDataset(dataset if dataset is not None else load_checkpoint(run)["dataset"])
    alpha = np.stack([(ds.load(i).alpha.reshape(-1) * 255).round().astype(np.uint8) for i in cat.ids])
    return pixel_pca(alpha)


def mesh_grids(cat: Catalog, run: Path) -> list:
    """Each asset's mesh marked on the geometry space's decoding grid over the same scene box: (R, R, R)
    tensors, 1 in every cell holding one of 80,000 surface points (seeded)."""
    import torch
    import trimesh

    from assets2vec.catalog.geometry import PROFILE_RESOLUTION
    from assets2vec.train import load_run
    from render_core.assets.library import open_library
    from render_core.assets.loaders import load_mesh
    from render_core.assets.mesh import normalize
    from render_core.dataset import RenderedDataset

    model, _, state = load_run(run)
    half = model.grid_sampler.half_size
    ds = RenderedDataset(state["dataset"])
    lib = open_library(ds.header["source_library"])
    by_id = {r.id: r for r in lib.records}
    r = PROFILE_RESOLUTION
    out = []
    for asset_id in cat.ids:
        mesh, _ = normalize(load_mesh(lib.path_of(by_id[asset_id])), ds.config.up_axis)
        pts, _ = trimesh.sample.sample_surface(trimesh.Trimesh(mesh.verts, mesh.faces, process=False), 80_000, seed=0)
        idx = np.clip(((pts + half) / (2 * half) * r).astype(int), 0, r - 1)
        grid = torch.zeros(r, r, r)
        grid[idx[:, 0], idx[:, 1], idx[:, 2]] = 1.0
        out.append(grid)
    return out


def mesh_profiles(cat: Catalog, run: Path) -> np.ndarray:
    """(n, 64) geometry-space coordinates of each asset's mesh (`mesh_grids`) put through `box_profile` and
    `GeometryPCA`: the geometry space of a network that decoded every asset perfectly."""
    import torch

    from assets2vec.catalog.geometry import box_profile

    out = np.stack([(box_profile(g) * 255).round().to(torch.uint8).numpy() for g in mesh_grids(cat, run)])
    return GeometryPCA.fit(out).transform(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="trained run (its catalog is built in a temporary folder)")
    ap.add_argument("--labels", default="5,10,20", help="labels per class")
    ap.add_argument("--repeats", type=int, default=10, help="seeds per cell (the armrest test set is ~40 chairs, so 3 seeds swing a cell by +-5 points)")
    ap.add_argument("--silhouettes", type=Path, default=None, metavar="DATASET",
                    help="take the reference silhouettes from this rendering of the same assets (default: the run's dataset)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    t0 = time.time()
    with temporary_catalog(args.run) as cat:
        spaces = {s: cat.vectors(s) for s in FEATURE_SPACES}
        truth = {a: cat.values(a) for a in SHAPE_ATTRS + TEXTURE_ATTRS}
        family = np.array([str(v) for v in cat.values("family")])
        n = len(cat)
        spaces["silhouettes"] = silhouettes(cat, args.run, args.silhouettes)
        spaces["mesh"] = mesh_profiles(cat, args.run)
    top = max(int(x) for x in args.labels.split(","))
    errors = {}
    table = []
    for attr in SHAPE_ATTRS + TEXTURE_ATTRS:
        has = np.array([v is not None for v in truth[attr]])
        y = np.array([str(v) for v in truth[attr]])[has]
        for per_class in [int(x) for x in args.labels.split(",")]:
            for space, X in spaces.items():
                cells = [c for c in (run_cell(X[has], y, per_class, s, space in STANDARDISED_SPACES, family[has])
                                     for s in range(args.repeats)) if c]
                if not cells:
                    continue
                if space == "geometry" and per_class == top and attr in SHAPE_ATTRS:
                    summed = sum((c["errors"] for c in cells), Counter())
                    errors[attr] = [{"family": f, "true": t, "predicted": p, "count": k} for (f, t, p), k in summed.most_common()]
                row = {"attribute": attr, "kind": "shape" if attr in SHAPE_ATTRS else "texture", "labels_per_class": per_class,
                       "space": space, "assets": int(has.sum()), "classes": cells[0]["classes"], "dropped": cells[0]["dropped"],
                       "chance": round(cells[0]["chance"], 4),
                       "accuracy": round(float(np.mean([c["accuracy"] for c in cells])), 4),
                       "accuracy_std": round(float(np.std([c["accuracy"] for c in cells])), 4),
                       "balanced_accuracy": round(float(np.mean([c["balanced_accuracy"] for c in cells])), 4),
                       "models": sorted({c["model"] for c in cells})}
                table.append(row)
                print(f"{attr:9s} {per_class:>2}/class {space:8s} acc {row['accuracy']:.3f} bal {row['balanced_accuracy']:.3f} "
                      f"chance {row['chance']:.3f} {row['models']}", file=sys.stderr)

    def cell(attr, per_class, space):
        return next((r for r in table if r["attribute"] == attr and r["labels_per_class"] == per_class and r["space"] == space), None)

    shape_ok = {space: {a: cell(a, top, space)["accuracy"] >= 0.95 for a in SHAPE_ATTRS if cell(a, top, space)}
                for space in ("shape", "geometry")}
    leak = {}
    for a in SHAPE_ATTRS + TEXTURE_ATTRS:
        for other in (("texture", "texture_only") if a in SHAPE_ATTRS else ("shape", "geometry")):
            c = cell(a, top, other)
            if c:
                leak[f"{a} from {other}"] = {"space": other, "balanced_accuracy": c["balanced_accuracy"], "chance": c["chance"],
                                             "within_10_points": c["balanced_accuracy"] - c["chance"] <= 0.10}
    res = {"run": str(args.run), "assets": n, "repeats": args.repeats, "seconds": round(time.time() - t0, 1), "table": table,
           "targets": {"shape_attributes_95_from_shape_codes": shape_ok, "cross_space_within_10_points_of_chance": leak},
           "errors": {"space": "geometry", "labels_per_class": top, "repeats": args.repeats, "by_attribute": errors}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
