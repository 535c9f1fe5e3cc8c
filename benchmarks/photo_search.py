"""Which catalog asset is in this photo: search by photo on photo folders, scored against the truth.

    .venv/bin/python benchmarks/photo_search.py CATALOG PHOTOS [PHOTOS ...] [--limit N] [--out FILE] [--box]

PHOTOS are folders written by benchmarks/blender_photos.py (a second renderer: Blender Cycles, any
camera, three settings) or benchmarks/raster_photos.py (ours, for choosing settings only). A photo
whose asset is in the catalog should be named: `top1` is the product's answer (`match`, or the asset
that explained the photo best when the answer was "no match"), `top5` whether the asset is among the
answer, the runner-up and the nearest assets to the fitted codes; with a photo encoder in the run,
`proposal_recall` whether the asset was among those it proposed. A photo of an asset that is not in
the catalog should be flagged ("no asset in the catalog matches"). Also scored: the segmentation
against the renderer's own mask, and the seconds per photo (the photo bank is built before the first
photo and timed apart). With `--box` every photo comes with a box around its object, drawn as a user
draws one (`drawn_box`), as `--box` or the app's drawn box give it. Writes the per-photo rows and the
summary to --out (default benchmarks/results/photo_search.json), an overlay sheet beside it, and
prints the summary last.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def ranked_answer(r: dict) -> list[str]:
    """The answer as a ranked list: with a photo encoder, its proposals; else the named asset, its
    runner-up, then the nearest to the fitted codes."""
    if r["proposals"]:
        return list(r["proposals"])
    out = []
    for i in [r["asset"], r["runner_up"]] + [h["id"] for h in r["neighbours"]]:
        if i is not None and i not in out:
            out.append(i)
    return out


def drawn_box(truth, name: str) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the box a user draws around the object of a photo whose true mask is `truth`
    (H, W): the mask's box with each side moved out by 2-12 % of the box's size, drawn from a generator
    seeded by the photo's `name` (every run draws the same boxes)."""
    import numpy as np

    h, w = truth.shape
    ys, xs = np.nonzero(truth)
    bw, bh = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
    m = np.random.default_rng(zlib.crc32(name.encode())).uniform(0.02, 0.12, 4)
    return (max(0, int(xs.min() - m[0] * bw)), max(0, int(ys.min() - m[1] * bh)),
            min(w, int(np.ceil(xs.max() + 1 + m[2] * bw))), min(h, int(np.ceil(ys.max() + 1 + m[3] * bh))))


def summarise(rows: list[dict]) -> dict:
    groups = defaultdict(list)
    for row in rows:
        groups[(row["setting"], row["in_catalog"])].append(row)
    out = {}
    for (setting, inside), g in sorted(groups.items()):
        key = f"{setting}/{'in' if inside else 'not-in'}-catalog"
        ok = [x for x in g if "error" not in x]
        s = {"photos": len(g), "errors": len(g) - len(ok)}
        if ok:
            s["seconds_mean"] = round(sum(x["seconds"] for x in ok) / len(ok), 2)
            s["seconds_max"] = round(max(x["seconds"] for x in ok), 2)
            s["mask_iou_mean"] = round(sum(x["mask_iou"] for x in ok) / len(ok), 3)
        if inside:
            s["top1"] = round(sum(x.get("top1", False) for x in g) / len(g), 4)
            s["top5"] = round(sum(x.get("top5", False) for x in g) / len(g), 4)
            s["wrongly_flagged"] = round(sum(x.get("match") is None for x in ok) / max(1, len(ok)), 4)
            if any(x.get("proposed") is not None for x in ok):  # the run has a photo encoder
                s["proposal_recall"] = round(sum(bool(x.get("proposed")) for x in ok) / max(1, len(ok)), 4)
        else:
            s["flagged"] = round(sum(x.get("match") is None for x in ok) / max(1, len(ok)), 4)
        out[key] = s
    # Photos not in the catalog from several folders (our generator's near misses, meshes made by
    # others) are flagged at different rates: each folder's share too.
    folders = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if not row["in_catalog"] and "error" not in row:
            folders[row["photo"].split("/")[0]][row["setting"]].append(row.get("match") is None)
    if len(folders) > 1:
        out["flagged_by_folder"] = {f: {st: round(sum(v) / len(v), 4) for st, v in sorted(g.items())} for f, g in sorted(folders.items())}
    return out


