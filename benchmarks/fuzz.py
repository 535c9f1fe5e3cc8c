"""Hostile input, fuzzed: every parser a user or a file reaches, thousands of broken inputs each.

Seeded mutation fuzzing of valid seed files (truncation, byte flips, inserted and repeated
chunks, numbers replaced by NaN / inf / huge values, other text encodings, dropped and swapped
lines) plus hand-written hostile cases, for:

- `--where` expressions (`parse_where`), random text and mutated valid expressions;
- labels, weights and errors CSVs (`read_labels`, `read_weights`, `read_errors`);
- library manifests (`manifest.jsonl` read by `open_library`, and `render --manifest` CSVs);
- mesh files: OBJ, PLY (text and binary), STL (text and binary), GLB (`load_mesh`);
- material and texture references: paths outside the asset's folder, absolute paths, symlinks
  leaving the folder, missing files, oversized textures (`load_mesh` of an OBJ + MTL);
- images for search by photo and uploads (`read_image`): PNG (RGB, RGBA, palette, 16-bit, 1-bit),
  JPEG (RGB, grey, CMYK), GIF, BMP, TIFF, 1x1 images and decompression bombs;
- scene config YAML (`load_config`): mutated configs, wrong types, alias bombs, Python tags.

Every input must give an answer that holds the parser's invariants, or the error a CLI command
turns into one line (a ValueError, FileNotFoundError, KeyError) that names the input. Counted
as failures: any other exception, a wrong answer, an error that does not name the input, a hang
(over --timeout seconds), and any file written outside the input's own folder (each input lives
in a folder of its own, inside a sandbox that is the working directory; both are listed before
and after every input). Reading outside is checked too: a texture reference that leaves the
folder must be refused, never loaded.

    .venv/bin/python benchmarks/fuzz.py                 # 12,000 inputs; a few minutes on 2 cores
    .venv/bin/python benchmarks/fuzz.py --scale 0.05    # a quick look

Writes benchmarks/results/fuzz.json (and prints one JSON line last).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.json"
CLEAR_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, KeyError)
"""What `assets2vec.cli.main` reports as one line (CatalogError, AssetLoadError, SceneConfigError
and ArtifactError are ValueErrors)."""


# ----------------------------------------------------------------------------- mutations

NUMBER = re.compile(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?")
HOSTILE_NUMBERS = [b"nan", b"inf", b"-inf", b"-1", b"0", b"1e308", b"-1e308", b"99999999999999999999", b"4294967295",
                   b"2147483648", b"1e-320", b"", b"0x10", b"1,5"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random mutations of `data`."""
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


def _truncate(d: bytes, rng) -> bytes:
    return d[: rng.randint(0, len(d))]


def _flip(d: bytes, rng) -> bytes:
    b = bytearray(d)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def _insert(d: bytes, rng) -> bytes:
    i = rng.randint(0, len(d))
    return d[:i] + rng.randbytes(rng.randint(1, 64)) + d[i:]


def _repeat(d: bytes, rng) -> bytes:
    if not d:
        return d
    i = rng.randrange(len(d))
    j = min(len(d), i + rng.randint(1, 200))
    return d[:j] + d[i:j] * rng.randint(2, 50) + d[j:]


def _numbers(d: bytes, rng) -> bytes:
    matches = list(NUMBER.finditer(d))
    if not matches:
        return d
    out = bytearray(d)
    for m in sorted(rng.sample(matches, min(len(matches), rng.randint(1, 6))), key=lambda m: -m.start()):
        out[m.start():m.end()] = rng.choice(HOSTILE_NUMBERS)
    return bytes(out)


def _encoding(d: bytes, rng) -> bytes:
    text = d.decode("utf-8", "replace") + rng.choice(["é", "漢字", "\u202e", "\x00", "\ufeff", "\udcff"])
    enc = rng.choice(["utf-16", "latin-1", "utf-32", "utf-8-sig", "utf-8"])
    return text.encode(enc, "surrogateescape" if enc == "utf-8" else "replace")


def _lines(d: bytes, rng) -> bytes:
    lines = d.split(b"\n")
    if len(lines) < 2:
        return d
    op = rng.randrange(3)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if op == 0:
        del lines[i]
    elif op == 1:
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines.insert(i, lines[j] * rng.randint(1, 3))
    return b"\n".join(lines)


