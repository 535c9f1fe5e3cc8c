"""User CSV files (labels, weights, error scores): size-capped, BOM-tolerant, columns checked."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

from assets2vec.catalog.store import CatalogError

MAX_CSV_BYTES = 64 << 20


def open_csv(path: str | os.PathLike, what: str, max_bytes: int = MAX_CSV_BYTES) -> tuple[Iterator[dict], list[str]]:
    """(rows, column names) of a CSV file; `what` names it in errors ("weights file")."""
    p = Path(path)
    if not p.is_file():
        raise CatalogError(f"{p}: no such {what}")
    if p.stat().st_size > max_bytes:
        raise CatalogError(f"{p}: larger than {max_bytes >> 20} MB; not a {what}")
    return read_csv_bytes(p.read_bytes(), str(p), what, max_bytes)


def read_csv_bytes(data: bytes, name: str, what: str, max_bytes: int = MAX_CSV_BYTES) -> tuple[Iterator[dict], list[str]]:
    """(rows, column names) of a CSV file's content (an upload, say), called `name` in errors."""
    if len(data) > max_bytes:
        raise CatalogError(f"{name}: larger than {max_bytes >> 20} MB; not a {what}")
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))  # -sig: spreadsheets write a BOM
        cols = list(reader.fieldnames or [])
        rows = list(reader)  # parsed here, so a malformed line is reported as this file's error
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{name}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8 CSV") from None
    except csv.Error as exc:
        raise CatalogError(f"{name}: not a readable CSV {what} (line {reader.line_num}: {exc})") from None
    return iter(rows), cols


def first_column(cols: list[str], *names: str) -> str | None:
    return next((n for n in names if n in cols), None)
