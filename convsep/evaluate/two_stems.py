"""Vocals / accompaniment evaluation on data that has only those two stems.

Layouts of ``root``:

- MIR-1K style: ``root/vocals/<clip>.<ext>`` and ``root/accompaniment/<clip>.<ext>`` (same
  names); ``split`` "valid" or "train" keeps MIR-1K's held-out or training singers;
- a folder of tracks: ``root/<track>/vocals.<ext>`` plus ``accompaniment.<ext>`` or any of
  drums / bass / other (summed into the accompaniment).

Each pair is mixed as recorded, or at each of ``levels_db`` (voice RMS against the
accompaniment). Every model separates the mixture; its vocals estimate and the sum of its
other stems are scored against the two references with global SDR (the MDX challenge's
measure) and BSSEval v4 SDR (median over 1 s frames, as museval computes it). Results: a
table, ``OUTDIR/two_stems.csv`` (every mixture) and ``OUTDIR/two_stems.json`` (medians).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from convsep.constants import SAMPLE_RATE
from convsep.data import mir1k
from convsep.errors import ConvSepError
from convsep.evaluate.karaoke_scores import vocals_and_rest, voice_gain
from convsep.evaluate.sdr import global_sdr
from convsep.io.atomic import atomic_write_bytes
from convsep.io.audio import read_audio
from convsep.separation.speed_ensemble import check_speeds, speeds_label

EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
ACCOMPANIMENT_PARTS = ("drums", "bass", "other")


@dataclass
class Pair:
    name: str
    vocals: Path
    accompaniment: list[Path]


def _audio_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in EXTENSIONS and p.is_file()}


def list_pairs(root: str | Path, split: str | None = None) -> list[Pair]:
    root = Path(root)
    if not root.is_dir():
        raise ConvSepError(f"{root}: no such folder")
    if (root / "vocals").is_dir() and (root / "accompaniment").is_dir():
        vocals, accomp = _audio_files(root / "vocals"), _audio_files(root / "accompaniment")
        pairs = [Pair(n, vocals[n], [accomp[n]]) for n in sorted(vocals) if n in accomp]
        if split:
            keep = {c.name for c in mir1k.list_clips(root, split)}
            pairs = [p for p in pairs if p.name in keep]
    else:
        if split:
            raise ConvSepError("--split needs a MIR-1K style folder (vocals/ and accompaniment/)")
        pairs = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = _audio_files(folder)
            if "vocals" not in files:
                continue
            parts = [files["accompaniment"]] if "accompaniment" in files else \
                [files[k] for k in ACCOMPANIMENT_PARTS if k in files]
            if parts:
                pairs.append(Pair(folder.name, files["vocals"], parts))
    if not pairs:
        raise ConvSepError(f"{root}: no vocals/accompaniment pairs found (see 'convsep evaluate --help' for the layouts)")
    return pairs


def _read(path: Path, max_seconds: float | None) -> np.ndarray:
    """float32 (2, samples) at 44.1 kHz."""
    audio = read_audio(path, SAMPLE_RATE, channels=2)
    if max_seconds:
        audio = audio[:, :int(max_seconds * SAMPLE_RATE)]
    return audio


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def load_pair(pair: Pair, max_seconds: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    vocals = _read(pair.vocals, max_seconds)
    parts = [_read(p, max_seconds) for p in pair.accompaniment]
    n = min([vocals.shape[1], *(p.shape[1] for p in parts)])
    return vocals[:, :n], np.sum([p[:, :n] for p in parts], axis=0).astype(np.float32)


def _bsseval_sdr(refs: torch.Tensor, ests: torch.Tensor) -> list[float]:
    """(2, C, N) -> BSSEval v4 SDR per stem, median over 1 s frames (NaN frames ignored)."""
    from convsep.evaluate.bsseval import bss_eval_v4

    result = bss_eval_v4(refs.transpose(1, 2).double(), ests.transpose(1, 2).double(),
                         window=SAMPLE_RATE, hop=SAMPLE_RATE)
    values = result["SDR"].cpu().numpy()
    return [float(np.nanmedian(v)) if np.isfinite(v).any() else math.nan for v in values]


def evaluate_two_stems(root: str | Path, models: Sequence[str], outdir: str | Path,
                       levels_db: Sequence[float] | None = None, split: str | None = None,
                       max_seconds: float | None = None, bsseval: bool = True, vocals: str = "vocals",
                       device: str = "cpu", limit: int | None = None, progress: bool = False,
                       speeds: Sequence[float] | None = None) -> dict:
    """Scores each model (file or bundled name), with the speed ensemble ``speeds`` if given
    (then named ``MODEL @ speeds 1,1.12,...``); returns {model: {"vocals": ..., ...}}."""
    from tqdm import tqdm

    from convsep.separation.separator import Separator

    if vocals != "vocals":   # the data's references are vocals and the rest, nothing else
        raise ConvSepError(f"--two-stems {vocals}: two-stem data holds vocals and accompaniment references, "
                           "so only --two-stems vocals can be scored")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConvSepError(f"--limit must be a whole number of pairs, at least 1, got {limit!r}")
    for level in levels_db or ():
        if not isinstance(level, (int, float)) or not -60 <= level <= 60:
            raise ConvSepError(f"--levels: each level must be a number of dB from -60 to 60, got {level!r}")
    pairs = list_pairs(root, split)
    if limit:
        pairs = pairs[::max(1, len(pairs) // limit)][:limit]
    levels = list(levels_db) if levels_db else [None]
    speeds = check_speeds(speeds)
    suffix = " @ speeds " + speeds_label(speeds) if speeds else ""
    separators = {(str(m) if m else "default") + suffix: Separator.load(m, device=device, speeds=speeds)
                  for m in (models or [None])}
    for name, sep in separators.items():
        if vocals not in sep.config.sources:
            raise ConvSepError(f"model {name} has no {vocals!r} stem")
    rows = []
    for pair in tqdm(pairs, desc="two-stem", unit="pair", disable=not progress):
        voc, acc = load_pair(pair, max_seconds)
        v_rms, a_rms = _rms(voc), _rms(acc)
        for level in levels:
            if level is not None and v_rms > 0:
                voc_l = (voc * voice_gain(v_rms, a_rms, level)).astype(np.float32)
            else:
                voc_l = voc
            refs = torch.from_numpy(np.stack([voc_l, acc]))                     # (2, C, N)
            for name, sep in separators.items():
                ests = vocals_and_rest(sep, refs.sum(0), vocals)
                r = refs if sep.config.channels == 2 else refs.mean(1, keepdim=True)
                row = {"model": name, "pair": pair.name, "level_db": level}
                g = global_sdr(r.transpose(1, 2), ests.transpose(1, 2)).tolist()
                row.update({"vocals_global_sdr": g[0], "accompaniment_global_sdr": g[1]})
                if bsseval:
                    b = _bsseval_sdr(r, ests)
                    row.update({"vocals_sdr": b[0], "accompaniment_sdr": b[1]})
                rows.append(row)
    summary = {}
    keys = [k for k in rows[0] if k.endswith("sdr")]
    for name in separators:
        mine = [r for r in rows if r["model"] == name]
        summary[name] = {k: float(np.nanmedian([r[k] for r in mine])) for k in keys}
        summary[name]["mixtures"] = len(mine)
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvSepError(f"{outdir}: cannot create the output folder ({exc.strerror})") from None
    import io
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(outdir / "two_stems.csv", text.getvalue().encode())
    atomic_write_bytes(outdir / "two_stems.json", json.dumps(
        {"root": str(root), "split": split, "levels_db": levels_db, "max_seconds": max_seconds,
         "pairs": len(pairs), "median": summary}, indent=1).encode())
    return summary
