"""Reports of evaluation folders: tables (markdown and terminal), boxplots, published numbers.

Aggregation follows SiSEC 2018 (as ``museval.EvalStore``): median over the 1 s frames of a
track (NaN frames skipped), then median over tracks. The MDX global SDR (one number per whole
track) is summarised by its mean and median over tracks. Several folders can be compared;
their methods are then labelled ``<folder>/<method>``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from convsep.constants import SOURCES
from convsep.errors import ConvSepError
from convsep.evaluate.published import COUNTERPARTS, PUBLISHED
from convsep.evaluate.store import METRICS, load_method, method_dirs, read_meta
from convsep.io.filesafety import check_replaceable


@dataclass
class Results:
    """Scores of several methods: ``frames`` (method, track, target, metric, time, score)
    and ``global_sdr`` (method, track, target, SDR); ``meta`` per evaluation folder."""
    frames: pd.DataFrame
    global_sdr: pd.DataFrame
    methods: list[str]
    meta: dict[str, dict] = field(default_factory=dict)

    @property
    def musdb(self) -> bool:
        return any(m.get("dataset", {}).get("musdb") for m in self.meta.values())


@dataclass
class Report:
    markdown: str
    terminal: str
    markdown_path: Path | None = None
    plots: list[Path] = field(default_factory=list)


def load_results(dirs: Sequence[str | os.PathLike]) -> Results:
    """Reads the method folders of every evaluation folder in ``dirs``."""
    if not dirs:
        raise ConvSepError("give at least one evaluation folder")
    found: list[tuple[Path, Path]] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise ConvSepError(f"{d}: no such evaluation folder")
        methods = method_dirs(d)
        if not methods:
            raise ConvSepError(f"{d}: no results (expected <method>/test/<track>.json); run convsep evaluate first")
        found += [(d, m) for m in methods]
    names = [m.name for _, m in found]
    prefix = len(dirs) > 1 and len(set(names)) < len(names)
    folder_names = [Path(d).name for d in dirs]
    unique_folders = len(set(folder_names)) == len(folder_names)
    frames, glob, labels, meta = [], [], [], {}
    for d, m in found:
        label = f"{d.name if unique_folders else d}/{m.name}" if prefix else m.name
        f, g = load_method(m)
        frames.append(f.assign(method=label))
        glob.append(g.assign(method=label))
        labels.append(label)
        meta[str(d)] = read_meta(d)
    return Results(pd.concat(frames, ignore_index=True), pd.concat(glob, ignore_index=True),
                   labels, meta)


# -------------------------------------------------------------------------- aggregation
def track_medians(frames: pd.DataFrame) -> pd.DataFrame:
    """Frames -> (method, track, target, metric) nanmedian over frames, column ``score``."""
    return frames.groupby(["method", "track", "target", "metric"], sort=False)["score"].median().reset_index()


def median_of_medians(frames: pd.DataFrame) -> pd.DataFrame:
    """Frames -> DataFrame indexed by (method, target), one column per metric."""
    per_track = track_medians(frames)
    agg = per_track.groupby(["method", "target", "metric"], sort=False)["score"].median()
    return agg.unstack("metric")


def global_summary(global_sdr: pd.DataFrame) -> pd.DataFrame:
    """Global SDR per track -> DataFrame indexed by (method, target) with mean and median."""
    return global_sdr.groupby(["method", "target"], sort=False)["SDR"].agg(["mean", "median"])


# ---------------------------------------------------------------------------- rendering
def _fmt(value: float) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def _targets(results: Results) -> list[str]:
    present = list(dict.fromkeys(results.frames["target"]))
    return [s for s in SOURCES if s in present] + [t for t in present if t not in SOURCES]


def metric_rows(mom: pd.DataFrame, methods: list[str], targets: list[str], metric: str) -> list[list[str]]:
    rows = []
    for method in methods:
        values = [mom[metric].get((method, t), np.nan) if metric in mom else np.nan for t in targets]
        rows.append([method] + [_fmt(v) for v in values] + [_fmt(np.nanmean(values) if np.isfinite(values).any() else np.nan)])
    return rows


def global_rows(summary: pd.DataFrame, methods: list[str], targets: list[str]) -> list[list[str]]:
    rows = []
    for method in methods:
        cells = [method]
        for t in targets:
            mean, median = (summary.loc[(method, t)] if (method, t) in summary.index else (np.nan, np.nan))
            cells.append(f"{_fmt(mean)} / {_fmt(median)}")
        rows.append(cells)
    return rows


def published_rows(mom: pd.DataFrame, methods: list[str], targets: list[str]) -> list[list[str]]:
    """Our SDR next to the published numbers; an oracle sits just above its published twin."""
    ours = {m: [mom["SDR"].get((m, t), np.nan) for t in targets] for m in methods}
    rows = []
    for method in methods:
        rows.append([f"**{method}** (this run)"] + [_fmt(v) for v in ours[method]] + ["this evaluation"])
    for pub in PUBLISHED:
        twins = [m for m in methods if COUNTERPARTS.get(m.rsplit("/", 1)[-1]) == pub.system]
        note = f"{pub.data}, {pub.metric}; {pub.source}"
        label = pub.system + (f" (vs {', '.join(twins)})" if twins else "")
        rows.append([label] + [_fmt(pub.sdr.get(t, np.nan)) for t in targets] + [note])
    return rows


def boxplots(results: Results, outdir: str | os.PathLike) -> list[Path]:
    """One PNG per metric (``boxplot_sdr.png`` ...): per-track medians, one panel per source,
    one box per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    horizontal = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    per_track = track_medians(results.frames)
    targets = _targets(results)
    paths = []
    for metric in METRICS:
        sub = per_track[per_track["metric"] == metric]
        fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 0.35 * len(results.methods) + 2.2),
                                 sharey=True, squeeze=False)
        for ax, target in zip(axes[0], targets):
            data = [sub[(sub["method"] == m) & (sub["target"] == target)]["score"].dropna().to_numpy()
                    for m in results.methods]
            ax.boxplot(data, showmeans=False, medianprops={"color": "tab:red"}, **horizontal)
            ax.set_yticks(range(1, len(results.methods) + 1), results.methods)
            ax.set_title(target)
            ax.set_xlabel(f"{metric} (dB)")
            ax.grid(axis="x", alpha=0.3)
        fig.suptitle(f"{metric} per track (median over 1 s frames)")
        fig.tight_layout()
        path = outdir / f"boxplot_{metric.lower()}.png"
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        try:
            check_replaceable(path)
        except ConvSepError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        paths.append(path)
    return paths


