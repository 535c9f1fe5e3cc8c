"""`assets2vec catalog build|info|map`: create or update a catalog, describe it, draw its latent map."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device

from assets2vec.catalog.spaces import FEATURE_SPACES


def add_parser(sub) -> None:
    p = sub.add_parser("catalog", help="build or update a catalog from a trained run; describe it; draw latent maps")
    csub = p.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)

    b = csub.add_parser(
        "build", help="create or update CATALOG from RUN",
        description="Store RUN's assets (metadata, attributes, thumbnails, latent codes) in CATALOG's SQLite database "
        "and write FAISS indexes for the shape, texture and joint spaces, and for three spaces derived through the network: geometry (each shape code's "
        "density seen as silhouettes and depth maps of its own box, reduced to 64 numbers; best for fine shape attributes such as the number of legs), "
        "appearance (a histogram of the colours on the asset's surface; best for colour) and texture_only (the texture space less the mean "
        "texture of the 20 assets nearest in the geometry space; for search and tagging by texture alone). Rerun after 'assets2vec embed' to add only the new assets; tags and predictions are kept.")
    b.add_argument("run", type=Path, metavar="RUN", help="trained run folder")
    b.add_argument("catalog", type=Path, metavar="CATALOG", help="catalog folder (created if missing)")
    b.add_argument("--no-decoded", action="store_true",
                   help="skip the geometry, appearance and texture_only spaces (they cost ~190 ms per new asset on 2 CPU cores)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(b, "the geometry and appearance are decoded")
    b.set_defaults(func=run_build)

    i = csub.add_parser("info", help="describe a catalog as JSON", description="Counts, spaces, index kinds, attributes, classifiers.")
    i.add_argument("catalog", type=Path, metavar="CATALOG")
    i.set_defaults(func=run_info)

    m = csub.add_parser("map", help="draw a 2D map of a latent space (PNG)",
                        description="Project a space to 2D (PCA, or t-SNE up to 20,000 assets) and colour it by an attribute or tag.")
    m.add_argument("catalog", type=Path, metavar="CATALOG")
    m.add_argument("out", type=Path, metavar="OUT.png")
    m.add_argument("--space", choices=FEATURE_SPACES, default="shape", help="space to map (default: shape)")
    m.add_argument("--method", choices=("pca", "tsne"), default="tsne", help="projection (default: tsne)")
    m.add_argument("--color-by", default="family", help="attribute or tag to colour by (default: family)")
    m.add_argument("--sparse", type=int, default=0, metavar="N", help="also mark the N sparsest regions (default: 0)")
    m.add_argument("--seed", type=int, default=0, help="seed of the projection (default: 0)")
    m.set_defaults(func=run_map)


def run_build(args: argparse.Namespace) -> int:
    from assets2vec.catalog.build import build_catalog

    summary = build_catalog(args.run, args.catalog, progress=not args.quiet, decoded=not args.no_decoded,
                            log=lambda m: print(m, file=sys.stderr), device=resolve_device(args.device))
    print(json.dumps(summary))
    return 0


def run_info(args: argparse.Namespace) -> int:
    from assets2vec import Catalog

    with Catalog.open(args.catalog) as cat:
        s = cat.store
        print(json.dumps({
            "catalog": str(args.catalog), "assets": len(cat), "run": s.get_meta("run"), "checkpoint": s.get_meta("checkpoint"),
            "dims": cat.transform.dims, "indexes": {sp: cat.index(sp).built_kind for sp in FEATURE_SPACES if sp in cat.spaces},
            "attributes": s.attribute_names(),
            "classifiers": {a: s.classifier(a) for a in s.attribute_names() if s.classifier(a)},
        }, indent=2))
    return 0


def run_map(args: argparse.Namespace) -> int:
    from assets2vec import Catalog

    if args.sparse < 0:
        raise ValueError(f"--sparse must be >= 0, got {args.sparse}")
    with Catalog.open(args.catalog) as cat:
        cat.map(args.space, args.method, args.color_by, args.out, seed=args.seed, sparse=args.sparse)
    print(f"wrote {args.out}")
    return 0
