"""`assets2vec sparse CATALOG`: where is the library thin, what is around, what to generate there."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device

import numpy as np

from assets2vec.catalog.spaces import SPARSE_SPACES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sparse", help="rank the emptiest regions of a latent space, with bordering assets, previews and proposals",
        description="Find holes inside the library's spread (points between neighbouring assets that are far from "
        "every asset), list the assets around each, sample latent points inside it, render them through the NeRF "
        "(--previews), and for procedural families propose generator parameters for new assets there "
        "(--proposals writes them for 'assets2vec assets generate --from-proposals').")
    p.add_argument("catalog", type=Path, metavar="CATALOG")
    p.add_argument("--space", choices=SPARSE_SPACES, default="shape",
                   help="space to search for gaps (default: shape); geometry: the decoded shapes, where a new asset lands where "
                   "its shape puts it (no latent samples to preview there: --previews shows the assets around each gap)")
    p.add_argument("-n", type=int, default=5, help="number of regions (default: 5)")
    p.add_argument("--within", metavar="ATTRIBUTE", help="look for holes among the assets of each value of this attribute or "
                   "tag separately, e.g. family: a gap among the chairs rather than between a chair and a lamp; proposals "
                   "keep the family")
    p.add_argument("--samples", type=int, default=4, help="latent samples per region (default: 4)")
    p.add_argument("--previews", type=Path, metavar="DIR", help="render each region's samples (in geometry: the assets "
                   "around it) to DIR/region-N.png")
    p.add_argument("--proposals", type=Path, metavar="FILE.json", help="write proposed generator parameters here")
    p.add_argument("--weights", type=Path, metavar="WEIGHTS.csv",
                   help="write sampling weights that favour isolated assets, for 'scenes generate --weights'")
    p.add_argument("--seed", type=int, default=0, help="seed of candidate points and samples (default: 0)")
    p.add_argument("--json", action="store_true", help="print the regions as JSON")
    add_device_argument(p, "the previews are rendered")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assets2vec import Catalog
    from render_core.artifacts import atomic_write_json, atomic_write_text

    if args.n < 1 or args.samples < 0:
        raise ValueError("-n must be at least 1 and --samples at least 0")
    with Catalog.open(args.catalog, device=resolve_device(args.device)) as cat:
        if args.weights:
            weights = cat.coverage_weights(args.space)
            atomic_write_text(args.weights, "id,weight\n" + "".join(f"{a},{w:.10g}\n" for a, w in weights.items()))
        regions = cat.sparse_regions(args.n, args.space, max(args.samples, 1), args.seed, within=args.within)
        out = []
        for r in regions:
            d = r.to_json(cat.ids)
            d["proposals"] = r.extra.get("proposals", [])[: args.samples]
            if args.previews:
                from assets2vec.cli.render_latent_cmd import _save_png

                if "samples" in r.extra:
                    s, t = r.extra["samples"]["shape"], r.extra["samples"]["texture"]
                else:  # the geometry space has no way back to codes: show what surrounds the gap
                    s, t = cat.codes([cat.ids[i] for i in r.border[: max(args.samples, 1)]])
                tiles = [cat.render(s[i], t[i]) for i in range(min(max(args.samples, 1), len(s)))]
                path = args.previews / f"region-{r.rank}.png"
                _save_png(path, np.concatenate(tiles, 1))
                d["preview"] = str(path)
            out.append(d)
    if args.proposals:
        atomic_write_json(args.proposals, {"kind": "proposals", "space": args.space, "seed": args.seed,
                                           "assets": [p for d in out for p in d["proposals"]]})
    if args.json:
        print(json.dumps({"space": args.space, "regions": out}))
        return 0
    for d in out:
        among = f" among {args.within}={d['group']}" if "group" in d else ""
        print(f"region {d['rank']}{among}: score {d['score']:.2f} (empty radius {d['radius']:.3f}); around: {', '.join(d['border'][:4])}")
        if d.get("preview"):
            print(f"  preview: {d['preview']}")
        for p in d["proposals"][:2]:
            print(f"  propose {p['family']}: " + ", ".join(f"{k}={v:g}" for k, v in sorted(p["params"].items())[:6]) + ", ...")
    if args.proposals:
        print(f"proposals: {args.proposals} (generate with 'assets2vec assets generate OUT --from-proposals {args.proposals}')")
    if args.weights:
        print(f"weights: {args.weights} (compose scenes with 'assets2vec scenes generate {args.catalog} OUT --n N --weights {args.weights}')")
    return 0
