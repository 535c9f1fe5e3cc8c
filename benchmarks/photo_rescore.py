"""Re-score recorded search-by-photo runs with the photo's familiarity, without fitting again.

`photo_search.py` records, for every photo, the fit's terms (loss, silhouette IoU) and the encoder's
probability. The familiarity (`TrainedEncoder.familiarity`) needs only the crop and the encoder, so a
recorded run can be scored with it in seconds a photo instead of fitting every photo again. This
re-reads each photo the way `Catalog.search_image` does (the run's segmenter, then the encoder), checks
that the probability it gets is the recorded one (the same encoder and segmenter; the largest
difference is reported), adds the familiarity to the row, then:

1. chooses the match rule on the development rows (`--dev`; photos of assets not in the catalog that
   were never fitted, `--dev-unfitted`, count with fit terms that pass, so only the encoder's terms
   can flag them: the share flagged there is a lower bound);
2. applies that rule, fixed, to the test rows (`--test`), and reports them beside the recorded rule.

    .venv/bin/python benchmarks/photo_rescore.py demo/catalog --root demo \\
        --dev benchmarks/results/photo_search_dev.json --dev-unfitted demo/photos_foreign_dev \\
        --test benchmarks/results/photo_search.json benchmarks/results/photo_search_foreign.json \\
        --out benchmarks/results/photo_search_familiarity.json
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("photo_search", Path(__file__).resolve().parent / "photo_search.py")
photo_search = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(photo_search)


def encoder_terms(cat, root: Path, photos: list[str]) -> dict[str, dict]:
    """{photo ("folder/name"): {"probability", "familiarity", "named"}} as a search reads them, or {"error"}."""
    from assets2vec.images import read_image
    from assets2vec.photo import prepare_photo

    _, _, size = cat.model()
    seg, enc = cat.photo_segmenter(), cat.photo_encoder()
    if enc is None or enc.views is None:
        raise SystemExit("the run's photo encoder keeps no reference views: train it again with 'assets2vec photo-encoder RUN --only encoder'")
    out, t0 = {}, time.time()
    for i, photo in enumerate(photos):
        folder, name = photo.split("/")
        path = root / folder / "photos" / f"{name}.png"
        try:  # the photo's name as photo_search.py passed it: it seeds the segmentation's GrabCut
            prepared = prepare_photo(read_image(path, str(path)), size, name=str(path), segmenter=seg)
        except ValueError as exc:
            out[photo] = {"error": str(exc)}
            continue
        p, familiarity = enc.read(prepared.image)  # as a search reads it
        top = int(p.argmax())
        out[photo] = {"probability": float(p[top]), "familiarity": familiarity, "named": enc.asset_ids[top]}
        if (i + 1) % 30 == 0:
            rate = (i + 1) / (time.time() - t0)
            print(f"  {i + 1}/{len(photos)} photos, {rate:.1f}/s, ETA {(len(photos) - i - 1) / rate:.0f} s", flush=True)
    return out


def unfitted_rows(folder: Path, catalog_ids: set[str]) -> list[dict]:
    """Rows for the photos of a folder that was never searched: fit terms that pass any rule."""
    rows = []
    for line in (folder / "photos.jsonl").read_text().splitlines():
        e = json.loads(line)
        rows.append({"photo": f"{folder.name}/{e['asset_id']}__{e['j']}", "setting": e["setting"], "asset": e["asset_id"],
                     "in_catalog": e["asset_id"] in catalog_ids, "unfitted": True, "confidence": {"loss": 0.0, "iou": 1.0}})
    return rows


def rescore(rows: list[dict], rule) -> list[dict]:
    """The rows with `match` as `rule` decides it from their recorded terms and familiarity."""
    from types import SimpleNamespace

    out = copy.deepcopy(rows)
    for r in out:
        if "error" in r:
            continue
        c = r["confidence"]
        fit = SimpleNamespace(loss=c["loss"], iou=c["iou"])
        named = r["answer"][0] if r.get("answer") else r.get("asset_named")
        r["match"] = named if rule(fit, c.get("probability"), c.get("familiarity")) else None
    return out


def unfitted_flagged(rows: list[dict]) -> dict:
    """{folder: {setting: share flagged}} of the never-fitted rows, by the encoder's terms alone."""
    from collections import defaultdict

    g = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("unfitted") and "error" not in r:
            g[r["photo"].split("/")[0]][r["setting"]].append(r["match"] is None)
    return {f: {st: round(sum(v) / len(v), 4) for st, v in sorted(d.items())} for f, d in sorted(g.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--root", type=Path, default=Path("demo"), help="the folder that holds the photo folders the rows name")
    ap.add_argument("--dev", type=Path, nargs="+", required=True, help="photo_search.py results of development photos")
    ap.add_argument("--dev-unfitted", type=Path, nargs="*", default=[], help="development photo folders never searched")
    ap.add_argument("--test", type=Path, nargs="+", required=True, help="photo_search.py results of test photos")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from assets2vec import Catalog
    from assets2vec.photo_fit import ENCODER_RULE_NO_FAMILIARITY, MatchRule
    from render_core.artifacts import atomic_write_json

    dev = [r for f in args.dev for r in json.loads(f.read_text())["rows"]]
    test = [r for f in args.test for r in json.loads(f.read_text())["rows"]]
    with Catalog.open(args.catalog, device="cpu") as cat:
        dev += [r for folder in args.dev_unfitted for r in unfitted_rows(folder, set(cat.ids))]
        photos = [r["photo"] for r in dev + test if "error" not in r]
        print(f"reading {len(photos)} photos as a search does", flush=True)
        terms = encoder_terms(cat, args.root, photos)
    drift, renamed = [], 0
    for r in dev + test:
        t = terms.get(r["photo"])
        if t is None or "error" in r:
            continue
        if "error" in t:
            r["error"] = t["error"]
            continue
        recorded = r["confidence"].get("probability")
        if recorded is not None:
            drift.append(abs(recorded - t["probability"]))
        r["confidence"].update(probability=t["probability"], familiarity=round(t["familiarity"], 4))
        r["asset_named"] = t["named"]
        renamed += bool(r.get("answer")) and r["answer"][0] != t["named"]
    print(f"probability against the recorded runs: largest difference {max(drift):.2e}, median {sorted(drift)[len(drift) // 2]:.2e} "
          f"over {len(drift)} photos; {renamed} photos name another asset than the recorded search did")
    chosen = photo_search.choose_rule(dev)
    rule = MatchRule(**{k: chosen[k] for k in ("max_loss", "min_iou", "min_probability", "min_familiarity")})
    print(f"rule chosen on the development photos: {rule.describe()} (flags {chosen['flagged']:.1%} of their "
          f"not-in-catalog photos, {chosen['wrongly_flagged']:.1%} of the others)")
    out = {"catalog": str(args.catalog), "dev": [str(f) for f in args.dev], "dev_unfitted": [str(f) for f in args.dev_unfitted],
           "test": [str(f) for f in args.test], "probability_drift_max": max(drift), "renamed": renamed, "rule": chosen,
           "test_with_rule": photo_search.summarise(rescore(test, rule)),
           "test_with_recorded_rule": photo_search.summarise(rescore(test, ENCODER_RULE_NO_FAMILIARITY)),
           "dev_unfitted_flagged": unfitted_flagged(rescore(dev, rule)),
           "rows": rescore(dev + test, rule)}
    print(f"development photos never fitted, flagged by the encoder's terms alone: {out['dev_unfitted_flagged']}")
    for key in ("test_with_recorded_rule", "test_with_rule"):
        print(key)
        for k, v in out[key].items():
            print(f"  {k}: {json.dumps(v)}")
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