MUTATIONS = [_truncate, _flip, _insert, _repeat, _numbers, _numbers, _encoding, _lines, _lines]


# ----------------------------------------------------------------------------- cases

@dataclass
class Case:
    """One input: `call()` parses it; `check(result)` returns what is wrong with an answer or None;
    an error must contain `name`."""
    call: Callable[[], Any]
    name: str
    check: Callable[[Any], str | None] = lambda r: None


def _save(folder: Path, name: str, data: bytes) -> Path:
    p = folder / name
    p.write_bytes(data)
    return p


# -- --where

_WHERE_SEEDS = ["family=chair", "family!=table", "swivel=yes|no, family=chair", "colour=red|blue,legs!=4",
                "tag:reviewed=yes", "a.b=c d, e=f|g|h"]


def where_case(rng: random.Random, folder: Path) -> Case:
    from assets2vec.catalog.filters import parse_where

    if rng.random() < 0.4:
        text = "".join(rng.choice("=!|,: \t\n\x00ab.é漢-_=|,") for _ in range(rng.randint(0, 40)))
    else:
        text = mutate(rng.choice(_WHERE_SEEDS).encode(), rng).decode("utf-8", "replace")

    def check(clauses) -> str | None:
        if not clauses or not all(c.values and c.name for c in clauses):
            return f"parsed {text!r} into {clauses}"
        return None
    return Case(lambda: parse_where(text), "--where", check)


# -- CSVs

_LABELS = b"id,value\nchair_000,yes\nchair_001,no\nlamp_002,yes\n"
_WEIGHTS = b"id,weight\nchair_000,1.5\nchair_001,0\nlamp_002,2\n"
_ERRORS = b"asset_id,error\nchair_000,0.25\nchair_001,0.75\nchair_000,0.5\n"
_IDS = ["chair_000", "chair_001", "lamp_002"]


def csv_case(rng: random.Random, folder: Path, which: str) -> Case:
    from assets2vec.api import read_labels
    from assets2vec.catalog.scene_pool import read_weights
    from assets2vec.catalog.weak_spots import read_errors

    seed = {"labels": _LABELS, "weights": _WEIGHTS, "errors": _ERRORS}[which]
    data = rng.randbytes(rng.randint(0, 300)) if rng.random() < 0.15 else mutate(seed, rng)
    p = _save(folder, f"{which}.csv", data)
    if which == "labels":
        return Case(lambda: read_labels(p, "swivel"), str(p),
                    lambda r: None if r and all(isinstance(k, str) and k and v for k, v in r.items()) else f"bad labels {r}")
    if which == "weights":
        return Case(lambda: read_weights(p, _IDS), str(p),
                    lambda w: None if w.shape == (3,) and np.isfinite(w).all() and (w >= 0).all() else f"bad weights {w}")
    return Case(lambda: read_errors(p, _IDS), str(p),
                lambda r: None if r[0].shape == r[1].shape == (3,) and np.isfinite(r[0]).all() else f"bad errors {r}")


# -- meshes

def _seed_meshes() -> dict[str, bytes]:
    import trimesh

    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([200, 30, 40, 255], (len(box.vertices), 1)).astype(np.uint8)
    out = {}
    for ext, kw in [("ply", {"encoding": "ascii"}), ("ply", {"encoding": "binary"}), ("stl", {"file_type": "stl_ascii"}),
                    ("stl", {}), ("glb", {})]:
        key = ext if ext not in out else f"{ext}_b"
        data = box.export(file_type=kw.pop("file_type", ext), **kw)
        out[key] = data.encode() if isinstance(data, str) else data
    out["obj"] = _OBJ
    return out


_OBJ = b"""mtllib m.mtl
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 0 0 1
vt 0 0
vt 1 0
vt 1 1
vt 0 1
vn 0 0 1
usemtl red
f 1/1/1 2/2/1 3/3/1
f 1/1/1 3/3/1 4/4/1
f 1/1/1 2/2/1 5/3/1
"""
_MTL = b"newmtl red\nKd 0.8 0.1 0.1\nmap_Kd tex.png\n"