def choose_rule(rows: list[dict], max_wrongly_flagged: float = 0.05) -> dict:
    """The match rule's thresholds (max fit loss, min silhouette IoU and, with a photo encoder, min
    probability and min familiarity) that flag the most photos of assets not in the catalog while
    flagging at most `max_wrongly_flagged` of those that are. Run on development photos only (our own
    renders, or the seed-0 Blender photos): the test photos never choose anything."""
    import numpy as np

    ok = [r for r in rows if "error" not in r]
    inside = np.array([r["in_catalog"] for r in ok])
    if not inside.any() or inside.all():
        raise SystemExit("--choose-rule needs photos of assets in the catalog and of assets not in it")
    losses = np.array([r["confidence"]["loss"] for r in ok])
    ious = np.array([r["confidence"]["iou"] for r in ok])
    probs = np.array([r["confidence"].get("probability") or 0.0 for r in ok])
    fams = np.array([-1.0 if r["confidence"].get("familiarity") is None else r["confidence"]["familiarity"] for r in ok])
    grid = lambda v, lo, n=41: np.unique(np.concatenate([np.quantile(v, np.linspace(0, 1, n)), [lo]]))  # noqa: E731
    L, I, P = np.meshgrid(grid(losses, np.inf), grid(ious, 0.0), grid(probs, 0.0), indexing="ij")
    base = ((losses[None] <= L.reshape(-1, 1)) & (ious[None] >= I.reshape(-1, 1)) & (probs[None] >= P.reshape(-1, 1)))
    best = (-1.0, None)
    for f in grid(fams, -1.0):
        matched = base & (fams[None] >= f)
        wrong = (~matched[:, inside]).mean(1)
        caught = (~matched[:, ~inside]).mean(1)
        score = np.where(wrong <= max_wrongly_flagged, caught, -1.0)
        k = int(np.argmax(score))
        if score[k] > best[0]:
            best = (float(score[k]), {"max_loss": float(L.flat[k]), "min_iou": float(I.flat[k]), "min_probability": float(P.flat[k]),
                                      "min_familiarity": float(f), "flagged": float(caught[k]), "wrongly_flagged": float(wrong[k])})
    if best[1] is None:
        raise SystemExit(f"no thresholds flag at most {max_wrongly_flagged:.0%} of the in-catalog photos")
    return best[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("catalog", type=Path)
    ap.add_argument("photos", type=Path, nargs="+")
    ap.add_argument("--limit", type=int, default=None, help="first N photos of each folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "photo_search.json")
    ap.add_argument("--sheet", type=int, default=32, help="overlays in the picture beside --out")
    ap.add_argument("--choose-rule", action="store_true", help="also choose the match rule's thresholds on these photos "
                    "(photos from our own renderer only)")
    ap.add_argument("--box", action="store_true", help="give each photo a box around its object, as a user draws one")
    args = ap.parse_args()

    import numpy as np
    from PIL import Image

    from assets2vec import Catalog
    from render_core.artifacts import atomic_write_bytes, atomic_write_json
    from render_core.contact_sheet import contact_sheet

    rows, sheet, captions = [], [], []
    with Catalog.open(args.catalog) as cat:
        ids = set(cat.ids)
        t = time.time()
        cat.photo_bank()
        bank_seconds = round(time.time() - t, 1)
        for folder in args.photos:
            header = json.loads((folder / "artifact.json").read_text())
            entries = [json.loads(x) for x in (folder / "photos.jsonl").read_text().splitlines() if x.strip()]
            for e in entries[: args.limit]:
                name = f"{e['asset_id']}__{e['j']}"
                row = {"photo": f"{folder.name}/{name}", "renderer": header.get("renderer"), "setting": e["setting"],
                       "asset": e["asset_id"], "in_catalog": e["asset_id"] in ids}
                truth = np.asarray(Image.open(folder / "masks" / f"{name}.png")) > 127
                box = drawn_box(truth, name) if args.box else None
                if box is not None:
                    row["box"] = box
                try:
                    r = cat.search_image(folder / "photos" / f"{name}.png", k=5, box=box)
                except ValueError as exc:  # a photo the product refuses counts as a miss, and is reported
                    row["error"] = str(exc)
                    rows.append(row)
                    print(f"{row['photo']}: {exc}", flush=True)
                    continue
                answer = ranked_answer(r)
                found = r["mask"]
                row.update(match=r["match"], answer=answer[:5], top1=answer[0] == e["asset_id"], top5=e["asset_id"] in answer[:5],
                           confidence=r["confidence"], seconds=r["seconds"], mask_source=r["mask_source"],
                           proposals=r["proposals"], proposed=None if r["proposals"] is None else e["asset_id"] in r["proposals"],
                           mask_iou=round(float((found & truth).sum() / max(1, (found | truth).sum())), 4))
                rows.append(row)
                print(f"{row['photo']:<40} {row['setting']:<16} {'in ' if row['in_catalog'] else 'out'} -> "
                      f"{r['match'] or 'NO MATCH'} ({answer[0]}) {'OK' if row['top1'] else '--'} "
                      f"iou {r['confidence']['iou']:.2f} loss {r['confidence']['loss']:.4f} {r['seconds']:.1f}s", flush=True)
                if len(sheet) < args.sheet:
                    sheet.append(np.asarray(Image.fromarray(r["overlay"]).resize((128, 128))))
                    right = row["top1"] if row["in_catalog"] else row["match"] is None  # named, or rightly "no match"
                    captions.append(f"{'OK' if right else 'X'} {e['setting']}")
    summary = {"catalog": str(args.catalog), "folders": [str(f) for f in args.photos], "box": args.box, "bank_seconds": bank_seconds,
               "summary": summarise(rows)}
    if args.choose_rule:
        summary["rule"] = choose_rule(rows)
    atomic_write_json(args.out, {**summary, "rows": rows})
    if sheet:
        buf = io.BytesIO()
        Image.fromarray(contact_sheet(sheet, captions)).save(buf, format="PNG")
        atomic_write_bytes(args.out.with_suffix(".png"), buf.getvalue())
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
