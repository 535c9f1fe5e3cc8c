"""`generate_library`: write N procedural assets (OBJ + MTL + PNG) and their manifest.

Per-asset random streams are spawned from the library seed (SeedSequence), so an
asset's files depend only on (seed, index): same seed, byte-identical library.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from render_core.artifacts import HEADER_NAME, is_temp_name, make_header, read_header, sweep_stale_temps, write_header
from render_core.assets.procedural import FAMILIES
from render_core.assets.procedural.appearance import appearance_from_params, sample_appearance, texture_image, triplanar_uvs
from render_core.assets.records import AssetRecord, write_manifest
from render_core.assets.obj_writer import write_textured_obj

MANIFEST = "manifest.jsonl"


def make_asset(family_name: str, rng: np.random.Generator, given: dict[str, float] | None = None):
    """(verts, faces, verts_uvs, faces_uvs, image, params, attributes) for one asset.

    `given`: generator parameters to use instead of sampling them (e.g. proposals from
    `assets2vec sparse`); every shape and appearance parameter of the family is required.
    """
    family = FAMILIES[family_name]
    shape_rng, look_rng = rng.spawn(2)  # independent streams: shape and texture are separable factors
    params = family.sample(shape_rng)
    if given is None:
        appearance = sample_appearance(look_rng)
    else:
        missing = sorted((set(params) | {"colour_index", "pattern_index", "frame_index", "pattern_scale"}) - set(given))
        if missing:
            raise ValueError(f"{family_name} parameters missing: {', '.join(missing)}")
        params = {k: float(given[k]) for k in params}
        appearance = appearance_from_params(given, look_rng)
    verts, faces, slots = family.build(params).build()
    verts_uvs, faces_uvs = triplanar_uvs(verts, faces, slots)
    attributes = {"family": family_name, **family.attributes(params), **appearance.attributes()}
    all_params = {**params, **appearance.params()}
    return verts, faces, verts_uvs, faces_uvs, texture_image(appearance), all_params, attributes


def read_proposals(path: str | Path) -> list[dict]:
    """The proposed assets of a file written by `assets2vec sparse --proposals`, checked."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable proposals file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "proposals" or not isinstance(doc.get("assets"), list):
        raise ValueError(f"{path}: not a proposals file (expected kind 'proposals' with a list of assets)")
    for i, a in enumerate(doc["assets"]):
        if not isinstance(a, dict) or a.get("family") not in FAMILIES or not isinstance(a.get("params"), dict):
            raise ValueError(f"{path}: asset {i} needs a known 'family' and a 'params' object")
    if not doc["assets"]:
        raise ValueError(f"{path}: proposes no assets")
    return doc["assets"]


def proposals_digest(proposals: list[dict] | None) -> str | None:
    """sha256 of the proposals as canonical JSON (keys sorted, order of assets kept), or None."""
    if proposals is None:
        return None
    def plain(o):  # proposals made in memory may hold NumPy numbers; written to a file, they are floats
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"proposals: {type(o).__name__} value {o!r} is not a number or text")

    text = json.dumps(proposals, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_folder(out: Path, seed: int, n: int, families: list[str], proposals: list[dict] | None) -> None:
    """Refuse a folder that holds anything but this same library (or nothing)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file; a library needs a folder")
    if not (out / HEADER_NAME).exists():
        # Temp files of a killed writer are ours to sweep, not someone else's content.
        other = sorted(p.name for p in out.iterdir() if not is_temp_name(p.name)) if out.exists() else []
        if other:
            raise ValueError(f"{out}: not empty and not a library ({', '.join(other[:3])}{', ...' if len(other) > 3 else ''}); "
                             "choose an empty folder")
        return
    header = read_header(out, "library")
    # Headers from before proposals were recorded: a library from proposals had `from_proposals`
    # true but no digest, and cannot be shown to be the same; one without them had neither.
    old = {"seed": header.get("seed"), "n": header.get("n"), "families": header.get("families"),
           "from_proposals": bool(header.get("from_proposals", False)), "proposals_sha256": header.get("proposals_sha256")}
    new = {"seed": seed, "n": n, "families": families, "from_proposals": proposals is not None,
           "proposals_sha256": proposals_digest(proposals)}
    diff = next((k for k in new if old[k] != new[k]), None)
    if diff is not None:
        said = {"proposals_sha256": "proposals" + (" (not recorded: made before their digest was kept)"
                                                   if old["from_proposals"] and old["proposals_sha256"] is None else "")}
        raise ValueError(f"{out} already holds a different library (seed {old['seed']}, n {old['n']}; differs in "
                         f"{said.get(diff, diff)}); choose an empty folder")


def generate_library(out: str | Path, n: int, seed: int, families: Sequence[str] | None = None, progress: bool = True,
                     proposals: list[dict] | None = None) -> list[AssetRecord]:
    """Generate `n` assets into `out`, cycling through `families` so they stay balanced; or, with
    `proposals` ([{"family", "params"}]), exactly those assets (n and families are then taken from them)."""
    if proposals is not None:
        n, families = len(proposals), sorted({p["family"] for p in proposals})
    if seed is None or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    families = list(families or FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; choose from {sorted(FAMILIES)}")
    out = Path(out)
    _check_folder(out, int(seed), n, families, proposals)
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(out)  # left by a run killed mid-write
    write_header(out, make_header("library", producer="assets2vec assets generate", seed=int(seed), n=n, families=families, up_axis="y",
                                  units="metres", from_proposals=proposals is not None,
                                  **({"proposals_sha256": proposals_digest(proposals)} if proposals is not None else {})))
    streams = np.random.SeedSequence(int(seed)).spawn(n)
    records = []
    for i in tqdm(range(n), desc="generate", unit="asset", disable=not progress):
        family = families[i % len(families)] if proposals is None else proposals[i]["family"]
        asset_id = f"{family}-{'s' if proposals is None else 'p'}{seed}-{i:05d}"
        given = None if proposals is None else proposals[i]["params"]
        try:
            verts, faces, vuv, fuv, image, params, attributes = make_asset(family, np.random.default_rng(streams[i]), given)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"proposal {i} ({family}): {exc}") from exc
        rel = Path("meshes") / family / asset_id
        write_textured_obj(out / rel, verts, faces, vuv, fuv, image, header=f"assets2vec procedural {family} {asset_id}")
        extent = verts.max(0) - verts.min(0)
        records.append(
            AssetRecord(
                id=asset_id,
                path=(rel / "model.obj").as_posix(),
                category=family,
                family=family,
                attributes=attributes,
                params=params,
                n_verts=int(len(verts)),
                n_faces=int(len(faces)),
                meta={"extent_m": [round(float(x), 4) for x in extent], "index": i},
            )
        )
    write_manifest(out / MANIFEST, records)
    return records
