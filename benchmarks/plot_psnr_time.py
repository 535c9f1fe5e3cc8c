"""Plot held-out PSNR against training wall time for the presets benchmarked by fit_budget.py.

    .venv/bin/python benchmarks/plot_psnr_time.py   # -> docs/psnr_vs_time.png
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"fast": "assets2vec (code-decoded triplanes, surface-guided)", "codenerf": "CodeNeRF reference (Jang & Agapito 2021)"}


def main() -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    summary = {}
    for preset in ("fast", "codenerf"):
        path = ROOT / "benchmarks" / "results" / f"fit_{preset}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        t = [c["seconds"] / 60 for c in r["curve"]]
        p = [c["psnr"] for c in r["curve"]]
        ax.plot(t, p, marker="o", ms=3, label=f"{LABELS.get(preset, preset)}: final {r['heldout_psnr']:.2f} dB on {r['assets']} assets")
        summary[preset] = r["heldout_psnr"]
    ax.axhline(26.0, color="grey", ls="--", lw=1, label="target 26 dB")
    ax.set_xlabel("training wall time (min), 2-core CPU")
    ax.set_ylabel("held-out PSNR (dB), 8 assets")
    ax.set_title("120 demo assets, 16 training views at 64x64 each")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    out = ROOT / "docs" / "psnr_vs_time.png"
    fig.savefig(out)
    print(json.dumps({"plot": str(out.relative_to(ROOT)), "final_psnr": summary}))


if __name__ == "__main__":
    main()
