"""Print the Markdown table of a `benchmarks/tagging.py` result, as BENCHMARKS.md quotes it.

    .venv/bin/python benchmarks/tagging_table.py benchmarks/results/tagging.json

One row per attribute and label count, one column per space (accuracy in %, bold where the
space should carry the attribute), then the disentanglement lines: balanced accuracy minus
chance for each attribute read from the spaces that should not carry it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = {"shape": "shape codes", "geometry": "geometry", "texture": "texture codes", "texture_only": "texture_only",
           "appearance": "appearance", "joint": "joint", "silhouettes": "reference: silhouettes",
           "mesh": "reference: meshes"}
CARRIERS = {"shape": {"shape", "geometry"}, "texture": {"texture", "texture_only", "appearance"}}


def table(result: dict) -> str:
    rows = result["table"]
    spaces = [s for s in COLUMNS if any(r["space"] == s for r in rows)]
    lines = ["| attribute (classes, chance) | labels / class | " + " | ".join(COLUMNS[s] for s in spaces) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in spaces) + " |"]
    keys = sorted({(r["attribute"], r["labels_per_class"]) for r in rows},
                  key=lambda k: ([r["attribute"] for r in rows].index(k[0]), k[1]))
    for attr, per_class in keys:
        cells = {r["space"]: r for r in rows if r["attribute"] == attr and r["labels_per_class"] == per_class}
        any_cell = next(iter(cells.values()))
        dropped = f"; dropped {', '.join(any_cell['dropped'])}" if any_cell["dropped"] else ""
        head = f"{attr} ({any_cell['classes']}, {any_cell['chance'] * 100:.0f}%{dropped})"
        out = []
        for s in spaces:
            c = cells.get(s)
            text = "—" if c is None else f"{c['accuracy'] * 100:.1f}"
            out.append(f"**{text}**" if c is not None and s in CARRIERS[any_cell["kind"]] else text)
        lines.append(f"| {head} | {per_class} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def leaks(result: dict) -> str:
    items = result["targets"]["cross_space_within_10_points_of_chance"]
    return "\n".join(f"- {name}: {v['balanced_accuracy'] * 100:.1f} % balanced (chance {v['chance'] * 100:.1f} %, "
                     f"{(v['balanced_accuracy'] - v['chance']) * 100:+.1f} points){'' if v['within_10_points'] else ' — over the line'}"
                     for name, v in items.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", type=Path, help="a JSON file written by benchmarks/tagging.py")
    args = ap.parse_args()
    result = json.loads(args.result.read_text())
    print(table(result))
    print()
    print(leaks(result))


if __name__ == "__main__":
    main()
