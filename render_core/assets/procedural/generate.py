"""`generate_library`: write N procedural assets (OBJ + MTL + PNG) and their manifest.

Per-asset random streams are spawned from the library seed (SeedSequence), so an
asset's files depend only on (seed, index): same seed, byte-identical library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from render_core.artifacts import make_header, read_header, write_header
from render_core.assets.procedural import FAMILIES
from render_core.assets.procedural.appearance import sample_appearance, texture_image, triplanar_uvs
from render_core.assets.records import AssetRecord, write_manifest
from render_core.assets.obj_writer import write_textured_obj

MANIFEST = "manifest.jsonl"


def make_asset(family_name: str, rng: np.random.Generator):
    """(verts, faces, verts_uvs, faces_uvs, image, params, attributes) for one asset."""
    family = FAMILIES[family_name]
    shape_rng, look_rng = rng.spawn(2)  # independent streams: shape and texture are separable factors
    params = family.sample(shape_rng)
    appearance = sample_appearance(look_rng)
    verts, faces, slots = family.build(params).build()
    verts_uvs, faces_uvs = triplanar_uvs(verts, faces, slots)
    attributes = {"family": family_name, **family.attributes(params), **appearance.attributes()}
    all_params = {**params, **appearance.params()}
    return verts, faces, verts_uvs, faces_uvs, texture_image(appearance), all_params, attributes


def generate_library(out: str | Path, n: int, seed: int, families: Sequence[str] | None = None, progress: bool = True) -> list[AssetRecord]:
    """Generate `n` assets into `out`, cycling through `families` so they stay balanced."""
    if seed is None or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    families = list(families or FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; choose from {sorted(FAMILIES)}")
    out = Path(out)
    if (out / "artifact.json").exists():
        header = read_header(out, "library")
        if header.get("seed") != seed or header.get("n") != n or header.get("families") != families:
            raise ValueError(f"{out} already holds a different library (seed {header.get('seed')}, n {header.get('n')}); choose an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    write_header(out, make_header("library", producer="assets2vec assets generate", seed=int(seed), n=n, families=families, up_axis="y", units="metres"))
    streams = np.random.SeedSequence(int(seed)).spawn(n)
    records = []
    for i in tqdm(range(n), desc="generate", unit="asset", disable=not progress):
        family = families[i % len(families)]
        asset_id = f"{family}-s{seed}-{i:05d}"
        verts, faces, vuv, fuv, image, params, attributes = make_asset(family, np.random.default_rng(streams[i]))
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
