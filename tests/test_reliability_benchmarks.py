"""The reliability benchmarks, rehearsed small so they cannot rot: kills, a full disk and a
read-only folder for one command (benchmarks/faults.py), and a slice of the fuzzer
(benchmarks/fuzz.py). The full runs and their figures are in BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_faults_rehearsal_kills_render_and_loses_nothing(tmp_path):
    out = tmp_path / "faults.json"
    proc = subprocess.run([sys.executable, str(BENCH / "faults.py"), "--small", "--commands", "render", "--kills", "3",
                           "--kills-per-chain", "3", "--jobs", "1", "--work", str(tmp_path / "w"), "--out", str(out)],
                          capture_output=True, text=True, timeout=480)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    row = res["commands"]["render"]
    assert row["kills"] >= 3
    assert row["reruns_completed"] == row["chains"] and row["lost_or_corrupt"] == 0, row["problems"]
    assert row["volatile_files"] == ["report.json"]  # timings; every other file must come out identical
    faults = row["write_faults"]
    assert len(faults) == 3 and all(f["ok"] for f in faults), faults
    assert faults[0]["exit"] == 3 and "No space left on device" in faults[0]["message"]  # no room at all: it must fail
    assert faults[2]["exit"] == 3 and "Read-only file system" in faults[2]["message"]


def test_fuzz_rehearsal_every_parser_answers_or_refuses(tmp_path):
    out = tmp_path / "fuzz.json"
    proc = subprocess.run([sys.executable, str(BENCH / "fuzz.py"), "--scale", "0.02", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert set(res["families"]) == {"where", "labels_csv", "weights_csv", "errors_csv", "library_manifest", "manifest_csv",
                                    "mesh", "texture_refs", "image", "scene_yaml"}
    total = res["total"]
    assert total["inputs"] >= 200 and total["failures"] == 0 and total["writes_outside"] == 0, \
        {k: v["examples"] for k, v in res["families"].items() if set(v["outcomes"]) - {"answered", "refused"}}
    assert total["outcomes"]["answered"] > 0 and total["outcomes"]["refused"] > 0


@pytest.mark.slow
def test_load_rehearsal_answers_every_query_while_a_build_and_a_tag_write(tmp_path):
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, str(BENCH / "load.py"), "--n", "1500", "--new", "100", "--clients", "2",
                           "--quiet-seconds", "1", "--layers", "app", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert set(res["scenarios"]) == {"app", "app+photo"}  # the app's shared catalog; the full run adds the API's
    for name, row in res["scenarios"].items():
        assert row["errors"] == 0 and row["stale_vector_answers"] == 0, (name, row["error_examples"])
        assert row["writer"]["build"]["exit"] == 0 and row["writer"]["tag"]["exit"] == 0, row["writer"]
        assert row["after_writer"] == {"assets": 1600, "new_assets_find_themselves": True, "predictions": 1600}
        assert row["latency"]["filtered/while_writing"]["n"] > 0 and row["latency"]["similar/quiet"]["n"] > 0
    assert res["scenarios"]["app+photo"]["latency"]["photo/while_writing"]["n"] > 0
