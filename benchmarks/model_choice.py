"""How `AttributeClassifier` picks its model, against what each candidate would have scored.

On one trained run's catalog, for each shape attribute in the geometry space (20 labels per
class by default, 10 seeds, the same draws as benchmarks/tagging.py): every candidate's
cross-validated score (mean and standard error over the repeated folds, best grid point) and
its held-out accuracy. Then the held-out accuracy each selection rule would reach:

- `product`: what `AttributeClassifier` does (`choose_candidate`: the shrinkage LDA when within one
  standard error of the highest mean, else the highest mean; since 2026-12-03);
- `best`: the highest cross-validated mean, ties to the earlier candidate (the product's rule before 2026-12-03);
- `best_fewest_params`: the highest mean, ties to the candidate with the smallest grid (a grid's
  best point is the maximum of several noisy scores, so it reads optimistically against a
  candidate with one setting);
- `one_se`: the candidate with the smallest grid among those within one standard error of the best;
- `oracle`: the best held-out candidate (what no rule can reach; the ceiling);
- each candidate alone.

    .venv/bin/python benchmarks/model_choice.py benchmarks/runs/fit400fei --out benchmarks/results/model_choice_fit400fei.json

Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assets2vec.catalog.spaces import STANDARDISED_SPACES  # noqa: E402
from assets2vec.catalog.tagging import CANDIDATES, CV_REPEATS, AttributeClassifier, _grid, candidate_pipeline, choose_candidate, cv_plan  # noqa: E402
from benchmarks.tagging import SHAPE_ATTRS, draw, temporary_catalog  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "model_choice.json"


def grid_size(name: str) -> int:
    g = _grid(name, 100, 0)
    return int(np.prod([len(v) for k, v in g.items() if k != "clf"] or [1]))


def score_candidates(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int, standardize: bool) -> dict:
    """Per candidate: cv mean, cv standard error (over the folds), held-out accuracy of the refit best grid point
    (the same folds, grids and pipeline as `AttributeClassifier`; SVMs not Platt-scaled)."""
    folds, min_train, candidates = cv_plan(y[train], AttributeClassifier().cv, CANDIDATES)
    chooser = RepeatedStratifiedKFold(n_splits=folds, n_repeats=CV_REPEATS, random_state=seed)
    pipe = candidate_pipeline(standardize)
    out = {}
    for name in candidates:
        search = GridSearchCV(pipe, _grid(name, min_train, seed), cv=chooser, scoring="accuracy").fit(X[train], y[train])
        i = search.best_index_
        se = float(search.cv_results_["std_test_score"][i]) / np.sqrt(folds * CV_REPEATS)
        out[name] = {"cv": float(search.best_score_), "se": se, "test": float((search.predict(X[test]) == y[test]).mean()),
                     "grid": grid_size(name)}
    return out


def choose(scores: dict, rule: str) -> str:
    names = list(scores)
    if rule == "product":
        return choose_candidate({n: (scores[n]["cv"], scores[n]["se"]) for n in names})
    if rule == "best":
        return max(names, key=lambda n: (scores[n]["cv"], -names.index(n)))
    if rule == "best_fewest_params":
        return max(names, key=lambda n: (scores[n]["cv"], -scores[n]["grid"], -names.index(n)))
    if rule == "one_se":
        top = max(names, key=lambda n: scores[n]["cv"])
        near = [n for n in names if scores[n]["cv"] >= scores[top]["cv"] - scores[top]["se"] - 1e-12]
        return min(near, key=lambda n: (scores[n]["grid"], -scores[n]["cv"], names.index(n)))
    if rule == "oracle":
        return max(names, key=lambda n: scores[n]["test"])
    return rule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--labels", type=int, default=20, help="labels per class")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--space", default="geometry")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    t0 = time.time()
    with temporary_catalog(args.run) as cat:
        X = cat.vectors(args.space)
        truth = {a: cat.values(a) for a in SHAPE_ATTRS}
    standardize = args.space in STANDARDISED_SPACES  # as the product does
    rules = ["product", "best", "best_fewest_params", "one_se", "oracle", *CANDIDATES]
    table, cells = {}, []
    for attr in SHAPE_ATTRS:
        has = np.array([v is not None for v in truth[attr]])
        y = np.array([str(v) for v in truth[attr]])[has]
        Xa = X[has]
        acc = {r: [] for r in rules}
        for seed in range(args.repeats):
            train, test, kept = draw(y, args.labels, seed)
            if len(kept) < 2:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = score_candidates(Xa, y, train, test, seed, standardize)
            cells.append({"attribute": attr, "seed": seed, "scores": scores})
            for r in rules:
                pick = choose(scores, r)
                if pick in scores:
                    acc[r].append(scores[pick]["test"])
        table[attr] = {r: round(float(np.mean(v)), 4) for r, v in acc.items() if v}
        print(f"{attr:9s} " + "  ".join(f"{r} {table[attr][r]:.3f}" for r in rules if r in table[attr]), file=sys.stderr)
    res = {"run": str(args.run), "space": args.space, "labels_per_class": args.labels, "repeats": args.repeats,
           "seconds": round(time.time() - t0, 1), "accuracy_by_rule": table, "cells": cells}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({"accuracy_by_rule": table}))


if __name__ == "__main__":
    main()
