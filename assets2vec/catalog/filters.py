"""`--where` filters: "family=chair, legs=4|5, colour!=red" -> the catalog rows that match.

Clauses separated by commas must all hold; `|` separates alternatives within one clause.
A name matches, in order of precedence, a manual tag, a ground-truth attribute (or the
asset's id/category/family), then a predicted tag with at least `min_confidence`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assets2vec.catalog.store import CatalogError, Store

_CLAUSE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.:-]*)\s*(!=|=)\s*(.+?)\s*$")


@dataclass(frozen=True)
class Clause:
    name: str
    negate: bool
    values: frozenset[str]


def parse_where(text: str) -> list[Clause]:
    """Parse a filter expression; a malformed clause is a `CatalogError` quoting it."""
    clauses = []
    for part in text.split(","):
        if not part.strip():
            continue
        m = _CLAUSE.match(part)
        if not m:
            raise CatalogError(f"--where: cannot read {part.strip()!r}; write NAME=VALUE or NAME!=VALUE, "
                               "alternatives as VALUE|VALUE, clauses separated by commas")
        values = frozenset(v.strip() for v in m.group(3).split("|") if v.strip())
        if not values:
            raise CatalogError(f"--where: {part.strip()!r} names no value")
        clauses.append(Clause(m.group(1), m.group(2) == "!=", values))
    if not clauses:
        raise CatalogError("--where: empty filter")
    return clauses


def effective_values(store: Store, name: str, min_confidence: float = 0.5) -> dict[int, str]:
    """The value of `name` for every row that has one, known values before predictions."""
    out = {r: v for r, (v, c) in store.predictions(name).items() if c >= min_confidence}
    out.update(store.values(name))
    return out


def filter_rows(store: Store, where: str, rows: np.ndarray, min_confidence: float = 0.5) -> np.ndarray:
    """The subset of `rows` (sorted int64) that satisfies `where`; an unknown name is an error."""
    # Ids filter too; `attribute_names` leaves them out because it feeds pickers (colour by, classes by)
    # where an id would be one class per asset.
    known = set(store.attribute_names()) | {"id"}
    keep = np.ones(len(rows), dtype=bool)
    for clause in parse_where(where):
        if clause.name not in known:
            raise CatalogError(f"--where: no attribute or tag named {clause.name!r}; this catalog has "
                               f"{', '.join(sorted(known))}")
        values = effective_values(store, clause.name, min_confidence)
        hit = np.array([values.get(int(r)) in clause.values for r in rows], dtype=bool)
        keep &= ~hit if clause.negate else hit
    return rows[keep]
