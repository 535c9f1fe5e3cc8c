"""`assets2vec fit DATA --out RUN`: train the code-conditioned NeRF on a rendered dataset."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from assets2vec.devices import add_device_argument, resolve_device


def add_parser(sub) -> None:
    from assets2vec.configs import PRESETS

    p = sub.add_parser(
        "fit",
        help="train the multi-asset NeRF (one shape + one texture code per asset) on a dataset",
        description=(
            "Train the code-conditioned NeRF on DATASET (what 'assets2vec render' wrote) into RUN: "
            "checkpoints (latest and periodic), TensorBoard logs, history.jsonl (held-out PSNR over time). "
            "Ctrl-C saves a checkpoint; --resume continues it exactly."
        ),
    )
    p.add_argument("data", type=Path, metavar="DATASET", help="rendered dataset folder")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder to create (or continue with --resume)")
    p.add_argument("--preset", choices=PRESETS, default="fast", help="starting configuration: fast (ours, default), codenerf (reference), tiny (smoke tests)")
    p.add_argument("--steps", type=int, help="optimisation steps (default: the preset's: 12000 for fast)")
    p.add_argument("--max-minutes", type=float, help="wall-clock budget; the learning-rate schedule is shortened to end within it")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN from its latest checkpoint")
    p.add_argument("--checkpoint-minutes", type=float,
                   help="save the latest checkpoint at least this often, in minutes of training, so a hard kill loses at "
                        "most that much (default: 2; 0: only every 1,000 steps and at the end)")
    p.add_argument("--shape-dim", type=int, help="shape code size (default: the preset's, 32 for fast)")
    p.add_argument("--texture-dim", type=int, help="texture code size (default: the preset's, 32 for fast)")
    p.add_argument("--batch-size", type=int, help="rays per step (default: the preset's; on a GPU, 32768 for fast, with "
                   "64 assets per batch, so each asset still gets the CPU recipe's 512 rays per step)")
    p.add_argument("--views", type=str, help="train on these view indices only, e.g. '0,3,6-9' (image subset)")
    p.add_argument("--max-assets", type=int, help="train on the first N assets only")
    p.add_argument("--holdout", type=int, help="views held out per asset for evaluation (default: 2)")
    p.add_argument("--ray-table", choices=("auto", "memory", "stream"), help="training rays held in memory (46 bytes "
                   "per ray) or streamed from the dataset asset by asset with a bounded cache (for libraries too large "
                   "for memory; trains identically); auto streams above 4 GB (default: auto)")
    p.add_argument("--edge-fraction", type=float, help="share of each batch drawn from the empty pixels within 2 px "
                   "of the asset, so thin gaps (under a sofa, between legs) are kept empty; 0: none (default: the preset's: 0.25 "
                   "for fast, none for codenerf and tiny)")
    p.add_argument("--texture-rays", choices=("all", "covered"), help="pixels whose colour reaches the texture codes: "
                   "all, or only those wholly on the asset, so the codes cannot learn to paint over wrong density at "
                   "the silhouette, which is shape (default: the preset's)")
    p.add_argument("--code-independence", type=float, metavar="WEIGHT", help="weight of a kernel (non-linear) "
                   "dependence penalty between texture and shape codes, so texture codes carry no shape an RBF "
                   "classifier can read; the linear decorrelation penalty stays on; 0: off (default: the preset's: 0.2 for fast, "
                   "0 for codenerf and tiny)")
    p.add_argument("--ray-cache-assets", type=int, help="with streamed rays: assets kept decoded (default: 64)")
    add_device_argument(p, "training runs; on a GPU the preset's batch grows to keep it busy (see --batch-size)")
    p.add_argument("--workers", type=int, default=1, help="data-parallel processes on this machine (torchrun "
                   "--standalone; gloo on CPU, NCCL on GPU); for several machines run torchrun yourself, see README "
                   "(default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_views(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = part.split("-")
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"--views {text!r}: expected indices like '0,3,6-9'") from None
    if not out:
        raise ValueError(f"--views {text!r}: no views given")
    return sorted(set(out))


def run(args: argparse.Namespace) -> int:
    from assets2vec.configs import for_device, preset
    from assets2vec.train import check_workers, fit

    config = preset(args.preset)
    config.seed = args.seed
    for flag, attr in (("steps", "steps"), ("max_minutes", "max_minutes"), ("batch_size", "batch_size"), ("max_assets", "max_assets"), ("holdout", "n_holdout"),
                       ("ray_table", "ray_table"), ("ray_cache_assets", "ray_cache_assets"), ("edge_fraction", "edge_fraction"),
                       ("checkpoint_minutes", "checkpoint_minutes")):
        value = getattr(args, flag)
        if value is not None:
            setattr(config, attr, value)
    if args.shape_dim is not None:
        config.model.shape_dim = args.shape_dim
    if args.texture_dim is not None:
        config.model.texture_dim = args.texture_dim
    if args.texture_rays is not None:
        config.model.texture_rays = args.texture_rays
    if args.code_independence is not None:
        if not args.code_independence >= 0:
            raise ValueError(f"--code-independence must be zero or positive, got {args.code_independence}")
        config.model.code_independence = args.code_independence
    if args.views:
        config.views = parse_views(args.views)
    for name, value in (("--steps", config.steps), ("--batch-size", config.batch_size), ("--ray-cache-assets", config.ray_cache_assets), ("--shape-dim", config.model.shape_dim), ("--texture-dim", config.model.texture_dim)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    if config.checkpoint_minutes < 0:
        raise ValueError(f"--checkpoint-minutes must be 0 or more, got {config.checkpoint_minutes}")
    if config.max_minutes is not None and config.max_minutes <= 0:
        raise ValueError(f"--max-minutes must be positive, got {config.max_minutes}")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    device = resolve_device(args.device)
    check_workers(args.workers, device)
    config = for_device(config, device, batch_given=args.batch_size is not None)
    if args.workers > 1 and "WORLD_SIZE" not in os.environ:  # under torchrun already: never relaunch
        return _torchrun(args.workers, args.argv)
    summary = fit(args.data, args.out, config, resume=args.resume, device=device, progress=not args.quiet,
                  log=lambda m: print(m, file=sys.stderr))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


def _torchrun(n: int, original: list[str]) -> int:
    """Re-run this very command under `torchrun --standalone --nproc_per_node n`, minus --workers."""
    from assets2vec.workers import torchrun

    return torchrun(n, original)
