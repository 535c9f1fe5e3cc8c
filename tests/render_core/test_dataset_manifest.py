"""A dataset's manifest is user data: its ids become file names and its paths are opened, so both
are checked when the dataset opens, as a library's are."""

from __future__ import annotations

import json

import pytest

from render_core.artifacts import ArtifactError, make_header, write_header
from render_core.dataset import RenderedDataset
from render_core.multiview import RenderConfig


def _dataset(folder, records: list[dict]):
    folder.mkdir()
    write_header(folder, make_header("dataset", producer="test", seed=0, source_library="lib",
                                     render=RenderConfig(image_size=32).to_json()))
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.mark.parametrize("entry, message", [
    ({"id": "abs", "path": "/etc/passwd"}, r"asset 'abs' has mesh path '/etc/passwd', which points outside the library"),
    ({"id": "up", "path": "meshes/../../x.obj"}, r"asset 'up' has mesh path 'meshes/../../x.obj', which points outside the library"),
    ({"id": "win", "path": "..\\x.obj"}, r"asset 'win' has mesh path .*, which points outside the library"),
    ({"id": "../evil", "path": "ok.obj"}, r"asset id '../evil' is not a safe file name"),
    ({"id": "empty", "path": ""}, r"asset 'empty' has no usable mesh path"),
])
def test_dataset_refuses_manifest_entries_that_leave_their_folders(tmp_path, entry, message):
    folder = _dataset(tmp_path / "ds", [{"id": "ok", "path": "meshes/ok.obj", "category": "chair"},
                                        {"category": "chair", **entry}])
    with pytest.raises(ArtifactError, match=rf"^{str(folder / 'manifest.jsonl')}: {message}"):
        RenderedDataset(folder)


def test_dataset_with_relative_paths_opens(tmp_path):
    folder = _dataset(tmp_path / "ds", [{"id": "ok", "path": "meshes/ok.obj", "category": "chair"}])
    assert RenderedDataset(folder).asset_ids == ["ok"]
