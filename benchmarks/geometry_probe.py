"""Probe: would another geometry descriptor or another classifier reach 95 % on the fine shape attributes?

Decodes every shape code of RUN on the geometry space's 48³ grid once, then scores, with
20 labels per class over `--repeats` seeds exactly as `benchmarks/tagging.py` does:
- descriptors of the same object-box cube: the product's (the three max-projections and six
  depth maps at 32², described by their pixels and HOG), the three silhouettes alone with their
  HOG (the product before depth maps), their pixels alone at 24² (the product before HOG) and at
  32², and at 24² banded projections (each axis cut in two, each half projected), mean
  projections (thickness), and the projections under a square root or binarised at 0.2, each
  through a PCA of its pixels;
- classifiers on the product's descriptor, one at a time instead of chosen by
  cross-validation: shrinkage LDA, random forests, extra trees, RBF SVMs and logistic
  regressions with larger C, and label spreading over a k-NN graph of all assets
  (transductive: the unlabelled assets shape the graph);
- legs within one family (sofas: feet or plinth), to see whether knowing the family would help;
- how often the product's legs classifier is wrong about a sofa, by its number of seats.

    .venv/bin/python benchmarks/geometry_probe.py benchmarks/runs/fit400      # 7-8 min here, beside a training run
    .venv/bin/python benchmarks/geometry_probe.py benchmarks/runs/fit400 --meshes --out benchmarks/results/geometry_probe_meshes.json

`--meshes` puts each asset's own mesh (surface points marked on the same grid, as the tagging
benchmark's mesh reference) through the same descriptors: what each would give if the network
decoded perfectly, which is how the product's descriptor was chosen.

Prints a table; writes benchmarks/results/geometry_probe.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import SVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec.catalog.geometry import PROFILE_RESOLUTION, GeometryPCA, box_cube, box_profile, opacity_grid, profile_parts  # noqa: E402
from assets2vec.catalog.tagging import AttributeClassifier  # noqa: E402
from assets2vec.model_components.occupancy import cell_centres  # noqa: E402
from assets2vec.train import load_run  # noqa: E402
from benchmarks.tagging import draw, mesh_grids, pca_coords, pixel_pca, run_cell, temporary_catalog  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "geometry_probe.json"
ATTRS = ("legs", "base", "armrests", "family")


def opacity_grids(run: Path, shape: np.ndarray) -> list[torch.Tensor]:
    """Each shape code's opacity on the geometry space's 48³ grid, decoded once for every descriptor."""
    model, _, _ = load_run(run)
    r, h = PROFILE_RESOLUTION, model.grid_sampler.half_size
    pts = cell_centres(r, h, "cpu")
    with torch.no_grad():
        return [opacity_grid(model, code, pts, 2 * h / r).view(r, r, r) for code in torch.as_tensor(shape)]


def projections(c: torch.Tensor, halves: bool = False, reduce: str = "amax") -> torch.Tensor:
    parts = [getattr(c, reduce)(a).reshape(-1) for a in range(3)]
    if halves:
        s = c.shape[0] // 2
        for a in range(3):
            for sl in (slice(0, s), slice(s, None)):
                idx = [slice(None)] * 3
                idx[a] = sl
                parts.append(c[tuple(idx)].amax(a).reshape(-1))
    return torch.cat(parts)


def product(P: np.ndarray) -> np.ndarray:
    return GeometryPCA.fit(P).transform(P)


def silhouettes_only(P: np.ndarray) -> np.ndarray:
    """The product's recipe on its silhouettes' pixels and HOG alone (the geometry space before depth maps)."""
    return pca_coords(np.concatenate([p / np.linalg.norm(p, axis=1).mean() for p in profile_parts(P)[:2]], 1))


# name: (descriptor of the opacity grid, in [0, 1], and how it becomes a vector)
DESCRIPTORS = {
    "product: silhouettes + depth maps, pixels + HOG, 32²": (box_profile, product),
    "silhouettes, pixels + HOG, 32² (before depth maps)": (box_profile, silhouettes_only),
    "before: pixels, 24²": (lambda g: projections(box_cube(g, 24)), pixel_pca),
    "pixels, 32²": (lambda g: projections(box_cube(g)), pixel_pca),
    "pixels 24² + banded halves": (lambda g: projections(box_cube(g, 24), halves=True), pixel_pca),
    "pixels 24² + mean projections": (lambda g: torch.cat([projections(box_cube(g, 24)), projections(box_cube(g, 24), reduce="mean")]), pixel_pca),
    "pixels 24², square root": (lambda g: projections(box_cube(g, 24)) ** 0.5, pixel_pca),
    "pixels 24², binarised at 0.2": (lambda g: (projections(box_cube(g, 24)) >= 0.2).float(), pixel_pca),
}

CLASSIFIERS = {
    "shrinkage LDA": lambda s: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
    "random forest (500)": lambda s: RandomForestClassifier(500, random_state=s),
    "extra trees (500)": lambda s: ExtraTreesClassifier(500, random_state=s),
    "RBF SVM, C=100": lambda s: SVC(C=100),
    "logistic, C=100": lambda s: LogisticRegression(C=100, max_iter=5000),
}


def one_classifier(make, X: np.ndarray, y: np.ndarray, per_class: int, seed: int) -> float:
    train, test, _ = draw(y, per_class, seed)
    return accuracy_score(y[test], make(seed).fit(X[train], y[train]).predict(X[test]))


def label_spreading(X: np.ndarray, y: np.ndarray, per_class: int, seed: int, k: int = 10) -> float:
    train, test, kept = draw(y, per_class, seed)
    labels = np.full(len(y), -1)
    labels[train] = np.searchsorted(kept, y[train])
    model = LabelSpreading(kernel="knn", n_neighbors=k, alpha=0.2, max_iter=200).fit(X, labels)
    return accuracy_score(y[test], kept[model.transduction_[test]])


def sofa_legs_by_seats(X: np.ndarray, truth: dict, per_class: int, seeds) -> list[dict]:
    """The product's legs classifier (all families, as the benchmark draws it): how often a sofa's legs are
    wrong, by its number of seats (a longer sofa is lower once normalised, so its feet are a thinner gap)."""
    y, family, seats = truth["legs"], truth["family"], truth["seats"]
    tested: dict = {}
    for s in seeds:
        train, test, _ = draw(y, per_class, s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = AttributeClassifier(random_state=s, standardize=False).fit(X[train], y[train]).predict(X[test])
        for i, p in zip(test, pred):
            if family[i] == "sofa":
                cell = tested.setdefault((y[i], seats[i]), [0, 0])
                cell[0] += 1
                cell[1] += int(p != y[i])
    return [{"legs": k[0], "seats": k[1], "tested": v[0], "wrong": v[1]} for k, v in sorted(tested.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--labels", type=int, default=20, help="labels per class")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--meshes", action="store_true",
                    help="describe each asset's own mesh (marked on the same grid) instead of what its code decodes to")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    t0 = time.time()
    with temporary_catalog(args.run, decoded=False) as cat:
        shape, _ = cat.codes(cat.ids)
        truth = {a: np.array([str(v) for v in cat.values(a)]) for a in ATTRS + ("seats",)}
        grids = mesh_grids(cat, args.run) if args.meshes else opacity_grids(args.run, shape)
    n, seeds = args.labels, range(args.repeats)
    rows = []

    def score(kind, name, X, fn, attrs=ATTRS, mask=None):
        acc = {}
        for a in attrs:
            has = truth[a] != "None" if mask is None else mask
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                acc[a] = round(100 * float(np.mean([fn(X[has], truth[a][has], n, s) for s in seeds])), 1)
        rows.append({"kind": kind, "name": name, **acc})
        print(f"{kind:10s} {name:28s} " + "  ".join(f"{a} {v:5.1f}" for a, v in acc.items()), file=sys.stderr, flush=True)

    ours = None
    for name, (fn, vectors) in DESCRIPTORS.items():
        P = np.stack([(fn(g) * 255).round().clamp(0, 255).numpy().astype(np.uint8) for g in grids])
        X = vectors(P)
        ours = X if ours is None else ours
        score("descriptor", name, X, lambda X, y, k, s: run_cell(X, y, k, s, standardize=False)["accuracy"])
    for name, make in CLASSIFIERS.items():
        score("classifier", name, ours, lambda X, y, k, s, make=make: one_classifier(make, X, y, k, s))
    score("classifier", "label spreading (k-NN 10)", ours, label_spreading)
    sofas = truth["family"] == "sofa"
    score("one family", "sofas: legs (feet or plinth)", ours,
          lambda X, y, k, s: run_cell(X, y, k, s, standardize=False)["accuracy"], attrs=("legs",), mask=sofas)
    by_seats = sofa_legs_by_seats(ours, truth, n, seeds)
    print(f"sofa legs by seats: {by_seats}", file=sys.stderr)
    res = {"run": str(args.run), "source": "meshes" if args.meshes else "decoded", "labels_per_class": n, "repeats": args.repeats, "seconds": round(time.time() - t0, 1), "rows": rows,
           "sofa_legs_by_seats": by_seats}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
