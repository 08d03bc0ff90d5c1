"""MIR-1K (Hsu and Jang, 2010): real amateur singing with its karaoke accompaniment.

Expected layout (as laid out in the project's shared real-data folder)::

    ROOT/vocals/<singer>_<song>_<clip>.opus          mono, 16 kHz
    ROOT/accompaniment/<singer>_<song>_<clip>.opus   mono, 16 kHz, same length

The split is by singer, never by clip, so that no validation singer is heard in training.
The audio is 16 kHz: nothing above ``BANDWIDTH_HZ`` exists in it, and training must not
learn that a voice has no energy there (see ``convsep.training.losses`` band limits).

License: distributed by its authors free of charge for research; treat it as research-only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsep.errors import ConvSepError

RATE = 16000
BANDWIDTH_HZ = RATE / 2
#: Singers held out of training: the real validation set (167 clips, about 22 minutes).
VALID_SINGERS = ("abjones", "annar", "heycat", "khair")
DEFAULT_ROOT_ENV = "CONVSEP_MIR1K"


@dataclass(frozen=True)
class Clip:
    name: str
    singer: str
    vocals: Path
    accompaniment: Path


def default_root() -> Path:
    """``$CONVSEP_MIR1K``, else ``../shared/data/real/mir1k`` next to the checkout."""
    env = os.environ.get(DEFAULT_ROOT_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "mir1k"


def singer_of(clip_name: str) -> str:
    return clip_name.split("_", 1)[0]


def list_clips(root: str | os.PathLike | None = None, split: str | None = None) -> list[Clip]:
    """Clips sorted by name; ``split`` "train" (all but ``VALID_SINGERS``), "valid", or None."""
    root = Path(root) if root is not None else default_root()
    vocals_dir, accomp_dir = root / "vocals", root / "accompaniment"
    if not vocals_dir.is_dir() or not accomp_dir.is_dir():
        raise ConvSepError(f"{root} is not a MIR-1K folder: it needs vocals/ and accompaniment/ subfolders")
    if split not in (None, "train", "valid"):
        raise ConvSepError(f"unknown MIR-1K split {split!r}; choose train or valid")
    clips = []
    for path in sorted(vocals_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        accomp = accomp_dir / path.name
        if not accomp.is_file():
            continue
        name = path.stem
        singer = singer_of(name)
        if split == "valid" and singer not in VALID_SINGERS:
            continue
        if split == "train" and singer in VALID_SINGERS:
            continue
        clips.append(Clip(name, singer, path, accomp))
    if not clips:
        raise ConvSepError(f"no MIR-1K clips found in {root}" + (f" for split {split}" if split else ""))
    return clips


def read_clip(clip: Clip, rate: int = 44100) -> tuple[np.ndarray, np.ndarray]:
    """(vocals, accompaniment), each float32 (samples,) at ``rate``, the same length."""
    import soundfile as sf
    import soxr

    vocals, r1 = sf.read(clip.vocals, dtype="float32", always_2d=True)
    accomp, r2 = sf.read(clip.accompaniment, dtype="float32", always_2d=True)
    vocals, accomp = vocals.mean(1), accomp.mean(1)
    n = min(len(vocals), len(accomp))
    vocals, accomp = vocals[:n], accomp[:n]
    if r1 != rate:
        vocals = soxr.resample(vocals, r1, rate).astype(np.float32)
        accomp = soxr.resample(accomp, r2, rate).astype(np.float32)
    return vocals, accomp
