"""`assets2vec tag CATALOG --attribute NAME --labels LABELS.csv`: few-shot attribute tagging of every asset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assets2vec.catalog.spaces import FEATURE_SPACES
from assets2vec.catalog.tagging import CANDIDATES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tag", help="train an attribute classifier from a few labels and tag every asset",
        description="Store LABELS.csv (columns id,value) as manual tags of NAME, choose a scikit-learn classifier by "
        "cross-validation (logistic regression, linear SVM, RBF SVM, k-NN), predict NAME with a confidence for every "
        "asset, and list the unlabelled assets the classifier is least sure about: the best ones to label next.")
    p.add_argument("catalog", type=Path, metavar="CATALOG")
    p.add_argument("--attribute", required=True, metavar="NAME", help="attribute to predict, e.g. swivel")
    p.add_argument("--labels", type=Path, metavar="LABELS.csv", help="CSV with columns id,value (or id,NAME); "
                   "without it, the manual tags already stored train the classifier")
    p.add_argument("--space", choices=FEATURE_SPACES, default="joint", help="space to classify in (default: joint; geometry is best for fine shape attributes, appearance for colour, texture_only for texture attributes that must not follow the shape)")
    p.add_argument("--where", default=None, help="predict only for these assets, e.g. \"family=chair\"")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help=f"models to choose from (default: {','.join(CANDIDATES)})")
    p.add_argument("--suggest", type=int, default=10, help="assets to suggest labelling next (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds (default: 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assets2vec import Catalog

    candidates = tuple(c.strip() for c in args.candidates.split(",") if c.strip())
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or not candidates:
        raise ValueError(f"--candidates: unknown {unknown}; choose from {', '.join(CANDIDATES)}")
    with Catalog.open(args.catalog) as cat:
        rep = cat.tag(args.attribute, args.labels, args.space, args.where, candidates, args.seed, args.suggest)
    if args.json:
        print(json.dumps(rep))
        return 0
    print(f"{rep['attribute']}: {rep['model']} on {rep['space']} codes, cross-validated accuracy {rep['cv_accuracy']:.3f} "
          f"from {rep['n_labels']} labels {rep['labels_per_class']}")
    print("  candidates: " + ", ".join(f"{k} {v:.3f}" for k, v in rep["candidates"].items()))
    print(f"  predicted for {rep['n_predicted']} assets: " + ", ".join(f"{k} {v}" for k, v in rep["predicted_counts"].items()))
    print("  label next (least certain first):")
    for s in rep["label_next"]:
        print(f"    {s['id']:<28} predicted {s['predicted']} ({s['confidence']:.2f})")
    return 0
