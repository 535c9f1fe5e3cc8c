"""`assets2vec demo`: build the demo end to end and say where everything is.

Generates a procedural library, renders it, trains the NeRF on a time budget, evaluates it,
draws pictures from the codes, builds the catalog (with a search by photo) and composes
labelled scenes from it. Every step is resumable: a rerun reuses what is finished.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from assets2vec.devices import add_device_argument


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="build the demo: procedural library -> rendered dataset -> trained run -> catalog -> scenes, with pictures",
        description="Generate the built-in demo library, render it, train the NeRF for --fit-minutes, evaluate "
        "it, render a swap grid and a turntable, build the catalog, search it by photo and compose labelled "
        "scenes; resumable, and reruns reuse finished steps.",
    )
    p.add_argument("--out", type=Path, default=Path("demo"), help="folder for all demo artifacts (default: demo)")
    p.add_argument("--n", type=int, default=120, help="assets in the demo library (default: 120)")
    p.add_argument("--size", type=int, default=64, help="render size (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--fit-minutes", type=float, default=10.0, help="training budget in minutes (default: 10; 0 skips training)")
    add_device_argument(p, "every step runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from render_core.assets.library import open_library
    from render_core.assets.procedural.generate import generate_library
    from render_core.multiview import RenderConfig, render_library
    from render_core.rig import DEFAULT_FLOOR_VIEWS, RigConfig

    from assets2vec.devices import resolve_device

    args.device = resolve_device(args.device)
    t0 = time.time()
    library_dir, dataset_dir, run_dir = args.out / "library", args.out / "dataset", args.out / "run"
    steps = 7 if args.fit_minutes > 0 else 2
    print(f"[1/{steps}] generating {args.n} procedural assets (seed {args.seed}) -> {library_dir}")
    # Regenerating is cheap and byte-identical; a library with other settings is refused by name.
    generate_library(library_dir, args.n, args.seed)
    rig = RigConfig(floor_views=DEFAULT_FLOOR_VIEWS)  # as `assets2vec render` does by default
    print(f"[2/{steps}] rendering {rig.total_views} views ({rig.n_views} on rings, {rig.floor_views} at floor height) "
          f"at {args.size}x{args.size} -> {dataset_dir}")
    report = render_library(open_library(library_dir), dataset_dir, RenderConfig(image_size=args.size, rig=rig, seed=args.seed),
                            device=args.device)
    result, catalog, scenes = None, None, None
    if args.fit_minutes > 0:
        result = _train_and_show(args, dataset_dir, run_dir, steps)
        catalog = _build_catalog(args, run_dir, steps)
        scenes = _scenes(args, steps)
    minutes = (time.time() - t0) / 60
    print()
    print("=" * 72)
    print(f"assets2vec demo finished in {minutes:.1f} min")
    print(f"  library : {library_dir}  ({args.n} assets: chairs, tables, sofas, lamps; OBJ+MTL+PNG, manifest.jsonl)")
    print(f"  dataset : {dataset_dir}  ({report['total_in_dataset']} assets x {rig.total_views} views: RGB, mask, depth, normals, cameras)")
    print(f"  look    : {dataset_dir / 'contact_sheet.png'}")
    if report["failed"]:
        print(f"  failed  : {len(report['failed'])} assets, see {dataset_dir / 'report.json'}")
    if result is not None:
        print(f"  run     : {run_dir}  (one 32-d shape + one 32-d texture code per asset; TensorBoard: "
              f".venv/bin/tensorboard --logdir {run_dir / 'tensorboard'})")
        print(f"  quality : held-out PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f}, mask IoU {result['mask_iou']:.3f}  ({run_dir / 'eval.json'})")
        print(f"  pictures: {args.out / 'swap_grid.png'} (row = shape, column = texture), {args.out / 'turntable.gif'}")
        print(f"  try     : .venv/bin/assets2vec render-latent {run_dir} pca shape --out pca.png")
        print(f"            .venv/bin/assets2vec invert {run_dir} {args.out / 'photo.png'}")
    if catalog is not None:
        c = args.out / "catalog"
        print(f"  catalog : {c}  ({catalog['assets']} assets; SQLite + FAISS indexes: {', '.join(catalog['indexes'])})")
        print(f"  map     : {args.out / 'shape_map.png'} (shape space, t-SNE, by family, sparse regions starred)")
        print(f"  search  : .venv/bin/assets2vec search {c} --like {catalog['first']} --space shape --where \"legs=4\"")
        p = catalog["photo"]
        print(f"            .venv/bin/assets2vec search {c} --image {p['path']} --overlay overlay.png   # a held-out view "
              f"of {p['asset']}: found {p['nearest']} in {p['seconds']} s ({p['overlay']})")
        print(f"            .venv/bin/assets2vec photo-encoder {args.out / 'run'}   # for photos of the real world: "
              f"trains the CNNs that find and name the asset (about 40 min)")
        print(f"  tag     : .venv/bin/assets2vec tag {c} --attribute swivel --labels {args.out / 'labels_swivel.csv'} --space geometry --where family=chair")
        print(f"  gaps    : .venv/bin/assets2vec sparse {c} --previews gaps/ --proposals proposals.json")
        print(f"  python  : from assets2vec import Catalog; cat = Catalog.open('{c}')  (notebooks/02_catalog.ipynb)")
    if scenes is not None:
        sc = args.out / "scenes"
        rate = f"; {scenes['scenes_per_second']} scenes/s" if scenes["scenes_per_second"] else ""
        print(f"  scenes  : {sc}  ({scenes['total_in_folder']} labelled scenes: RGB, depth, instance/semantic masks, boxes{rate})")
        print(f"  labels  : {sc / 'coco.json'} (COCO, pycocotools), picture: {sc / 'preview.png'}")
        print(f"  loop    : .venv/bin/assets2vec weak-spots {args.out / 'catalog'} errors.csv --out weak/   # your model's errors")
        print(f"            .venv/bin/assets2vec scenes generate {args.out / 'catalog'} more/ --n 200 --weights weak/weights.csv")
    print(f"  inspect : .venv/bin/assets2vec info {dataset_dir}")
    if catalog is not None:
        print(f"  app     : .venv/bin/assets2vec app {args.out / 'catalog'}   -> http://127.0.0.1:8501")
    print("=" * 72)
    return 0


def _scenes(args, steps: int) -> dict:
    from assets2vec import Catalog

    out = args.out / "scenes"
    print(f"[7/{steps}] composing 24 labelled scenes from the catalog -> {out}")
    with Catalog.open(args.out / "catalog", device=args.device) as cat:
        return cat.generate_scenes(out, 24, args.seed)


def _build_catalog(args, run_dir: Path, steps: int) -> dict:
    from assets2vec import Catalog
    from assets2vec.catalog.build import build_catalog
    from render_core.artifacts import atomic_write_text

    catalog = args.out / "catalog"
    print(f"[6/{steps}] building the catalog -> {catalog}, and the shape-space map")
    summary = build_catalog(run_dir, catalog, device=args.device)
    with Catalog.open(catalog, device=args.device) as cat:
        cat.map("shape", "tsne", "family", args.out / "shape_map.png", seed=args.seed, sparse=5)
        # A starter labels file from the procedural ground truth: 4 swivel chairs and 4 others.
        chairs = [(i, b) for i, f, b in zip(cat.ids, cat.values("family"), cat.values("base")) if f == "chair"]
        yes = [i for i, b in chairs if b == "swivel"][:4]
        no = [i for i, b in chairs if b != "swivel"][:4]
        atomic_write_text(args.out / "labels_swivel.csv", "id,value\n" + "".join(f"{i},yes\n" for i in yes) + "".join(f"{i},no\n" for i in no))
        summary["first"] = cat.ids[0]
        summary["photo"] = _photo_search(args, cat, run_dir)
    return summary


def _photo_search(args, cat, run_dir: Path) -> dict:
    """A held-out view (never trained on) saved as a 'photo' and searched with: this builds the
    run's inversion bank too, so the app's first image search is quick."""
    from assets2vec.cli.render_latent_cmd import _save_png
    from assets2vec.data.rays import holdout_views
    from assets2vec.run import Run
    from render_core.dataset import RenderedDataset

    run = Run.open(run_dir)
    config, ids = run.config, run.asset_ids
    asset = ids[len(ids) // 2]
    views = RenderedDataset(run.dataset).load(asset)
    photo = args.out / "photo.png"
    _save_png(photo, views.rgb[int(holdout_views(asset, views.n_views, config.n_holdout, config.seed)[0])])
    found = cat.search_image(photo, k=1)
    _save_png(args.out / "photo_overlay.png", found["overlay"])
    named = found["match"] or f"no match (best {found['asset']})"
    return {"path": photo, "asset": asset, "nearest": named, "seconds": found["seconds"],
            "overlay": args.out / "photo_overlay.png"}


def _train_and_show(args, dataset_dir: Path, run_dir: Path, steps: int) -> dict:
    from assets2vec import latent
    from assets2vec.checkpoint import latest_checkpoint
    from assets2vec.cli.render_latent_cmd import _save_png
    from assets2vec.configs import for_device, preset
    from assets2vec.evaluate import evaluate
    from assets2vec.run import EVAL_JSON, Run
    from assets2vec.train import fit
    from render_core.dataset import RenderedDataset

    if latest_checkpoint(run_dir).is_file():
        print(f"[3/{steps}] training: {run_dir} is already trained, reusing it")
    else:
        print(f"[3/{steps}] training the NeRF for {args.fit_minutes:g} min -> {run_dir}")
        config = preset("fast")
        config.seed, config.max_minutes, config.steps = args.seed, args.fit_minutes, 10**6
        fit(dataset_dir, run_dir, for_device(config, args.device), device=args.device)
    eval_path = run_dir / EVAL_JSON
    if eval_path.is_file():
        print(f"[4/{steps}] evaluation: reusing {eval_path}")
        result = json.loads(eval_path.read_text())
    else:
        print(f"[4/{steps}] evaluating on the held-out views -> {eval_path}")
        result = evaluate(run_dir, device=args.device)
    print(f"[5/{steps}] rendering from the codes: swap grid and turntable")
    run = Run.open(run_dir)
    model, run_ids = run.model(args.device), run.asset_ids
    ds = RenderedDataset(dataset_dir)
    # One asset per family for the grid: the first chair, table, sofa and lamp.
    rows, seen = [], set()
    for i, asset_id in enumerate(run_ids):
        family = asset_id.split("-")[0]
        if family not in seen:
            seen.add(family)
            rows.append(i)
    _save_png(args.out / "swap_grid.png", latent.swap_grid(model, rows, ds.config.rig, 96))
    frames = latent.turntable(model, model.codes.shape.weight[rows[0]].detach(), model.codes.texture.weight[rows[0]].detach(), ds.config.rig, 96, 24)
    latent.save_animation(args.out / "turntable.gif", frames)
    return result
