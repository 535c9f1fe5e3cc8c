"""Procedural families: determinism, attributes, plausible geometry, shape/appearance independence."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from render_core.assets.loaders import load_mesh
from render_core.assets.procedural import FAMILIES
from render_core.assets.procedural.appearance import COLOURS, PATTERNS, sample_appearance
from render_core.assets.procedural.generate import generate_library, make_asset


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_byte_identical(tmp_path):
    generate_library(tmp_path / "a", 8, 0, progress=False)
    generate_library(tmp_path / "b", 8, 0, progress=False)
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 8 * 3 + 2
    assert all(a[k] == b[k] for k in a)


def test_seed_zero_is_a_seed_and_seeds_differ(tmp_path):
    generate_library(tmp_path / "s0", 4, 0, progress=False)
    generate_library(tmp_path / "s1", 4, 1, progress=False)
    m0 = (tmp_path / "s0" / "manifest.jsonl").read_text()
    m1 = (tmp_path / "s1" / "manifest.jsonl").read_text()
    assert json.loads(m0.splitlines()[0])["params"] != json.loads(m1.splitlines()[0])["params"]
    with pytest.raises(ValueError, match="seed"):
        generate_library(tmp_path / "neg", 4, -1, progress=False)


def test_generate_refuses_a_different_library_in_place(tmp_path):
    generate_library(tmp_path / "lib", 4, 0, progress=False)
    generate_library(tmp_path / "lib", 4, 0, progress=False)  # same library: fine, idempotent
    with pytest.raises(ValueError, match="different library"):
        generate_library(tmp_path / "lib", 4, 5, progress=False)


def test_generate_refuses_other_proposals_and_a_folder_that_is_not_a_library(tmp_path):
    from render_core import artifacts

    proposals = [{"family": f, "params": make_asset(f, np.random.default_rng(i))[5]} for i, f in enumerate(("chair", "table"))]
    lib = tmp_path / "lib"
    generate_library(lib, 0, 3, proposals=proposals, progress=False)
    generate_library(lib, 0, 3, proposals=proposals, progress=False)  # the same proposals: fine
    other = [proposals[0], {**proposals[1], "params": {**proposals[1]["params"], "pattern_scale": 0.5}}]
    with pytest.raises(ValueError, match="different library .*differs in proposals"):
        generate_library(lib, 0, 3, proposals=other, progress=False)
    with pytest.raises(ValueError, match="different library .*differs in from_proposals"):
        generate_library(lib, 2, 3, families=["chair", "table"], progress=False)  # same seed, n, families: not proposals
    # A header from before the digest was kept cannot show its proposals are the same.
    header = json.loads((lib / "artifact.json").read_text())
    del header["proposals_sha256"]
    (lib / "artifact.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match="proposals \\(not recorded"):
        generate_library(lib, 0, 3, proposals=proposals, progress=False)
    # One without proposals, from before `from_proposals` was recorded, resumes as "no proposals".
    generate_library(tmp_path / "plain", 2, 0, progress=False)
    header = json.loads((tmp_path / "plain" / "artifact.json").read_text())
    assert "proposals_sha256" not in header
    del header["from_proposals"]
    (tmp_path / "plain" / "artifact.json").write_text(json.dumps(header))
    generate_library(tmp_path / "plain", 2, 0, progress=False)

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes: not empty and not a library \\(todo.txt\\)"):
        generate_library(notes, 2, 0, progress=False)
    assert sorted(p.name for p in notes.iterdir()) == ["todo.txt"]
    # A killed writer's temp file is not someone else's content: swept, and the library written.
    killed = tmp_path / "killed"
    killed.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = killed / f".artifact.json.{artifacts._HOST}.{proc.pid}.ab12.tmp"
    stale.write_text("{")
    generate_library(killed, 2, 0, progress=False)
    assert not stale.exists() and (killed / "manifest.jsonl").exists()


def test_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="unknown family"):
        generate_library(tmp_path / "x", 2, 0, families=["chair", "spaceship"], progress=False)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_geometry_and_attributes(family):
    for seed in range(12):
        verts, faces, vuv, fuv, image, params, attrs = make_asset(family, np.random.default_rng(seed))
        assert np.isfinite(verts).all() and faces.min() >= 0 and faces.max() < len(verts)
        assert vuv.min() >= 0 and vuv.max() <= 1 and fuv.max() < len(vuv)
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        lo, hi = verts.min(0), verts.max(0)
        assert lo[1] == pytest.approx(0.0, abs=0.02)  # stands on the floor
        assert 0.3 < hi[1] < 2.0 and (hi - lo).max() < 3.0  # furniture-sized, in metres
        assert attrs["family"] == family and attrs["colour"] in COLOURS and attrs["pattern"] in PATTERNS
        assert all(isinstance(v, float) for v in params.values())


def test_chair_attribute_values_cover_the_spec():
    seen = {"base": set(), "legs": set(), "armrests": set()}
    for seed in range(60):
        attrs = make_asset("chair", np.random.default_rng(seed))[-1]
        for k in seen:
            seen[k].add(attrs[k])
    assert seen["base"] == {"legs", "swivel", "sled"}
    assert {"3", "4", "5"} <= seen["legs"]
    assert seen["armrests"] == {"none", "wooden", "padded"}


def test_shape_and_appearance_are_independent_streams():
    # Same shape stream, different appearance stream -> same geometry, different look.
    fam = FAMILIES["chair"]
    shape_a = fam.build(fam.sample(np.random.default_rng(7))).build()[0]
    shape_b = fam.build(fam.sample(np.random.default_rng(7))).build()[0]
    np.testing.assert_array_equal(shape_a, shape_b)
    looks = {sample_appearance(np.random.default_rng(s)).colour for s in range(30)}
    assert len(looks) >= 5
    # In a generated library, colour does not follow the chair base type.
    pairs = [make_asset("chair", np.random.default_rng(s))[-1] for s in range(90)]
    by_base = {}
    for a in pairs:
        by_base.setdefault(a["base"], set()).add(a["colour"])
    assert all(len(c) >= 4 for c in by_base.values())


def test_generated_files_load_back(small_library):
    lines = (small_library / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 8
    for line in lines:
        rec = json.loads(line)
        mesh = load_mesh(small_library / rec["path"])
        assert mesh.n_faces == rec["n_faces"] and mesh.texture is not None



def test_output_does_not_depend_on_the_clock(tmp_path):
    """Byte-identical output cannot depend on when it was written: generate across a second boundary."""
    import time

    generate_library(tmp_path / "a", 1, 0, progress=False)
    time.sleep(1.1)
    generate_library(tmp_path / "b", 1, 0, progress=False)
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert a == b
