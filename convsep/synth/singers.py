"""Real voices for the vocal stem, read where they lie (``../shared/data/real``), never
copied into the package:

- MIR-1K (research use only): real amateur singing, 16 kHz, so nothing above 8 kHz. The
  corpus's train and valid splits use only the MIR-1K training singers
  (``convsep.data.mir1k.list_clips(split="train")``); its test split uses the held-out
  singers, so the synthetic test split also measures unseen voices.
- The OLPC Berklee Sound Library (CC BY 3.0): sustained male and female "aa"/"oo" vowels at
  labelled pitches, played as a sampler for backing-vocal chords.

Lead vocals from MIR-1K are consecutive clips of one singer and song laid over the song's
vocal sections; doubles and harmonies are made from the lead (delay and detune, or a
pitch shift with pedalboard's Rubber Band ``PitchShift``).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.synth.mix import uniform
from convsep.synth.music import NOTE_PC, Song, chord_at
from convsep.synth.recordings import read_recording, real_root

MIR1K_BANDWIDTH_HZ = 8000
FULL_BANDWIDTH_HZ = SAMPLE_RATE // 2
NOTE_RE = re.compile(r"([A-Ga-g])([#b]?)(\d)$")


@functools.lru_cache(maxsize=2)
def mir1k_songs(split: str) -> tuple[tuple[tuple[str, str], tuple], ...]:
    """MIR-1K clips of ``split`` ("train" or "valid" singers) grouped by (singer, song), in
    clip order; empty when MIR-1K is not there."""
    from convsep.data import mir1k

    try:
        clips = mir1k.list_clips(split=split)
    except ConvSepError:
        return ()
    groups: dict[tuple[str, str], list] = {}
    for c in clips:
        song = c.name.split("_")[1] if c.name.count("_") >= 2 else ""
        groups.setdefault((c.singer, song), []).append(c)
    return tuple((k, tuple(v)) for k, v in sorted(groups.items()))


def mir1k_split_for(corpus_split: str) -> str:
    """The MIR-1K singers a corpus split may use: training singers for train and valid,
    held-out singers for test."""
    return "valid" if corpus_split == "test" else "train"


def vocal_spans(song: Song, seconds: float) -> list[tuple[float, float]]:
    """(start, end) in seconds of the sections that have vocals."""
    spb = song.seconds_per_beat * song.beats_per_bar
    spans = []
    for s in song.sections:
        if s.vocals:
            a, b = s.start_bar * spb, min(seconds, (s.start_bar + s.bars) * spb)
            if b - a > 0.5:
                spans.append((a, b))
    return spans


def active_level(x: np.ndarray, frame: int = 2048) -> float:
    from convsep.synth.mix import active_rms

    return active_rms(np.stack([x, x]), frame=frame)


def mir1k_lead(rng: np.random.Generator, song: Song, frames: int, corpus_split: str) -> tuple[np.ndarray, list[str]] | None:
    """A lead vocal of real singing: consecutive clips of one MIR-1K singer and song over the
    vocal sections, with short gaps. Mono float64 (frames,) and the clip names; None when
    MIR-1K is not available."""
    from convsep.data.mir1k import read_clip

    groups = mir1k_songs(mir1k_split_for(corpus_split))
    spans = vocal_spans(song, frames / SAMPLE_RATE)
    if not groups or not spans:
        return None
    _, clips = groups[int(rng.integers(len(groups)))]
    out = np.zeros(frames)
    used: list[str] = []
    k = int(rng.integers(len(clips)))
    for a, b in spans:
        t = a + uniform(rng, 0.0, 0.4)
        while t < b - 1.0:
            clip = clips[k % len(clips)]
            k += 1
            voice = read_clip(clip, SAMPLE_RATE)[0].astype(np.float64)
            level = active_level(voice)
            if level <= 0:
                continue
            voice *= 0.1 / level * 10 ** (rng.normal(0, 1.0) / 20)
            start = int(t * SAMPLE_RATE)
            n = min(len(voice), int(b * SAMPLE_RATE) - start, frames - start)
            if n <= 0:
                break
            seg = voice[:n].copy()
            fade = min(n, 2205)
            seg[n - fade:] *= np.linspace(1, 0, fade)
            out[start:start + n] += seg
            used.append(clip.name)
            t += n / SAMPLE_RATE + uniform(rng, 0.1, 0.8)
    return (out, used) if used else None


def double(rng: np.random.Generator, voice: np.ndarray) -> np.ndarray:
    """A double-tracked copy of a mono voice: 12-35 ms later, slowly detuned by a chorus-like
    modulated delay, slightly darker. Mono (frames,)."""
    import pedalboard as pb

    delay = int(uniform(rng, 0.012, 0.035) * SAMPLE_RATE)
    y = np.concatenate([np.zeros(delay), voice[: len(voice) - delay]])
    board = pb.Pedalboard([pb.Chorus(rate_hz=uniform(rng, 0.2, 0.8), depth=uniform(rng, 0.05, 0.2), centre_delay_ms=5.0,
                                     feedback=0.0, mix=1.0),
                           pb.LowpassFilter(cutoff_frequency_hz=uniform(rng, 5000, 9000))])
    return board(y[None].astype(np.float32), SAMPLE_RATE)[0].astype(np.float64)


def harmony(rng: np.random.Generator, voice: np.ndarray, spans: list[tuple[float, float]]) -> tuple[np.ndarray, int]:
    """A harmony line: the voice pitch-shifted by a third, fourth, fifth or sixth (up or down),
    only inside ``spans`` (seconds). Mono (frames,) and the interval in semitones."""
    import pedalboard as pb

    semitones = int(rng.choice([3, 4, 5, 7, -5, -8, -9]))
    out = np.zeros_like(voice)
    shift = pb.PitchShift(semitones=semitones)
    for a, b in spans:
        i, j = int(a * SAMPLE_RATE), min(len(voice), int(b * SAMPLE_RATE))
        if j - i < 4096 or not np.any(voice[i:j]):
            continue
        out[i:j] = shift(voice[i:j][None].astype(np.float32), SAMPLE_RATE)[0, : j - i]
    return out, semitones


@functools.lru_cache(maxsize=1)
def berklee_vowels() -> tuple[tuple[str, str, str, int, str], ...]:
    """Berklee sustained voice samples: (gender, vowel, kind "solo"/"section", MIDI pitch, path)."""
    folder = real_root() / "berklee" / "vocals"
    if not folder.is_dir():
        return ()
    out = []
    for p in sorted(folder.iterdir()):
        m = re.match(r"(female|male)(voices?)_(aa|oo)2?_", p.stem)
        note = NOTE_RE.search(p.stem)
        if not m or not note:
            continue
        letter, accidental, octave = note.groups()
        pitch = 12 * (int(octave) + 1) + NOTE_PC[letter.lower()] + {"#": 1, "b": -1, "": 0}[accidental]
        out.append((m.group(1), m.group(3), "section" if m.group(2) == "voices" else "solo", pitch, str(p)))
    return tuple(out)


def _pitched(path: str, semitones: float, n: int) -> np.ndarray:
    """The sample at ``path`` transposed by resampling, cut or padded to ``n`` with a fade."""
    import soxr

    x = read_recording(path)
    if semitones:
        x = soxr.resample(x, SAMPLE_RATE * 2 ** (semitones / 12), SAMPLE_RATE)
    y = np.zeros(n)
    m = min(n, len(x))
    y[:m] = x[:m]
    fade = min(m, 3528)
    y[m - fade:m] *= np.linspace(1, 0, fade)
    return y


def berklee_backing(rng: np.random.Generator, song: Song, frames: int) -> tuple[np.ndarray, list[str]] | None:
    """Backing "aa"/"oo" chords in the choruses from the Berklee voice samples (one gender,
    vowel and solo/section choice per track), two or three chord tones per bar, each the
    nearest recorded pitch transposed by resampling. Mono float64 (frames,) and sample names."""
    samples = berklee_vowels()
    if not samples:
        return None
    gender = "female" if song.voice_range == "high" else "male"
    if rng.random() < 0.3:
        gender = "male" if gender == "female" else "female"
    vowel, kind = str(rng.choice(["aa", "oo"])), str(rng.choice(["solo", "section"]))
    pool = [s for s in samples if s[0] == gender and s[1] == vowel and s[2] == kind] or \
           [s for s in samples if s[0] == gender]
    if not pool:
        return None
    low, high = (55, 74) if gender == "female" else (45, 64)
    spb = song.seconds_per_beat
    out = np.zeros(frames)
    used = set()
    for sec in song.sections:
        if sec.kind != "chorus":
            continue
        for b in range(sec.bars):
            beat0 = (sec.start_bar + b) * song.beats_per_bar
            start = int(beat0 * spb * SAMPLE_RATE)
            if start >= frames:
                break
            n = min(frames - start, int(song.beats_per_bar * spb * 0.97 * SAMPLE_RATE))
            pcs = chord_at(song.chords, beat0).pitch_classes()
            for pc in pcs[: int(rng.integers(2, 4))]:
                pitch = low + (pc - low) % 12
                pitch = pitch if pitch <= high else pitch - 12
                best = min(pool, key=lambda s: abs(s[3] - pitch))
                out[start:start + n] += _pitched(best[4], pitch - best[3], n) * uniform(rng, 0.7, 1.0)
                used.add(Path(best[4]).stem)
    return (out, sorted(used)) if used else None
