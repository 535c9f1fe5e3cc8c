"""Hostile input, fuzzed: every parser a user or a file reaches answers or refuses clearly.

Property-based (hypothesis, seeded by its database-free derandomised mode so CI is repeatable):
arbitrary and mutated inputs to the `--where` parser, the labels / weights / errors CSV readers,
the image reader used by search by photo and uploads, and the mesh loader. Each input must give
a correct answer or the parser's own error type (ValueError family, naming the input); any other
exception, or a hang, fails the test.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets2vec.catalog.filters import Clause, parse_where
from assets2vec.catalog.store import CatalogError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.text(max_size=200))
def test_where_parser_answers_or_refuses_any_text(text):
    try:
        clauses = parse_where(text)
    except CatalogError as exc:
        assert str(exc).startswith("--where:")
    else:
        assert clauses and all(c.values for c in clauses)


_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:-]{0,12}", fullmatch=True)
_VALUE = st.text(st.characters(blacklist_characters=",|\n\r\x00", blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
                 min_size=1, max_size=10)


@FUZZ
@given(st.lists(st.tuples(_NAME, st.booleans(), st.sets(_VALUE, min_size=1, max_size=3)), min_size=1, max_size=4))
def test_where_expressions_round_trip(parts):
    text = ", ".join(f"{n}{'!=' if neg else '='}{'|'.join(sorted(vals))}" for n, neg, vals in parts)
    assert parse_where(text) == [Clause(n, neg, frozenset(vals)) for n, neg, vals in parts]


def _png(mode: str, size=(7, 5)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode in ("L", "P", "I;16", "1") else (10, 200, 30)[: len(mode)]).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(mode: str = "RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (9, 6), (10, 20, 30, 40)[: len(mode)]).save(buf, "JPEG")
    return buf.getvalue()


def _check_image(data: bytes):
    from assets2vec.images import read_image

    try:
        a = read_image(data, name="fuzz.png")
    except ValueError as exc:
        assert "fuzz.png" in str(exc)
    else:
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (3, 4) and a.size > 0


@FUZZ
@given(st.binary(max_size=600))
def test_image_reader_answers_or_refuses_arbitrary_bytes(data):
    _check_image(data)


@FUZZ
@given(st.sampled_from(["png", "jpeg", "palette", "png16"]), st.data())
def test_image_reader_survives_truncated_and_corrupted_files(kind, data):
    raw = bytearray({"png": _png("RGB"), "jpeg": _jpeg(), "palette": _png("P"), "png16": _png("I;16")}[kind])
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4))
    for i, b in flips:
        raw[i] = b
    _check_image(bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw))


@pytest.mark.parametrize("make", [lambda: _png("I;16"), lambda: _png("P"), lambda: _png("LA"), lambda: _png("1"),
                                  lambda: _png("RGB", (1, 1)), lambda: _jpeg("CMYK"), lambda: _jpeg("L")])
def test_image_modes_people_upload_read_as_rgb(make):
    from assets2vec.images import read_image

    a = read_image(make(), name="upload")
    assert a.dtype == np.uint8 and a.shape[2] in (3, 4)


def test_decompression_bomb_is_refused_before_decoding():
    from PIL import Image

    from assets2vec.images import MAX_PIXELS, read_image

    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, "PNG")  # 400 Mpx of zeros: a few kilobytes on disk
    assert len(buf.getvalue()) < 200_000 and 20_000 * 20_000 > MAX_PIXELS
    with pytest.raises(ValueError, match="bomb|pixel limit"):
        read_image(buf.getvalue(), name="bomb.png")


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["labels", "weights", "errors"]))
def test_csv_readers_answer_or_refuse_arbitrary_files(tmp_path, data, which):
    from assets2vec.api import read_labels
    from assets2vec.catalog.scene_pool import read_weights
    from assets2vec.catalog.weak_spots import read_errors

    p = tmp_path / f"{which}.csv"
    p.write_bytes(data)
    try:
        if which == "labels":
            out = read_labels(p, "legs")
            assert out and all(isinstance(k, str) and v for k, v in out.items())
        elif which == "weights":
            w = read_weights(p, ["a", "b"])
            assert w.shape == (2,) and np.isfinite(w).all() and (w >= 0).all()
        else:
            e, n = read_errors(p, ["a", "b"])
            assert e.shape == n.shape == (2,)
    except CatalogError as exc:
        assert str(p) in str(exc) or "weights" in str(exc)


_NUM = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr), st.integers(-10**12, 10**12).map(str),
                 st.text("0123456789.-eE+", max_size=6))


@FUZZ
@given(st.lists(st.one_of(
    st.tuples(st.just("v"), _NUM, _NUM, _NUM).map(" ".join),
    st.tuples(st.just("f"), _NUM, _NUM, _NUM).map(" ".join),
    st.tuples(st.just("vt"), _NUM, _NUM).map(" ".join),
    st.sampled_from(["mtllib ../../etc/passwd", "mtllib missing.mtl", "usemtl x", "o x", "g", "#", "f 1/1/1 2/2/2 3/3/3"]),
    st.text(max_size=20)), max_size=30))
def test_obj_loader_answers_or_refuses_fuzzed_files(tmp_path, lines):
    from render_core.assets.loaders import AssetLoadError, load_mesh

    p = tmp_path / "m.obj"
    p.write_text("\n".join(lines), "utf-8", errors="surrogatepass")
    try:
        mesh = load_mesh(p)
    except AssetLoadError as exc:
        assert "m.obj" in str(exc)
    else:
        assert np.isfinite(mesh.verts).all() and len(mesh.faces) and mesh.faces.max() < len(mesh.verts)


def test_reading_an_upload_leaves_pils_process_wide_limit_alone():
    """Texture loading in the same process (the API renders scenes) relies on PIL's own limit."""
    from PIL import Image

    from assets2vec.images import read_image

    before = Image.MAX_IMAGE_PIXELS
    read_image(_png("RGB"), name="upload")
    assert Image.MAX_IMAGE_PIXELS == before


