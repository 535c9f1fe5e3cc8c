"""What a catalog reader answers stays true to the database: one snapshot at open, filtered views
that follow tags written by other processes, filtered answers as long as the subset allows, and
filter and colour names checked."""

from __future__ import annotations

import numpy as np
import pytest

from assets2vec import Catalog
from assets2vec.catalog.store import CatalogError, Store


def quiet(_msg):
    """Log sink for the library calls under test: their messages are not what is checked."""


def test_open_reads_ids_and_vectors_from_one_snapshot(catalog, monkeypatch):
    """A build that commits a new asset between the reads at open must not pair ids with other vectors."""
    writer = Store.open(catalog)
    original = Store.latents
    committed = []

    def latents_then_a_build_commits(self):
        got = original(self)
        if self is not writer and not committed:
            row = writer.next_row()
            with writer.write():
                writer.upsert_asset(row, "late-asset", "chair", "chair", "elsewhere", {}, {})
                writer.put_latents(np.array([row]), got[1][:1], got[2][:1], "ck")
            committed.append(row)
        return got

    monkeypatch.setattr(Store, "latents", latents_then_a_build_commits)
    with Catalog.open(catalog, log=quiet) as cat:
        assert committed  # the commit happened while the catalog was opening
        assert "late-asset" not in cat.ids
        assert len(cat.ids) == len(cat.rows) == len(cat.vectors("joint"))
    writer.close()


def test_filtered_views_are_bounded_and_follow_tags_written_elsewhere(catalog, monkeypatch):
    from assets2vec import api

    writer = Store.open(catalog)
    with Catalog.open(catalog, log=quiet) as cat:
        a, b = cat.ids[0], cat.ids[1]
        with writer.write():
            writer.set_tags("pick", writer.rows_of([a]), ["yes"])
        q = cat.vectors("joint")[0]
        assert [h["id"] for h in cat.search_vectors(q, 5, where="pick=yes")] == [a]
        with writer.write():  # another process re-tags: the cached view must not answer any more
            writer.set_tags("pick", writer.rows_of([a, b]), ["no", "yes"])
        assert [h["id"] for h in cat.search_vectors(q, 5, where="pick=yes")] == [b]

        monkeypatch.setattr(api, "RESTRICTED_CACHE", 4)
        for c in np.linspace(0.1, 0.9, 9):
            cat.search_vectors(q, 3, where="pick=yes", min_confidence=float(c))
        assert len(cat._restricted) == 4
        assert list(cat._restricted)[-1][2] == pytest.approx(0.9)  # the most recent kept, the oldest dropped
    writer.close()


def test_filters_accept_ids_and_the_map_refuses_unknown_colour_names(catalog):
    with Catalog.open(catalog, log=quiet) as cat:
        a, b = cat.ids[0], cat.ids[1]
        assert cat.filter(f"id={a}") == [a]
        assert cat.filter(f"id={a}|{b}") == [a, b]
        assert a not in cat.filter(f"id!={a}")
        with pytest.raises(CatalogError, match=r"color_by: no attribute or tag named 'nope'; this catalog has .*family"):
            cat.map("shape", color_by="nope")


def test_filtered_search_answers_k_when_the_subset_is_spread_thinner_than_the_wide_probe(monkeypatch):
    """One member in each of many lists: the first probe and the wide one see fewer than k members,
    so the rows left short are searched exactly instead of coming back with -1."""
    from assets2vec.catalog import index as index_module
    from assets2vec.catalog.index import LatentIndex

    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (3000, 8)).astype(np.float32)
    index = LatentIndex(8, "hnsw")
    index.add(X)
    lists = index.partition.lists
    subset = np.array([np.flatnonzero(lists == j)[0] for j in np.unique(lists)[:40]])
    monkeypatch.setitem(index_module.COST_US, "flat_vector", 1.0)  # make the partition path the cheaper one
    monkeypatch.setattr(index_module, "NPROBE_MIN", 1)
    monkeypatch.setattr(index_module, "CANDIDATES", 1)
    monkeypatch.setattr(index_module, "WIDE_NPROBE", 2)
    view = index.restrict(subset)
    assert view.mode == "partition" and not view.far_exact and view.wide_nprobe < 10
    q = X[:5] + 0.01
    D, I = view.search(q, 10)
    assert (I >= 0).all() and np.isin(I, subset).all()
    truth = subset[np.argsort(((X[subset][None] - q[:, None]) ** 2).sum(-1), axis=1)[:, :10]]
    assert np.array_equal(I, truth)