def _png(mode: str = "RGB", size=(8, 8), colour=(10, 200, 30), fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if mode in ("L", "P", "I;16", "1", "I"):
        colour = 128 if mode != "1" else 1
    elif mode in ("RGBA", "CMYK"):
        colour = (*colour, 255)[:4]
    elif mode == "LA":
        colour = (128, 255)
    Image.new(mode, size, colour).save(buf, fmt)
    return buf.getvalue()


def _mesh_ok(mesh) -> str | None:
    v, f = np.asarray(mesh.verts), np.asarray(mesh.faces)
    if not len(f) or not np.isfinite(v).all() or f.min() < 0 or f.max() >= len(v):
        return f"an invalid mesh came back: {len(v)} verts, {len(f)} faces"
    return None


def mesh_case(rng: random.Random, folder: Path, seeds: dict[str, bytes]) -> Case:
    from render_core.assets.loaders import load_mesh

    key = rng.choice(sorted(seeds))
    ext = key.split("_")[0]
    if ext == "obj":
        _save(folder, "m.mtl", mutate(_MTL, rng) if rng.random() < 0.3 else _MTL)
        _save(folder, "tex.png", mutate(_png(), rng) if rng.random() < 0.3 else _png())
    p = _save(folder, f"m.{ext}", mutate(seeds[key], rng))
    return Case(lambda: load_mesh(p), p.name, _mesh_ok)


SECRET = (7, 250, 7)
"""The colour of a texture outside every input's folder: a mesh that comes back with it read outside."""


@functools.lru_cache(1)
def _bomb() -> bytes:
    """A 400-megapixel PNG of a few kilobytes."""
    return _png("1", (20_000, 20_000))


def texture_ref_case(rng: random.Random, folder: Path, secret: Path) -> Case:
    from render_core.assets.loaders import load_mesh

    kind = rng.choice(["parent", "absolute", "symlink", "symlink_dir", "missing", "bomb", "dotdot_mtl", "mutated"])
    mtl, mtllib = _MTL, b"m.mtl"
    if kind == "parent":
        mtl = b"newmtl red\nKd 0.8 0.1 0.1\nmap_Kd ../" + b"../" * rng.randint(0, 3) + secret.name.encode() + b"\n"
    elif kind == "absolute":
        mtl = b"newmtl red\nmap_Kd " + str(secret).encode() + b"\n"
    elif kind == "symlink":
        os.symlink(secret, folder / "tex.png")
    elif kind == "symlink_dir":
        os.symlink(secret.parent, folder / "up")
        mtl = b"newmtl red\nmap_Kd up/" + secret.name.encode() + b"\n"
    elif kind == "missing":
        mtl = b"newmtl red\nmap_Kd nothere.png\n"
    elif kind == "bomb":
        _save(folder, "tex.png", _bomb())
    elif kind == "dotdot_mtl":
        mtllib = b"../" + b"../" * rng.randint(0, 3) + b"outside.mtl"
    else:
        mtl = mutate(_MTL.replace(b"tex.png", rng.choice([b"../tex.png", b"/etc/passwd", b"tex.png\x00.jpg", b"C:\\tex.png"])), rng)
    if not (folder / "tex.png").exists():
        _save(folder, "tex.png", _png())
    _save(folder, "m.mtl", mtl)
    p = _save(folder, "m.obj", _OBJ.replace(b"mtllib m.mtl", b"mtllib " + mtllib))

    def check(mesh) -> str | None:
        bad = _mesh_ok(mesh)
        tex = getattr(mesh, "texture", None)
        image = getattr(tex, "image", None)
        if image is not None and np.array_equal(np.asarray(image).reshape(-1, np.asarray(image).shape[-1])[0, :3], SECRET):
            return f"{kind}: a texture outside the asset's folder was loaded"
        return bad
    return Case(lambda: load_mesh(p), p.name, check)


# -- images

def _image_seeds() -> list[bytes]:
    from PIL import Image

    seeds = [_png(), _png("RGBA"), _png("P"), _png("I;16"), _png("1"), _png("LA"), _png("RGB", (1, 1)),
             _png("RGB", fmt="JPEG"), _png("L", fmt="JPEG"), _png("CMYK", fmt="JPEG"), _png("P", fmt="GIF"),
             _png("RGB", fmt="BMP"), _png("RGB", fmt="TIFF"), _png("I;16", fmt="TIFF")]
    buf = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(buf, "PNG")  # 900 Mpx in a few kilobytes
    seeds.append(buf.getvalue())
    return seeds


def image_case(rng: random.Random, folder: Path, seeds: list[bytes]) -> Case:
    from assets2vec.images import read_image

    data = rng.randbytes(rng.randint(0, 400)) if rng.random() < 0.1 else rng.choice(seeds)
    if rng.random() < 0.85:
        data = mutate(data, rng)
    as_path = rng.random() < 0.5
    p = _save(folder, "photo.png", data) if as_path else None

    def check(a) -> str | None:
        ok = isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (3, 4) and a.size
        return None if ok else f"read as {getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}"
    return Case((lambda: read_image(p)) if as_path else (lambda: read_image(data, name="upload.png")),
                "photo.png" if as_path else "upload.png", check)


# -- library manifests

def manifest_case(rng: random.Random, folder: Path, csv_manifest: bool) -> Case:
    from render_core.artifacts import write_header
    from render_core.assets.library import open_library

    lib = folder / "lib"
    (lib / "meshes").mkdir(parents=True)
    (lib / "meshes" / "a.obj").write_bytes(_OBJ.replace(b"mtllib m.mtl\n", b""))
    (lib / "meshes" / "b.obj").write_bytes(_OBJ.replace(b"mtllib m.mtl\n", b""))
    hostile = rng.choice(["../../etc/passwd", "/etc/passwd", "meshes/../../x.obj", "meshes/a.obj\x00", "a" * 5000, "é/漢.obj",
                          "meshes/missing.obj", "meshes/b.obj"])
    if csv_manifest:
        seed = f"path,category,swivel\nmeshes/a.obj,chair,yes\n{hostile},table,no\n".encode("utf-8", "replace")
        m = _save(folder, "manifest.csv", mutate(seed, rng))
        return Case(lambda: open_library(lib, m), "manifest.csv", lambda r: _library_ok(lib, r))
    write_header(lib, {"kind": "library", "format_version": 1, "producer": "fuzz", "seed": 0})
    lines = [json.dumps({"id": "a", "path": "meshes/a.obj", "category": "chair", "attributes": {"swivel": "yes"}}),
             json.dumps({"id": rng.choice(["b", "../b", "b/c", "", "b" * 300]), "path": hostile, "category": "table"})]
    _save(lib, "manifest.jsonl", mutate("\n".join(lines).encode(), rng))
    return Case(lambda: open_library(lib), "manifest.jsonl", lambda r: _library_ok(lib, r))


def _library_ok(lib: Path, library) -> str | None:
    root = lib.resolve()
    for r in library.records:
        p = (root / r.path).resolve()
        if root not in p.parents:
            return f"record {r.id!r} points outside the library: {r.path!r}"
    return None


# -- scene config YAML

def yaml_case(rng: random.Random, folder: Path) -> Case:
    from render_core.scenes.config import DEFAULT_CONFIG, SceneConfig, load_config

    seed = DEFAULT_CONFIG.read_bytes()
    pick = rng.random()
    if pick < 0.08:
        depth = rng.randint(5, 12)
        data = b"a: &a [x, x, x, x, x, x, x, x]\n" + b"".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n".encode()
            for i in range(depth)) + f"camera: *{chr(97 + depth)}\n".encode()
    elif pick < 0.12:
        data = rng.choice([b"!!python/object/apply:os.system ['touch pwned']\n", b"camera: !!python/name:os.system\n",
                           b"[" * 5000, b"{a: " * 3000, b"\xff\xfe\x00", b"objects: {min: 1e400}\n"])
    else:
        data = mutate(seed, rng)
    p = _save(folder, "scenes.yaml", data)
    return Case(lambda: load_config(p), p.name, lambda c: None if isinstance(c, SceneConfig) else f"returned {type(c)}")


