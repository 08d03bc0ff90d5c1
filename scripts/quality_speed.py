"""Quality against CPU cost: docs/figures/quality_speed.png and a markdown table.

    python scripts/quality_speed.py EVALUATION [--models default synthetic ...] [--presets deepconvsep]
        [--threads 2] [--seconds 60] [--peers benchmarks/results/separation_speed.json]
        [--out docs/figures/quality_speed.png] [--json benchmarks/results/quality_speed.json]

Quality: the real four-stem validation set as ``convsep evaluate --root ../shared/data/real
--split valid -m MODEL ... -o EVALUATION`` scored it: global SDR per stem, median over songs,
then the mean of the four medians (``EVALUATION/<method>/global_sdr.csv``). Cost: seconds of
wall time to separate ``--seconds`` of stereo through ``Separator.separate_tensor`` on
``--threads`` torch threads (minimum of 3 runs, in this process, with the allocator as the
``convsep`` command sets it), scaled to one minute of stereo. Open-Unmix and HTDemucs appear
at their published MUSDB18 test-set SDR (not the same songs: marked as published) with the
time that ``benchmarks/separation_speed.py`` measured for them (random weights) on this kind
of machine, from its results file.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import machine, timed  # noqa: E402

from convsep.constants import SAMPLE_RATE, SOURCES  # noqa: E402
from convsep.models import PRESETS, ConvSep  # noqa: E402
from convsep.runtime.allocator import keep_freed_memory  # noqa: E402
from convsep.separation.separator import Separator  # noqa: E402

# Published MUSDB18 test-set SDR (median of medians, mean of the four stems): see ../shared/reference.
PUBLISHED = {"Open-Unmix (umxhq)": ("Open-Unmix, 0 Wiener it.", 5.33), "HTDemucs": ("HTDemucs", 7.52)}


def validation_mean(evaluation: Path, method: str) -> dict:
    """Median global SDR over the songs per stem, and their mean, of one evaluated method."""
    table = pd.read_csv(evaluation / method / "global_sdr.csv")
    medians = table[table["target"].isin(SOURCES)].groupby("target")["SDR"].median()
    row = {s: round(float(medians[s]), 2) for s in SOURCES}
    return {**row, "mean": round(float(np.mean(list(row.values()))), 2)}


def seconds_per_minute(separator: Separator, seconds: float) -> float:
    x = 0.1 * torch.randn(2, int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(0))
    run = timed(lambda: separator.separate_tensor(x), repeats=3)
    return min(run["times_s"]) * 60.0 / seconds


def peer_times(path: Path) -> dict:
    """{what: seconds per minute of stereo} of the peers in a separation_speed results file."""
    if not path.is_file():
        return {}
    rows = json.loads(path.read_text())["results"]
    out = {}
    for r in rows:
        if r["what"] in {v[0] for v in PUBLISHED.values()} and r["what"] not in out:
            out[r["what"]] = r["median_s"] * 60.0 / r["seconds"]
    return out


def figure(points: list[dict], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for p in points:
        published = p["kind"] == "published"
        ax.scatter(p["seconds_per_minute"], p["sdr"], marker="s" if published else "o",
                   color="tab:gray" if published else "tab:blue", s=50)
        ax.annotate(p["name"] + (" (published, MUSDB18 test)" if published else ""),
                    (p["seconds_per_minute"], p["sdr"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(p["seconds_per_minute"] for p in points) / 2, max(p["seconds_per_minute"] for p in points) * 12)
    ax.set_xlabel("seconds to separate one minute of stereo (2 CPU threads, log scale)")
    ax.set_ylabel("SDR (dB, mean of the four stems)")
    ax.set_title("convsep on the real four-stem validation set (median global SDR)\n"
                 "peers at their published MUSDB18 scores, timed here", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("evaluation", type=Path)
    parser.add_argument("--models", nargs="*", default=["default", "synthetic"],
                        help="bundled names or files; their evaluation method is the name (or the file's stem)")
    parser.add_argument("--presets", nargs="*", default=[],
                        help="presets with random weights: timed only (their method in EVALUATION if present)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--peers", type=Path, default=Path("benchmarks/results/separation_speed.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/figures/quality_speed.png"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/quality_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    points = []
    for model in args.models:
        method = Path(model).stem if model.endswith(".pt") else model
        quality = validation_mean(args.evaluation, method)
        cost = seconds_per_minute(Separator.load(model), args.seconds)
        points.append({"name": method, "kind": "model", "sdr": quality["mean"], "stems": quality,
                       "seconds_per_minute": round(cost, 2)})
    for name in args.presets:
        if not (args.evaluation / name / "global_sdr.csv").is_file():
            continue
        quality = validation_mean(args.evaluation, name)
        cost = seconds_per_minute(Separator(ConvSep(PRESETS[name]).eval()), args.seconds)
        points.append({"name": name, "kind": "preset", "sdr": quality["mean"], "stems": quality,
                       "seconds_per_minute": round(cost, 2)})
    measured = peer_times(args.peers)
    for name, (what, sdr) in PUBLISHED.items():
        if what in measured:
            points.append({"name": name, "kind": "published", "sdr": sdr,
                           "seconds_per_minute": round(measured[what], 2), "timed_in": str(args.peers)})
    figure(points, args.out)
    args.json.write_text(json.dumps({"machine": machine("cpu"),
                                     "seconds": args.seconds, "points": points}, indent=1) + "\n")
    print("| model | validation SDR (mean of 4) | vocals | drums | bass | other | s per minute of stereo |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for p in points:
        stems = p.get("stems", {})
        cells = " | ".join(f"{stems[s]:.2f}" if s in stems else "-" for s in SOURCES)
        label = p["name"] + (" (published MUSDB18 test)" if p["kind"] == "published" else "")
        print(f"| {label} | {p['sdr']:.2f} | {cells} | {p['seconds_per_minute']:.2f} |")
    print(f"wrote {args.out} and {args.json}")


if __name__ == "__main__":
    main()
