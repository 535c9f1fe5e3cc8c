"""`assets2vec app [CATALOG]`: open the Streamlit catalog app (localhost unless told otherwise)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from assets2vec.devices import ENV as DEVICE_ENV
from assets2vec.devices import add_device_argument, resolve_device

# Upload cap in MB (photos, weights files), well below Streamlit's 200 MB default; .streamlit/config.toml
# sets the same for `streamlit run catalog_app/app.py`.
MAX_UPLOAD_MB = 32


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="open the catalog app in the browser (Streamlit)",
                       description="Start the Streamlit catalog app on CATALOG (default: demo/catalog). It listens on "
                       "127.0.0.1 unless --host says otherwise.")
    p.add_argument("catalog", type=Path, nargs="?", default=Path("demo/catalog"), metavar="CATALOG")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    add_device_argument(p, "the network runs (rendering, search by photo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import catalog_app

    from assets2vec import Catalog

    device = resolve_device(args.device)  # refused here, not on the first search in the browser
    Catalog.open(args.catalog, device=device).close()  # a clear error here beats a blank page
    entry = Path(catalog_app.__file__).resolve().parent / "app.py"
    env = {**os.environ, "ASSETS2VEC_CATALOG": str(args.catalog.resolve()), DEVICE_ENV: str(device)}
    cmd = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.address", args.host, "--server.port", str(args.port),
           "--server.maxUploadSize", str(MAX_UPLOAD_MB), "--browser.gatherUsageStats", "false", "--server.headless", str(args.headless).lower()]
    print(f"catalog app on http://{args.host}:{args.port} for {args.catalog} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    # Become the server rather than wait for it: a signal meant for `assets2vec app` (a terminal's Ctrl-C, a
    # supervisor's SIGTERM) then reaches Streamlit itself instead of orphaning it on the port.
    os.execve(sys.executable, cmd, env)
    return 0  # not reached
