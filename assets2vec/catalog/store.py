"""The catalog's embedded database: SQLite in WAL mode, every query parameterised.

One row per asset (its integer `row` is also its id in the FAISS indexes), with ground-truth
attributes from the asset manifest, manual tags, predicted tags (value, confidence and the
classifier that made them), a PNG thumbnail and the latent codes with the checkpoint that
produced them. WAL lets searches read while a build writes; a build is one transaction.
"""

from __future__ import annotations

import errno
import hashlib
import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

DB_NAME = "catalog.sqlite"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    row INTEGER PRIMARY KEY,          -- FAISS id
    id TEXT NOT NULL UNIQUE,
    category TEXT,
    family TEXT,
    source TEXT NOT NULL,             -- dataset folder the asset's views came from
    params TEXT NOT NULL DEFAULT '{}' -- generator parameters (procedural assets), JSON
);
CREATE TABLE IF NOT EXISTS attributes (
    asset_row INTEGER NOT NULL REFERENCES assets(row), name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (asset_row, name));
CREATE TABLE IF NOT EXISTS tags (
    asset_row INTEGER NOT NULL REFERENCES assets(row), name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (asset_row, name));
CREATE TABLE IF NOT EXISTS classifiers (
    id INTEGER PRIMARY KEY, attribute TEXT NOT NULL, space TEXT NOT NULL, model TEXT NOT NULL,
    cv_accuracy REAL, n_labels INTEGER NOT NULL, classes TEXT NOT NULL, details TEXT NOT NULL DEFAULT '{}');
