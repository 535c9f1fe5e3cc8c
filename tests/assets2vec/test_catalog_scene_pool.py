"""From catalog assets to the scene generator's pool: manifests are user data, and an asset whose
mesh cannot be named is left out with the real reason; weights files read the same from disk or upload."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assets2vec import Catalog
from assets2vec.catalog.build import build_catalog
from assets2vec.catalog.scene_pool import read_weights, scene_pool
from assets2vec.catalog.store import CatalogError, Store
from render_core.artifacts import make_header, write_header


def _dataset(folder, library, records: list[dict] | bytes):
    folder.mkdir(parents=True)
    write_header(folder, make_header("dataset", producer="test", seed=0, source_library=str(library)))
    text = records if isinstance(records, bytes) else "".join(json.dumps(r) + "\n" for r in records).encode()
    (folder / "manifest.jsonl").write_bytes(text)
    return folder


def _record(asset_id: str, path: str) -> dict:
    return {"id": asset_id, "path": path, "category": "chair"}


def test_scene_pool_refuses_paths_leaving_the_library_and_keeps_why_a_dataset_is_unreadable(tmp_path):
    lib = tmp_path / "lib"
    good = _dataset(tmp_path / "good", lib, [_record("ok", "meshes/ok.obj"), _record("abs", "/etc/passwd"),
                                             _record("up", "meshes/../../secret.obj")])
    broken = _dataset(tmp_path / "broken", lib, b"\xff\xfe not text\n")
    store = Store.open(tmp_path / "cat", create=True)
    sources = {"ok": good, "abs": good, "up": good, "lost": good, "bad": broken, "gone": tmp_path / "nowhere"}
    with store.write():
        for row, (asset_id, source) in enumerate(sources.items()):
            store.upsert_asset(row, asset_id, "chair", "chair", str(source), {}, {})
    unavailable: dict[str, str] = {}
    pool = scene_pool(store, np.arange(len(sources)), list(sources), "family", unavailable=unavailable)
    assert [(a.id, a.path) for a in pool] == [("ok", lib / "meshes" / "ok.obj")]
    manifest = str(good / "manifest.jsonl")
    assert manifest in unavailable["abs"] and "'/etc/passwd'" in unavailable["abs"] and "points outside the library" in unavailable["abs"]
    assert manifest in unavailable["up"] and "points outside the library" in unavailable["up"]
    assert unavailable["lost"] == f"not in {manifest}"
    assert str(broken / "manifest.jsonl") in unavailable["bad"] and "not UTF-8" in unavailable["bad"]
    assert str(tmp_path / "nowhere") in unavailable["gone"] and "no such file or folder" in unavailable["gone"]
    store.close()


def test_generate_scenes_leaves_out_assets_without_a_mesh_and_reports_why(run, tmp_path, monkeypatch):
    import render_core.scenes as scenes

    build_catalog(run, tmp_path / "cat", progress=False, log=lambda m: None)
    seen = {}

    def fake_generate(pool, out, n, seed, cfg, weights, selection, **kw):
        seen["pool"], seen["weights"] = [a.id for a in pool], weights
        return {"failed_assets": []}

    monkeypatch.setattr(scenes, "generate_scenes", fake_generate)
    with Catalog.open(tmp_path / "cat", log=lambda m: None) as cat:
        lost = cat.ids[0]
        with cat.store.write():
            cat.store.conn.execute("UPDATE assets SET source=? WHERE id=?", (str(tmp_path / "moved"), lost))
        weights = {a: float(i + 1) for i, a in enumerate(cat.ids)}
        report = cat.generate_scenes(tmp_path / "out", 1, weights=weights)
        assert seen["pool"] == cat.ids[1:] and np.array_equal(seen["weights"], np.arange(2, len(cat.ids) + 1))
        [failed] = report["failed_assets"]
        assert failed["asset_id"] == lost and str(tmp_path / "moved") in failed["error"]
        assert "unsupported file type" not in failed["error"]


def test_weights_read_the_same_from_an_upload_as_from_a_file(tmp_path):
    ids = ["a", "b", "c"]
    data = b"\xef\xbb\xbfid,weight\na,1\nc,2.5\n"
    (tmp_path / "w.csv").write_bytes(data)
    assert np.array_equal(read_weights(data, ids, set(ids), name="up.csv"), read_weights(tmp_path / "w.csv", ids, set(ids)))
    for bad, message in ((b"id,weight\na,1\na,2\n", r"up\.csv:3: 'a' appears twice"),
                         (b"id,score\na,1\n", r"up\.csv: needs an 'id' .* and a 'weight' column"),
                         (b"id,weight\n\"" + b"a" * 200_000 + b"\",1\n", r"up\.csv: not a readable CSV weights file"),
                         (b"id,weight\na,x\n", r"up\.csv: weight of 'a' is not a number"),
                         (b"\xff\xfe", r"up\.csv: not UTF-8 text")):
        with pytest.raises(CatalogError, match=message):
            read_weights(bad, ids, set(ids), name="up.csv")