def _describe(results: Results) -> list[str]:
    lines = []
    for folder, meta in results.meta.items():
        data = meta.get("dataset", {})
        parts = [f"`{Path(folder).name}`"]
        if data:
            parts.append(f"dataset {data.get('name', '?')} ({data.get('layout', '?')}, subset {data.get('subset', '?')})")
        if meta.get("backend"):
            parts.append(f"BSSEval v4 backend {meta['backend']}")
        if meta.get("max_seconds"):
            parts.append(f"first {meta['max_seconds']:g} s of each track")
        if meta.get("oracle_stft"):
            stft = meta["oracle_stft"]
            parts.append(f"oracle STFT {stft.get('window', 'hann')} {stft['n_fft']}/{stft['hop']}")
        lines.append("- " + ", ".join(parts))
    counts = results.frames.groupby("method")["track"].nunique()
    lines.append("- tracks per method: " + ", ".join(f"{m} {counts.get(m, 0)}" for m in results.methods))
    return lines


def render_report(
    dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    plots: str | os.PathLike | None = None,
    published: bool | None = None,
) -> Report:
    """Renders the report of one or more evaluation folders, without recomputing scores.

    ``out``: where to write the markdown (None: not written); ``plots``: folder for the PNG
    boxplots (None: no plots); ``published``: place the published numbers beside the results
    (None: when the data is MUSDB18).
    """
    results = load_results(dirs)
    targets = _targets(results)
    mom = median_of_medians(results.frames)
    summary = global_summary(results.global_sdr)
    methods = results.methods
    show_published = results.musdb if published is None else published

    md: list[str] = ["# convsep evaluation", ""] + _describe(results) + [""]
    term: list[str] = []
    md += ["## Median of medians (dB)", "",
           "Median over the 1 s frames of each track (NaN frames skipped), then median over tracks (SiSEC 2018).", ""]
    for metric in METRICS:
        headers = ["method"] + targets + ["mean"]
        rows = metric_rows(mom, methods, targets, metric)
        md += [f"### {metric}", "", _table(headers, rows, True), ""]
        if metric == "SDR":
            term += ["SDR, median of medians (dB)", _table(headers, rows, False), ""]
    headers = ["method"] + targets
    rows = global_rows(summary, methods, targets)
    md += ["## Global SDR (dB, mean / median over tracks)", "",
           "MDX-style: 10 log10 of the reference energy over the error energy on the whole track.", "",
           _table(headers, rows, True), ""]
    term += ["Global SDR (dB, mean / median over tracks)", _table(headers, rows, False)]
    if show_published:
        md += ["## Published numbers (SDR, dB)", "",
               "Published systems on MUSDB18 (DSD100 for SiSEC 2016 entries), beside this run. "
               "They compare only when this run covers the whole MUSDB18 test set at full length.", "",
               _table(["system"] + targets + ["data, metric, source"],
                      published_rows(mom, methods, targets), True), ""]
    report = Report("", "\n".join(term))
    if plots is not None:
        report.plots = boxplots(results, plots)
        base = Path(out).parent if out is not None else Path(".")
        md += ["## Boxplots", ""]
        md += [f"![{p.stem}]({os.path.relpath(p, base)})" for p in report.plots] + [""]
    report.markdown = "\n".join(md)
    if out is not None:
        from convsep.io.atomic import atomic_write_text

        report.markdown_path = Path(out)
        atomic_write_text(report.markdown_path, report.markdown)
    return report
