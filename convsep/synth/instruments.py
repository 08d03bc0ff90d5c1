"""Recorded instruments and phrases from ``../shared/data/real``, read in place:

- Berklee (CC BY 3.0) piano notes at labelled pitches and the six open guitar strings,
  played as samplers: each note takes the nearest recorded pitch, transposed by resampling,
  cut at the note's end with a short release;
- sms-tools (CC BY 4.0) solo phrases (saxophone, cello) that replace a synthetic solo, and
  sung phrases (a female singer, Carnatic singing) for a full-band real lead voice.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from convsep.constants import SAMPLE_RATE
from convsep.synth.arrange import Part
from convsep.synth.music import NOTE_PC
from convsep.synth.recordings import read_recording, real_root

GUITAR_STRINGS = {"LowEstring1": 40, "Astring": 45, "Dstring": 50, "Gstring": 55, "Bstring": 59, "highEstring": 64}
SOLO_PHRASES = ("sax-phrase", "sax-phrase-short", "cello-phrase", "cello-double", "cello-double-2")
SUNG_PHRASES = ("singing-female", "vignesh", "carnatic")
RELEASE_S = 0.12


def _pitch(name: str) -> int | None:
    m = re.fullmatch(r"([A-Ga-g])([#b]?)(\d)", name)
    if not m:
        return None
    letter, accidental, octave = m.groups()
    return 12 * (int(octave) + 1) + NOTE_PC[letter.lower()] + {"#": 1, "b": -1, "": 0}[accidental]


@functools.lru_cache(maxsize=1)
def recorded_instruments() -> dict[str, tuple[tuple[int, str], ...]]:
    """Installed sampler instruments: name -> ((MIDI pitch, path), ...); empty if absent."""
    folder = real_root() / "berklee" / "instruments"
    if not folder.is_dir():
        return {}
    piano, guitar = [], []
    for p in sorted(folder.glob("*.mp3")):
        m = re.fullmatch(r"piano_(.+)", p.stem)
        if m and _pitch(m.group(1)) is not None:
            piano.append((_pitch(m.group(1)), str(p)))
        m = re.fullmatch(r"guitar_(.+)", p.stem)
        if m and m.group(1) in GUITAR_STRINGS:
            guitar.append((GUITAR_STRINGS[m.group(1)], str(p)))
    out = {}
    if piano:
        out["berklee:piano"] = tuple(sorted(piano))
    if guitar:
        out["berklee:guitar"] = tuple(sorted(guitar))
    return out


@functools.lru_cache(maxsize=64)
def _sample(path: str) -> np.ndarray:
    """A recording as mono float64 at 44.1 kHz, leading silence trimmed to 5 ms before the onset."""
    x = read_recording(path)
    peak = np.abs(x).max() if x.size else 0.0
    if peak > 0:
        onset = int(np.argmax(np.abs(x) > 0.05 * peak))
        x = x[max(0, onset - int(0.005 * SAMPLE_RATE)):] / peak
    return x


@functools.lru_cache(maxsize=512)
def _transposed(path: str, semitones: int) -> np.ndarray:
    import soxr

    x = _sample(path)
    return soxr.resample(x, SAMPLE_RATE * 2 ** (semitones / 12), SAMPLE_RATE) if semitones else x


def render_recorded(part: Part, frames: int, instrument: str) -> np.ndarray:
    """Play ``part`` on a recorded sampler instrument: mono float64 (frames,)."""
    samples = recorded_instruments()[instrument]
    out = np.zeros(frames)
    release = int(RELEASE_S * SAMPLE_RATE)
    for n in part.notes:
        start = int(round(n.start * SAMPLE_RATE))
        if start >= frames:
            continue
        pitch, path = min(samples, key=lambda s: (abs(s[0] - n.pitch), s[0]))
        x = _transposed(path, int(n.pitch - pitch))
        m = min(len(x), frames - start, int(n.seconds * SAMPLE_RATE) + release)
        if m <= 0:
            continue
        seg = x[:m] * (n.velocity / 127) ** 1.5
        r = min(release, m)
        seg[m - r:] *= np.linspace(1, 0, r)
        out[start:start + m] += seg
    return out


@functools.lru_cache(maxsize=1)
def phrases() -> dict[str, tuple[str, ...]]:
    """sms-tools recordings by use: "solo" instrument phrases and "sung" phrases (paths)."""
    folder = real_root() / "sms-tools"
    found = {kind: tuple(str(folder / f"{n}.flac") for n in names if (folder / f"{n}.flac").is_file())
             for kind, names in (("solo", SOLO_PHRASES), ("sung", SUNG_PHRASES))}
    return {k: v for k, v in found.items() if v}


def lay_phrases(rng: np.random.Generator, paths: tuple[str, ...], spans: list[tuple[float, float]], frames: int,
                max_shift: int = 2) -> tuple[np.ndarray, list[str]]:
    """Recorded phrases one after another over ``spans`` (seconds), each transposed by up to
    ``max_shift`` semitones, with short gaps: mono float64 (frames,) and the phrase names."""
    out = np.zeros(frames)
    used = []
    for a, b in spans:
        t = a + float(rng.uniform(0.0, 0.3))
        while t < b - 0.8:
            path = paths[int(rng.integers(len(paths)))]
            x = _transposed(path, int(rng.integers(-max_shift, max_shift + 1)))
            start = int(t * SAMPLE_RATE)
            m = min(len(x), int(b * SAMPLE_RATE) - start, frames - start)
            if m <= 0:
                break
            seg = x[:m] * 10 ** (rng.normal(0, 1.0) / 20)
            r = min(m, 2205)
            seg[m - r:] *= np.linspace(1, 0, r)
            out[start:start + m] += seg
            used.append(Path(path).stem)
            t += m / SAMPLE_RATE + float(rng.uniform(0.2, 0.9))
    return out, used
