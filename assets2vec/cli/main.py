"""Entry point of the `assets2vec` console script."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from assets2vec.cpus import configure_threads, set_openmp_defaults

set_openmp_defaults()  # before any command module imports torch

from render_core import __version__  # noqa: E402

from assets2vec.cli import (  # noqa: E402
    app_cmd,
    assets_cmd,
    catalog_cmd,
    demo_cmd,
    embed_cmd,
    eval_cmd,
    fit_cmd,
    info_cmd,
    invert_cmd,
    merge_cmd,
    photo_encoder_cmd,
    render_cmd,
    render_latent_cmd,
    scenes_cmd,
    search_cmd,
    sparse_cmd,
    tag_cmd,
    weak_spots_cmd,
)

COMMANDS = (demo_cmd, assets_cmd, render_cmd, merge_cmd, fit_cmd, eval_cmd, render_latent_cmd, invert_cmd, photo_encoder_cmd, embed_cmd, catalog_cmd, search_cmd, tag_cmd, sparse_cmd, weak_spots_cmd, scenes_cmd, app_cmd, info_cmd)


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assets2vec",
        description="Turn a library of 3D assets into vectors: generate or ingest assets, render them, inspect artifacts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'assets2vec COMMAND --help' for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"assets2vec {__version__}")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for this command (default: the cores this process may use, from its "
                             "affinity and cgroup quota; or $ASSETS2VEC_THREADS)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # nerfstudio 1.1.5 indexes cameras in a way torch 2.11 warns about on every render; not ours to fix.
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # for commands that relaunch themselves (fit --workers)
    try:
        configure_threads(args.threads)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\nassets2vec: interrupted; finished work is kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, NotADirectoryError, KeyError, UserError) as exc:
        # Bad input of any kind: one clear line, no traceback.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"assets2vec {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRORS:
            raise
        # The machine, not the input: name the file and what to do; atomic writes left every
        # finished file as it was, so the same command resumes once there is room or permission.
        where = f"cannot write {exc.filename}: " if exc.filename else ""
        print(f"assets2vec {args.command}: error: {where}{exc.strerror} "
              f"({_STORAGE_ERRORS[exc.errno]}); finished work is kept, rerun the same command to resume", file=sys.stderr)
        return 3


_STORAGE_ERRORS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "over the disk quota: free some space",
    errno.EFBIG: "a file-size limit (ulimit -f) was reached",
    errno.EROFS: "choose a writable folder",
    errno.EACCES: "no permission: choose a folder you may write",
    errno.EPERM: "no permission: choose a folder you may write",
}


def exit_worker(code: int) -> None:
    """Leave a torchrun worker whose work is done and on disk without running native teardown.

    Now and then (a handful of times in hundreds of 2-worker runs, under CPU load) a gloo worker
    aborted after its last Python line: "terminate called without an active exception", SIGABRT,
    faulthandler showing the main thread with no Python frame, so in C++ static destruction.
    torchrun then kills the other worker and reports the run failed although its checkpoint was
    written. Nothing is left to flush or close by then: `fit` closes its writers and waits at a
    barrier for rank 0's checkpoint before it returns.
    """
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    status = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        exit_worker(status)
    sys.exit(status)