-- Keyed by attribute first and without foreign keys: storing one tag for a million assets is a
-- bulk replace, several times faster than with row ids, FKs and a value index (benchmarks/search_scale.py).
CREATE TABLE IF NOT EXISTS predictions (
    attribute TEXT NOT NULL, asset_row INTEGER NOT NULL, value TEXT NOT NULL,
    confidence REAL NOT NULL, classifier INTEGER NOT NULL,
    PRIMARY KEY (attribute, asset_row)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latents (
    asset_row INTEGER PRIMARY KEY REFERENCES assets(row),
    shape BLOB NOT NULL, texture BLOB NOT NULL,   -- float32, little-endian
    checkpoint TEXT NOT NULL);
-- Spaces decoded from the codes by the frozen network (catalog/geometry.py, catalog/appearance.py)
-- and derived from them (catalog/texture_only.py): per space and asset, the raw descriptor (uint8;
-- empty for texture_only) and the vector searched and tagged (float32).
CREATE TABLE IF NOT EXISTS decoded (
    space TEXT NOT NULL, asset_row INTEGER NOT NULL REFERENCES assets(row),
    profile BLOB NOT NULL, vector BLOB NOT NULL, checkpoint TEXT NOT NULL,
    PRIMARY KEY (space, asset_row));
CREATE TABLE IF NOT EXISTS thumbnails (asset_row INTEGER PRIMARY KEY REFERENCES assets(row), png BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS attributes_by_value ON attributes(name, value);
CREATE INDEX IF NOT EXISTS tags_by_value ON tags(name, value);
"""

# Columns of `assets` that filters may name directly, besides attributes and tags.
ASSET_COLUMNS = ("id", "category", "family")


class CatalogError(ValueError):
    """A catalog is missing, empty, corrupt, or asked for something it does not hold."""


class Store:
    """A connection to one catalog database. Use `Store.open(folder)`; `with store.write():` for a transaction."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn

    @classmethod
    def open(cls, folder: str | Path, create: bool = False) -> "Store":
        folder = Path(folder)
        path = folder / DB_NAME
        if not path.is_file():
            if not create:
                raise CatalogError(f"{folder}: no catalog here (no {DB_NAME}); build one with 'assets2vec catalog build RUN {folder}'")
            folder.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (`write()`), so readers never hold a lock.
        conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            if create:
                conn.executescript(SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            conn.close()
            _raise_storage_error(exc, path)
            raise CatalogError(f"{path}: not a readable catalog database ({exc})") from exc
        if version is None or int(version[0]) > SCHEMA_VERSION:
            conn.close()
            raise CatalogError(f"{path}: catalog schema {version and version[0]} is not supported by this version (expects {SCHEMA_VERSION})")
        return cls(path, conn)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it lands or none of it does."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            _raise_storage_error(exc, self.path)
            raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same snapshot (WAL), so a build that commits
        meanwhile cannot pair one state's ids with another's vectors. Inside `write()` or another
        `read()` it adds nothing: that transaction is already one snapshot."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")  # nothing was written: this only ends the snapshot

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def meta_digest(self, *keys: str) -> str | None:
        """SHA-256 of the stored text of `keys` (None when one is missing), without parsing it: a PCA's
        metadata is megabytes of JSON, and this is checked every time a catalog opens."""
        h = hashlib.sha256()
        for key in keys:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            if row is None:
                return None
            h.update(hashlib.sha256(row[0].encode()).digest())
        return h.hexdigest()

    def data_version(self) -> int:
        """SQLite's `PRAGMA data_version`: changes whenever another connection commits to the database.
        Cheap enough to ask on every query, so a reader hashes the metadata only after a commit."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def change_stamp(self) -> tuple[int, int]:
        """Differs whenever the database may have changed, by a commit of another connection or a
        write of this one (`data_version` sees only the former); for caches of query results."""
        return self.data_version(), self.conn.total_changes

    def drop_meta(self, *keys: str) -> None:
        self.conn.executemany("DELETE FROM meta WHERE key=?", [(k,) for k in keys])

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                          (key, json.dumps(value)))

    # -- assets ---------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM latents").fetchone()[0])

    def ids(self) -> list[str]:
        """Asset ids in row order (the order of every vector table)."""
        return [r[0] for r in self.conn.execute("SELECT a.id FROM assets a JOIN latents l ON l.asset_row = a.row ORDER BY a.row")]

    def rows_of(self, ids: Iterable[str]) -> np.ndarray:
        """FAISS rows of `ids`, in order; an unknown id is a `CatalogError` naming it."""
        ids = list(ids)
        found: dict[str, int] = {}
        for chunk in _chunks(ids, 500):
            q = f"SELECT id, row FROM assets WHERE id IN ({','.join('?' * len(chunk))})"
            found.update(self.conn.execute(q, chunk).fetchall())
        missing = [i for i in ids if i not in found]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise CatalogError(f"unknown asset id{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing[:3]))}{more}: not in this catalog")
        return np.array([found[i] for i in ids], dtype=np.int64)

    def asset(self, asset_id: str) -> dict[str, Any]:
        row = self.rows_of([asset_id])[0]
        r = self.conn.execute("SELECT id, category, family, source, params FROM assets WHERE row=?", (int(row),)).fetchone()
        return {
            "id": r[0], "row": int(row), "category": r[1], "family": r[2], "source": r[3], "params": json.loads(r[4]),
            "attributes": dict(self.conn.execute("SELECT name, value FROM attributes WHERE asset_row=?", (int(row),))),
            "tags": dict(self.conn.execute("SELECT name, value FROM tags WHERE asset_row=?", (int(row),))),
            "predictions": self._predictions_of(int(row)),
        }

    def _predictions_of(self, row: int) -> dict[str, dict[str, Any]]:
        out = {}
        for (name,) in self.conn.execute("SELECT DISTINCT attribute FROM classifiers").fetchall():
            r = self.conn.execute("SELECT value, confidence FROM predictions WHERE attribute=? AND asset_row=?", (name, row)).fetchone()
            if r is not None:
                out[name] = {"value": r[0], "confidence": r[1]}
        return out

    def upsert_asset(self, row: int, asset_id: str, category: str | None, family: str | None, source: str,
                     params: dict[str, float], attributes: dict[str, str]) -> None:
        c = self.conn
        c.execute("INSERT INTO assets(row, id, category, family, source, params) VALUES (?, ?, ?, ?, ?, ?) "
                  "ON CONFLICT(id) DO UPDATE SET category=excluded.category, family=excluded.family, "
                  "source=excluded.source, params=excluded.params",
                  (row, asset_id, category, family, source, json.dumps(params, sort_keys=True)))
        c.execute("DELETE FROM attributes WHERE asset_row=?", (row,))
        c.executemany("INSERT INTO attributes(asset_row, name, value) VALUES (?, ?, ?)",
                      [(row, str(k), str(v)) for k, v in sorted(attributes.items())])

    def next_row(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(row), -1) + 1 FROM assets").fetchone()[0])

    def row_map(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT id, row FROM assets"))

    _ASSET_COLUMNS = ("id", "category", "family", "source", "params")

    def asset_columns(self, *columns: str) -> dict[int, tuple]:
        """{row: (values of `columns`)} for every asset; columns from the assets table's fixed set."""
        bad = [c for c in columns if c not in self._ASSET_COLUMNS]
        if bad or not columns:
            raise ValueError(f"asset columns must be among {self._ASSET_COLUMNS}, got {columns}")
        return {r[0]: tuple(r[1:]) for r in self.conn.execute(f"SELECT row, {', '.join(columns)} FROM assets")}  # names checked above

    def summary_counts(self) -> dict[str, dict[str, int]]:
        """Assets per family, manual tags per name and predictions per attribute."""
        c = self.conn
        return {"families": dict(c.execute("SELECT family, COUNT(*) FROM assets GROUP BY family").fetchall()),
                "manual_tags": dict(c.execute("SELECT name, COUNT(*) FROM tags GROUP BY name").fetchall()),
                "predicted": dict(c.execute("SELECT attribute, COUNT(*) FROM predictions GROUP BY attribute").fetchall())}

    # -- latents ----------------------------------------------------------------------------------
    def put_latents(self, rows: np.ndarray, shape: np.ndarray, texture: np.ndarray, checkpoint: str) -> None:
        self.conn.executemany(
            "INSERT INTO latents(asset_row, shape, texture, checkpoint) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(asset_row) DO UPDATE SET shape=excluded.shape, texture=excluded.texture, checkpoint=excluded.checkpoint",
            [(int(r), _blob(s), _blob(t), checkpoint) for r, s, t in zip(rows, shape, texture)])

    def latent_rows(self) -> set[int]:
        return {r for r, in self.conn.execute("SELECT asset_row FROM latents")}

    def latent_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM latents").fetchone()[0])

    def drop_latents(self, rows: Iterable[int]) -> None:
        self.conn.executemany("DELETE FROM latents WHERE asset_row=?", [(int(r),) for r in rows])

    def latents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows (n,), shape codes (n, ds), texture codes (n, dt)), float32, in row order."""
        got = self.conn.execute("SELECT asset_row, shape, texture FROM latents ORDER BY asset_row").fetchall()
        if not got:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        rows = np.array([g[0] for g in got], dtype=np.int64)
        shape = np.stack([np.frombuffer(g[1], dtype="<f4") for g in got]).astype(np.float32)
        texture = np.stack([np.frombuffer(g[2], dtype="<f4") for g in got]).astype(np.float32)
        return rows, shape, texture

    # -- decoded spaces ---------------------------------------------------------------------------
    def put_decoded(self, space: str, rows: np.ndarray, profiles: np.ndarray, vectors: np.ndarray, checkpoint: str) -> None:
        self.conn.executemany(
            "INSERT INTO decoded(space, asset_row, profile, vector, checkpoint) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(space, asset_row) DO UPDATE SET profile=excluded.profile, vector=excluded.vector, checkpoint=excluded.checkpoint",
            [(space, int(r), np.ascontiguousarray(p, np.uint8).tobytes(), _blob(v), checkpoint) for r, p, v in zip(rows, profiles, vectors)])

    def set_decoded_vectors(self, space: str, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.conn.executemany("UPDATE decoded SET vector=? WHERE space=? AND asset_row=?",
                              [(_blob(v), space, int(r)) for r, v in zip(rows, vectors)])

    def drop_decoded(self, space: str | None = None) -> None:
        """Forget the decoded vectors of `space`, or of every space."""
        if space is None:
            self.conn.execute("DELETE FROM decoded")
        else:
            self.conn.execute("DELETE FROM decoded WHERE space=?", (space,))

    def decoded_rows(self, space: str) -> set[int]:
        """Rows that have a vector in decoded `space` (none for a catalog built before the table existed)."""
        try:
            return {r for r, in self.conn.execute("SELECT asset_row FROM decoded WHERE space=?", (space,))}
        except sqlite3.OperationalError:
            return set()

    def decoded(self, space: str, what: str = "vector") -> tuple[np.ndarray, np.ndarray]:
        """(rows (n,), vectors (n, k) float32 or profiles (n, D) uint8) of a decoded space, in row order; empty when never computed."""
        if what not in ("vector", "profile"):
            raise ValueError(f"what must be 'vector' or 'profile', got {what!r}")
        try:
            got = self.conn.execute(f"SELECT asset_row, {what} FROM decoded WHERE space=? ORDER BY asset_row", (space,)).fetchall()
        except sqlite3.OperationalError:  # a catalog built before the table existed
            got = []
        dtype = np.uint8 if what == "profile" else np.dtype("<f4")
        if not got:
            return np.zeros(0, np.int64), np.zeros((0, 0), dtype)
        rows = np.array([g[0] for g in got], dtype=np.int64)
        return rows, np.stack([np.frombuffer(g[1], dtype=dtype) for g in got]).astype(np.uint8 if what == "profile" else np.float32)

    # -- thumbnails -------------------------------------------------------------------------------
    def put_thumbnail(self, row: int, png: bytes) -> None:
        self.conn.execute("INSERT INTO thumbnails(asset_row, png) VALUES (?, ?) ON CONFLICT(asset_row) DO UPDATE SET png=excluded.png",
                          (row, png))

    def thumbnail(self, asset_id: str) -> bytes | None:
        row = self.rows_of([asset_id])[0]
        r = self.conn.execute("SELECT png FROM thumbnails WHERE asset_row=?", (int(row),)).fetchone()
        return r[0] if r else None

    # -- attributes, tags, predictions --------------------------------------------------------------
    def values(self, name: str, rows: np.ndarray | None = None) -> dict[int, str]:
        """Known value of `name` per row: a manual tag wins over a ground-truth attribute or column."""
        out: dict[int, str] = {}
        if name in ASSET_COLUMNS:
            out.update(self.conn.execute(f"SELECT row, {name} FROM assets WHERE {name} IS NOT NULL"))  # name is whitelisted
        out.update(self.conn.execute("SELECT asset_row, value FROM attributes WHERE name=?", (name,)))
        out.update(self.conn.execute("SELECT asset_row, value FROM tags WHERE name=?", (name,)))
        if rows is not None:
            keep = set(int(r) for r in rows)
            out = {r: v for r, v in out.items() if r in keep}
        return out

    def set_tags(self, name: str, rows: np.ndarray, values: list[str]) -> None:
        self.conn.executemany("INSERT INTO tags(asset_row, name, value) VALUES (?, ?, ?) "
                              "ON CONFLICT(asset_row, name) DO UPDATE SET value=excluded.value",
                              [(int(r), name, str(v)) for r, v in zip(rows, values)])

    def remove_tags(self, name: str, rows: np.ndarray) -> None:
        self.conn.executemany("DELETE FROM tags WHERE asset_row=? AND name=?", [(int(r), name) for r in rows])

    def tags(self, name: str) -> dict[int, str]:
        return dict(self.conn.execute("SELECT asset_row, value FROM tags WHERE name=?", (name,)))

    def add_classifier(self, attribute: str, space: str, model: str, cv_accuracy: float | None, n_labels: int,
                       classes: list[str], details: dict[str, Any]) -> int:
        cur = self.conn.execute(
            "INSERT INTO classifiers(attribute, space, model, cv_accuracy, n_labels, classes, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (attribute, space, model, cv_accuracy, n_labels, json.dumps(classes), json.dumps(details)))
        return int(cur.lastrowid)

    def put_predictions(self, attribute: str, rows: np.ndarray, values: list[str], confidence: np.ndarray, classifier: int) -> None:
        self.conn.execute("DELETE FROM predictions WHERE attribute=?", (attribute,))
        self.conn.executemany("INSERT INTO predictions(attribute, asset_row, value, confidence, classifier) VALUES (?, ?, ?, ?, ?)",
                              zip([attribute] * len(rows), rows.tolist(), values, np.asarray(confidence, dtype=float).tolist(),
                                  [classifier] * len(rows)))

    def predictions(self, attribute: str) -> dict[int, tuple[str, float]]:
        return {r: (v, c) for r, v, c in self.conn.execute(
            "SELECT asset_row, value, confidence FROM predictions WHERE attribute=?", (attribute,))}

    def classifier(self, attribute: str) -> dict[str, Any] | None:
        r = self.conn.execute("SELECT id, space, model, cv_accuracy, n_labels, classes, details FROM classifiers "
                              "WHERE attribute=? ORDER BY id DESC LIMIT 1", (attribute,)).fetchone()
        if r is None:
            return None
        return {"id": r[0], "attribute": attribute, "space": r[1], "model": r[2], "cv_accuracy": r[3], "n_labels": r[4],
                "classes": json.loads(r[5]), **json.loads(r[6])}

    def attribute_names(self) -> list[str]:
        names = {r[0] for r in self.conn.execute("SELECT DISTINCT name FROM attributes UNION SELECT DISTINCT name FROM tags "
                                                 "UNION SELECT DISTINCT attribute FROM predictions")}
        return sorted(names | {"family", "category"})


def _raise_storage_error(exc: sqlite3.DatabaseError, path: Path) -> None:
    """SQLite's "disk is full" and "read-only" as the OSError they are (the CLI reports those as
    storage errors, naming the file); anything else is left to the caller."""
    msg = str(exc).lower()
    for words, code in (("disk is full", errno.ENOSPC), ("readonly", errno.EROFS), ("read-only", errno.EROFS),
                        ("unable to open database", errno.EACCES)):
        if words in msg:
            raise OSError(code, f"{exc} (SQLite)", str(path)) from exc


def _blob(v: np.ndarray) -> bytes:
    return np.ascontiguousarray(v, dtype="<f4").tobytes()


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