# Inputs the fuzz benchmark (benchmarks/fuzz.py) found that once escaped as tracebacks.

def test_a_png_with_a_broken_chunk_is_a_clear_error():
    """PIL reports some broken PNG chunks as SyntaxError, not OSError."""
    from assets2vec.images import read_image

    raw = _png("RGB", (8, 8))
    i = raw.index(b"IDAT") + 13
    raw = raw[:i] + b"1,5" + raw[i + 1:]  # two bytes more in the image data than its chunk length says
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        read_image(raw, name="broken.png")


@pytest.mark.parametrize("data", [b"path,category\n\xff\xfe,chair\n", b"path,category\n\"unterminated\x00,x\n"])
def test_manifest_csv_that_is_not_utf8_or_csv_names_the_file(tmp_path, data):
    from render_core.assets.library import open_library

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    m = tmp_path / "manifest.csv"
    m.write_bytes(data)
    try:
        open_library(tmp_path / "lib", m)
    except ValueError as exc:
        assert "manifest.csv" in str(exc)


def test_library_manifest_that_is_not_utf8_names_the_file(tmp_path):
    from render_core.assets.library import MANIFEST, open_library
    from render_core.artifacts import make_header, write_header

    lib = tmp_path / "lib"
    lib.mkdir()
    write_header(lib, make_header("library", producer="test", seed=0))
    (lib / MANIFEST).write_bytes(b'{"id": "a\xff", "path": "a.obj", "category": "chair"}\n')
    with pytest.raises(ValueError, match=f"{MANIFEST}: not UTF-8"):
        open_library(lib)
    (lib / MANIFEST).write_bytes(b'["a list, not a record"]\n')
    with pytest.raises(ValueError, match=f"{MANIFEST}:1: bad manifest line"):
        open_library(lib)


def test_scene_config_nested_deeper_than_the_stack_is_a_clear_error(tmp_path):
    from render_core.scenes.config import SceneConfigError, load_config

    p = tmp_path / "deep.yaml"
    p.write_text("[" * 5000)
    with pytest.raises(SceneConfigError, match="deep.yaml: not valid YAML"):
        load_config(p)


# Found by benchmarks/fuzz.py (seed 0): errors that once escaped without naming the input.
_RAGGED_OBJ = b'mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 -1e308 0\nv 0 1 0\nv  0 1\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvn nan 0 -inf\nusemtl red\nf 1/1/1 2/2/1 3/3/1\nf 1/1/1 3/3/1 4/4/1\nf 0x10/inf/1\xe1P\x90m\xa3\xd0j\xf0\r\xad\x1f\x18\x0f\x8b\xd8[K\x0e\xb3\xa3\x90^\x99\x08t\x8d\x8ei\n_ 2/2/1 0/3/1\n'
_TILE_PAST_EDGE_GIF = bytes.fromhex("474946383761080008008000000000000000002c000000000000000000002c000000000000000000002c000000000000000000002c000000000000000000002c000000000000000000002c000000000000000000002c000000000000000000002c000000000000000000002c000000000000000000002c000000000800080000080f0001081c48b0a0c18308132a4c1810003b")


def test_an_obj_whose_faces_do_not_come_in_threes_names_the_file(tmp_path):
    from render_core.assets.loaders import AssetLoadError, load_mesh

    p = tmp_path / "ragged.obj"
    p.write_bytes(_RAGGED_OBJ.replace(b"mtllib m.mtl\n", b""))
    with pytest.raises(AssetLoadError, match="ragged.obj"):
        load_mesh(p)


def test_an_image_whose_tile_leaves_the_frame_names_the_upload():
    from assets2vec.images import read_image

    with pytest.raises(ValueError, match="upload.gif: not a readable image"):
        read_image(_TILE_PAST_EDGE_GIF, name="upload.gif")


def test_a_scene_config_with_a_null_key_names_the_setting(tmp_path):
    from render_core.scenes.config import SceneConfigError, load_config

    p = tmp_path / "null.yaml"
    p.write_text("camera:\n  ~: 1\n  zoom: 2\n")
    with pytest.raises(SceneConfigError, match="unknown setting"):
        load_config(p)


def test_a_vertex_beyond_float32_range_is_refused(tmp_path):
    """1e300 is a finite float64 but inf once the mesh is in float32 for rendering."""
    from render_core.assets.loaders import AssetLoadError, load_mesh

    p = tmp_path / "far.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1e300 0\nf 1 2 3\n")
    with pytest.raises(AssetLoadError, match="far.obj: 1 of 3 vertices have NaN/inf"):
        load_mesh(p)


def test_a_manifest_path_with_a_nul_byte_names_the_manifest(tmp_path):
    from render_core.assets.library import MANIFEST, open_library
    from render_core.artifacts import make_header, write_header

    lib = tmp_path / "lib"
    lib.mkdir()
    write_header(lib, make_header("library", producer="test", seed=0))
    (lib / MANIFEST).write_text('{"id": "a", "path": "a.obj\\u0000.png", "category": "chair"}\n')
    with pytest.raises(ValueError, match=f"{MANIFEST}: asset 'a' has a NUL byte"):
        open_library(lib)
