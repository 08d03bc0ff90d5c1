"""Evaluation results on disk, in museval's layout.

```
DIR/evaluation.json                 what was evaluated: dataset, backend, methods
DIR/<method>/test/<track>.json      museval track JSON (readable by museval.EvalStore),
                                    plus "global_sdr": {target: dB}
DIR/<method>/frames.csv             track, target, metric, time, score (all frames)
DIR/<method>/global_sdr.csv         track, target, SDR (MDX global SDR per track)
```
The track JSON follows ``museval.TrackStore``: ``{"targets": [{"name", "frames": [{"time",
"duration", "metrics": {SDR, SIR, SAR, ISR}}]}], "museval_version"}``, scores rounded to
five decimals and infinities written as NaN. Every file is written under a temporary name
and renamed, so an interrupted run leaves no partial file.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from convsep.errors import ConvSepError
from convsep.io.atomic import atomic_write_text

METRICS: tuple[str, ...] = ("SDR", "SIR", "ISR", "SAR")
META_FILE = "evaluation.json"
SUBSET_DIR = "test"
FRAMES_CSV = "frames.csv"
GLOBAL_CSV = "global_sdr.csv"
MUSEVAL_VERSION = "0.4.1"


def track_json_path(outdir: str | os.PathLike, method: str, track: str) -> Path:
    return Path(outdir) / method / SUBSET_DIR / f"{track}.json"


def _quantize(value: float) -> float:
    value = float(value)
    return math.nan if not math.isfinite(value) else round(value, 5)


def track_json(
    targets: Sequence[str],
    scores: Mapping[str, np.ndarray],
    global_sdr: Sequence[float],
    win: float = 1.0,
    hop: float = 1.0,
) -> str:
    """Scores {metric: (targets, frames)} and global SDR (targets,) -> track JSON text."""
    data: dict = {"targets": [], "museval_version": MUSEVAL_VERSION}
    for i, name in enumerate(targets):
        frames = [
            {
                "time": t * hop,
                "duration": win,
                "metrics": {m: _quantize(scores[m][i][t]) for m in ("SDR", "SIR", "SAR", "ISR")},
            }
            for t in range(len(scores["SDR"][i]))
        ]
        data["targets"].append({"name": name, "frames": frames})
    data["global_sdr"] = {name: _quantize(v) for name, v in zip(targets, global_sdr)}
    return json.dumps(data, indent=1, allow_nan=True)


def write_track(path: Path, targets: Sequence[str], scores: Mapping[str, np.ndarray],
                global_sdr: Sequence[float]) -> None:
    atomic_write_text(path, track_json(targets, scores, global_sdr))


def read_track(path: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """Track JSON -> (frames: track, target, metric, time, score; {target: global SDR})."""
    try:
        data = json.loads(path.read_text())
        rows = [
            (path.stem, t["name"], metric, float(f["time"]), float(f["metrics"][metric]))
            for t in data["targets"]
            for f in t["frames"]
            for metric in METRICS
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConvSepError(f"{path}: not a museval track JSON ({exc}); delete it to recompute") from None
    frames = pd.DataFrame(rows, columns=["track", "target", "metric", "time", "score"])
    return frames, {k: float(v) for k, v in data.get("global_sdr", {}).items()}


def method_dirs(outdir: str | os.PathLike) -> list[Path]:
    """Method folders of an evaluation folder: those with ``test/*.json``, sorted by name."""
    root = Path(outdir)
    return sorted(p for p in root.iterdir() if p.is_dir() and any((p / SUBSET_DIR).glob("*.json")))


def load_method(method_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(frames: track, target, metric, time, score; global: track, target, SDR) of one method."""
    frames, glob = [], []
    for path in sorted((method_dir / SUBSET_DIR).glob("*.json")):
        f, g = read_track(path)
        frames.append(f)
        glob.extend((path.stem, target, sdr) for target, sdr in g.items())
    frames_df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["track", "target", "metric", "time", "score"])
    return frames_df, pd.DataFrame(glob, columns=["track", "target", "SDR"])


def write_method_tables(method_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rewrites ``frames.csv`` and ``global_sdr.csv`` from the method's track JSON files."""
    frames, glob = load_method(method_dir)
    atomic_write_text(method_dir / FRAMES_CSV, frames.to_csv(index=False))
    atomic_write_text(method_dir / GLOBAL_CSV, glob.to_csv(index=False))
    return frames, glob


def read_meta(outdir: str | os.PathLike) -> dict:
    path = Path(outdir) / META_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def write_meta(outdir: str | os.PathLike, meta: dict) -> None:
    atomic_write_text(Path(outdir) / META_FILE, json.dumps(meta, indent=2, sort_keys=True))
