"""`assets2vec photo-encoder RUN`: train the run's photo encoder (which catalog asset a photo shows) and its photo
segmenter (where the object is in the photo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device


def add_parser(sub) -> None:
    p = sub.add_parser(
        "photo-encoder", help="train a CNN that proposes which catalog assets a photo shows (for search by photo)",
        description="Render every asset of RUN from random cameras under random lights, and train a small CNN to tell "
        "them apart on random backgrounds, under random exposure and white balance (domain randomisation). Saved "
        "as RUN/photo_encoder.pt; from then on, search by photo fits the NeRF only to the assets it proposes. "
        "Also trains the photo segmenter, a small U-Net that finds the catalog's objects on backdrops and in clutter, "
        "on composed photos and then on one-asset scenes of the run's assets (RUN/photo_segmenter.pt). Retrain them "
        "after the run changes.")
    p.add_argument("run", type=Path, metavar="RUN")
    p.add_argument("--views", type=int, default=48, help="renders per asset (default: 48)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: 40)")
    p.add_argument("--segmenter-steps", type=int, default=None, help="training steps of the segmenter (default: 2000)")
    p.add_argument("--segmenter-scenes", type=int, default=None,
                   help="one-asset scenes rendered to fine-tune the segmenter on (default: 1500; 0: none)")
    p.add_argument("--segmenter-scene-steps", type=int, default=None, help="its fine-tuning steps on them (default: 1000)")
    p.add_argument("--only", choices=("encoder", "segmenter"), default=None, help="train only one of the two")
    p.add_argument("--seed", type=int, default=0, help="seed of the cameras, lights and training (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_argument(p, "the views are rendered and the encoder trains")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from assets2vec.photo_encoder import EncoderConfig, train_for_run
    from assets2vec.photo_views import ViewConfig

    if args.epochs is None:
        args.epochs = EncoderConfig.epochs
    if args.views < 2 or args.epochs < 1:
        raise ValueError(f"--views needs at least 2 and --epochs at least 1, got {args.views} and {args.epochs}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.segmenter_steps is not None and args.segmenter_steps < 1:
        raise ValueError(f"--segmenter-steps needs at least 1, got {args.segmenter_steps}")
    for name in ("segmenter_scenes", "segmenter_scene_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")
    device = resolve_device(args.device)
    if args.only != "segmenter":
        config = replace(EncoderConfig(), views=ViewConfig(views=args.views, seed=args.seed), epochs=args.epochs, seed=args.seed)
        path = train_for_run(args.run, config, progress=not args.quiet, device=device)
        print(f"photo encoder saved: {path}")
    if args.only != "encoder":
        from assets2vec import photo_segmenter

        seg = photo_segmenter.SegmenterConfig(seed=args.seed)
        if args.segmenter_steps is not None:
            seg = replace(seg, steps=args.segmenter_steps)
        if args.segmenter_scenes is not None:
            seg = replace(seg, scenes=args.segmenter_scenes)
        if args.segmenter_scene_steps is not None:
            seg = replace(seg, scene_steps=args.segmenter_scene_steps)
        path = photo_segmenter.train_for_run(args.run, seg, progress=not args.quiet, device=device)
        print(f"photo segmenter saved: {path}")
    return 0