# ----------------------------------------------------------------------------- running

class Hang(Exception):
    """Raised by the alarm in an input that runs past --timeout."""


def _alarm(signum, frame):
    raise Hang()


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame in our own packages (else the innermost), for the report."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/assets2vec/" in f.filename or "/render_core/" in f.filename] or frames
    f = ours[-1]
    return f"{Path(f.filename).name}:{f.lineno}"


def run_case(case: Case, timeout: float) -> tuple[str, str | None]:
    """(outcome, detail) with outcome in answered / refused / failed kinds."""
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        result = case.call()
    except Hang:
        return "hang", case.name
    except CLEAR_ERRORS as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        msg = str(exc)
        if case.name not in msg:
            return "unclear_error", f"{type(exc).__name__}: {msg[:200]} ({_where(exc)})"
        return "refused", None
    except Exception as exc:  # noqa: BLE001 - counting exactly these is the point
        signal.setitimer(signal.ITIMER_REAL, 0)
        return "uncaught", f"{type(exc).__name__}: {str(exc)[:200]} ({_where(exc)})"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    problem = case.check(result)
    return ("wrong", problem) if problem else ("answered", None)


FAMILIES: dict[str, int] = {
    "where": 2000, "labels_csv": 1000, "weights_csv": 800, "errors_csv": 700, "library_manifest": 600,
    "manifest_csv": 500, "mesh": 3000, "texture_refs": 400, "image": 2200, "scene_yaml": 800,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every family's count")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before an input counts as a hang")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    import warnings

    warnings.simplefilter("ignore")  # parsers warn about broken files; the outcome is what counts
    names = [f for f in args.families.split(",") if f]
    mesh_seeds, image_seeds = _seed_meshes(), _image_seeds()
    res: dict = {"seed": args.seed, "timeout_s": args.timeout, "families": {}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp) / "sandbox"
        (sandbox / "inputs").mkdir(parents=True)
        secret = Path(tmp) / "secret.png"
        secret.write_bytes(_png(colour=SECRET))
        (Path(tmp) / "outside.mtl").write_bytes(b"newmtl red\nmap_Kd " + str(secret).encode() + b"\n")
        (sandbox / "secret.png").write_bytes(secret.read_bytes())
        makers: dict[str, Callable[[random.Random, Path], Case]] = {
            "where": where_case,
            "labels_csv": lambda r, f: csv_case(r, f, "labels"),
            "weights_csv": lambda r, f: csv_case(r, f, "weights"),
            "errors_csv": lambda r, f: csv_case(r, f, "errors"),
            "library_manifest": lambda r, f: manifest_case(r, f, False),
            "manifest_csv": lambda r, f: manifest_case(r, f, True),
            "mesh": lambda r, f: mesh_case(r, f, mesh_seeds),
            "texture_refs": lambda r, f: texture_ref_case(r, f, secret),
            "image": lambda r, f: image_case(r, f, image_seeds),
            "scene_yaml": yaml_case,
        }
        old_cwd = os.getcwd()
        os.chdir(sandbox)
        try:
            for name in names:
                res["families"][name] = fuzz_family(name, makers[name], max(1, round(FAMILIES[name] * args.scale)),
                                                    args.seed, sandbox, args.timeout)
        finally:
            os.chdir(old_cwd)
    fams = res["families"].values()
    outcomes = Counter()
    for f in fams:
        outcomes.update(f["outcomes"])
    failed = sum(v for k, v in outcomes.items() if k not in ("answered", "refused"))
    res["total"] = {"inputs": sum(f["inputs"] for f in fams), "outcomes": dict(outcomes), "failures": failed,
                    "writes_outside": sum(f["writes_outside"] for f in fams), "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["total"]))


def fuzz_family(name: str, make: Callable, n: int, seed: int, sandbox: Path, timeout: float) -> dict:
    rng = random.Random(f"{seed}:{name}")
    outcomes: Counter = Counter()
    examples: dict[str, list] = {}
    outside = 0
    t0 = time.perf_counter()
    base = _listing(sandbox)
    for i in range(n):
        folder = sandbox / "inputs" / f"{name}{i}"
        folder.mkdir()
        case = make(rng, folder)
        made = _listing(folder)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            outcome, detail = run_case(case, timeout)
        outcomes[outcome] += 1
        if detail and len(examples.setdefault(outcome, [])) < 5:
            examples[outcome].append(detail)
        if _listing(folder) != made or _listing(sandbox) - base - {str(Path("inputs") / folder.name)} - {
                str(Path("inputs") / folder.name / m) for m in made}:
            outside += 1
            examples.setdefault("wrote_outside", []).append(case.name)
        _remove(folder)
        if (i + 1) % 500 == 0 or i + 1 == n:
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"{name}: {i + 1}/{n} inputs, {rate:.0f}/s, ETA {(n - i - 1) / rate:.0f} s, {dict(outcomes)}",
                  file=sys.stderr, flush=True)
    return {"inputs": n, "outcomes": dict(outcomes), "writes_outside": outside, "examples": examples,
            "seconds": round(time.perf_counter() - t0, 1)}


def _remove(folder: Path) -> None:
    for p in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)):
        if p.is_symlink() or p.is_file():
            p.unlink()
        else:
            p.rmdir()
    folder.rmdir()


if __name__ == "__main__":
    main()
