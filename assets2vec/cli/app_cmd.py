"""`assets2vec app [CATALOG]`: open the Streamlit catalog app (localhost unless told otherwise)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="open the catalog app in the browser (Streamlit)",
                       description="Start the Streamlit catalog app on CATALOG (default: demo/catalog). It listens on "
                       "127.0.0.1 unless --host says otherwise.")
    p.add_argument("catalog", type=Path, nargs="?", default=Path("demo/catalog"), metavar="CATALOG")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import catalog_app

    from assets2vec import Catalog

    Catalog.open(args.catalog).close()  # a clear error here beats a blank page
    entry = Path(catalog_app.__file__).resolve().parent / "app.py"
    env = {**os.environ, "ASSETS2VEC_CATALOG": str(args.catalog.resolve())}
    cmd = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.address", args.host, "--server.port", str(args.port),
           "--server.maxUploadSize", "32", "--browser.gatherUsageStats", "false", "--server.headless", str(args.headless).lower()]
    print(f"catalog app on http://{args.host}:{args.port} for {args.catalog} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    # Become the server rather than wait for it: a signal meant for `assets2vec app` (a terminal's Ctrl-C, a
    # supervisor's SIGTERM) then reaches Streamlit itself instead of orphaning it on the port.
    os.execve(sys.executable, cmd, env)
    return 0  # not reached
