"""A small source-filter singer: a band-limited glottal pulse train with vibrato, jitter and
breath noise, shaped by vowel formants, with simple consonant onsets.

The corpus needs a vocal stem whose spectrum behaves like a voice (harmonics under moving
formants, pitch glides and vibrato, noisy consonants, breaths between phrases); sampled GM
"choir" presets have fixed formants and no articulation, so the lead line is sung by this
model, and sampled voices only serve as backing or as an occasional alternative lead.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from convsep.constants import SAMPLE_RATE
from convsep.synth.arrange import Part

# Formant frequencies (Hz), bandwidths (Hz) and levels (dB) of five vowels, for a low
# (tenor/bass) and a high (alto/soprano) voice: the classic tables of vocal acoustics.
FORMANTS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]]] = {
    "low": {
        "a": ((650, 1080, 2650, 2900, 3250), (80, 90, 120, 130, 140), (0, -6, -7, -8, -22)),
        "e": ((400, 1700, 2600, 3200, 3580), (70, 80, 100, 120, 120), (0, -14, -12, -14, -20)),
        "i": ((290, 1870, 2800, 3250, 3540), (40, 90, 100, 120, 120), (0, -15, -18, -20, -30)),
        "o": ((400, 800, 2600, 2800, 3000), (40, 80, 100, 120, 120), (0, -10, -12, -12, -26)),
        "u": ((350, 600, 2700, 2900, 3300), (40, 80, 100, 120, 120), (0, -20, -17, -14, -26)),
    },
    "high": {
        "a": ((800, 1150, 2800, 3500, 4950), (80, 90, 120, 130, 140), (0, -4, -20, -30, -50)),
        "e": ((400, 1600, 2700, 3300, 4950), (60, 80, 120, 150, 200), (0, -18, -16, -30, -50)),
        "i": ((270, 2140, 2950, 3900, 4950), (60, 90, 100, 120, 120), (0, -12, -26, -26, -44)),
        "o": ((450, 800, 2830, 3500, 4950), (70, 80, 100, 130, 135), (0, -11, -22, -26, -50)),
        "u": ((325, 700, 2530, 3500, 4950), (50, 60, 170, 180, 200), (0, -16, -30, -36, -60)),
    },
}
TABLE = 2048


def glottal_table(f0_max: float, tilt: float) -> np.ndarray:
    """One period of a band-limited pulse (harmonics below 0.45 fs for ``f0_max``),
    amplitudes k**-tilt, shape (TABLE + 1,) with the wrap-around sample appended."""
    harmonics = max(1, min(TABLE // 2 - 1, int(0.45 * SAMPLE_RATE / f0_max)))
    spectrum = np.zeros(TABLE // 2 + 1, dtype=np.complex128)
    k = np.arange(1, harmonics + 1)
    spectrum[1 : harmonics + 1] = -1j * k ** (-tilt)
    table = np.fft.irfft(spectrum, n=TABLE)
    table /= np.abs(table).max()
    return np.append(table, table[0])


def formant_filter(x: np.ndarray, vowel: str, register: str, scale: float) -> np.ndarray:
    """Parallel resonators of ``vowel`` applied to ``x`` (1-D); ``scale`` shifts all formants
    (a per-singer vocal tract length)."""
    freqs, bws, levels = FORMANTS[register][vowel]
    y = np.zeros_like(x)
    for f, bw, level in zip(freqs, bws, levels):
        f = f * scale
        if f >= 0.45 * SAMPLE_RATE:
            continue
        b, a = signal.iirpeak(f, f / bw, fs=SAMPLE_RATE)
        y += 10 ** (level / 20) * signal.lfilter(b, a, x)
    return y


def consonant(rng: np.random.Generator, kind: str) -> np.ndarray:
    """A noise onset for ``kind`` (s, t, k, d, b, h); empty for voiced or absent consonants."""
    length = {"s": 0.09, "h": 0.05, "t": 0.025, "k": 0.03, "d": 0.015, "b": 0.012}.get(kind)
    if length is None:
        return np.zeros(0)
    n = int(length * SAMPLE_RATE)
    noise = rng.standard_normal(n)
    band = {"s": (4500, 11000), "h": (500, 4000), "t": (2500, 8000), "k": (1500, 4000),
            "d": (1500, 5000), "b": (200, 1500)}[kind]
    sos = signal.butter(2, band, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    env = np.hanning(2 * n)[n:] if kind in "tkdb" else np.hanning(n)
    level = {"s": 0.12, "h": 0.05}.get(kind, 0.15)
    return level * env * signal.sosfilt(sos, noise)


def sing(part: Part, frames: int, register: str, rng: np.random.Generator) -> np.ndarray:
    """Render the notes and syllables of ``part`` to mono float32 of shape (frames,)."""
    out = np.zeros(frames, dtype=np.float64)
    scale = float(rng.uniform(0.94, 1.06))
    rate = float(rng.uniform(4.8, 6.2))
    depth = float(rng.uniform(0.15, 0.35))  # vibrato depth in semitones
    tilt = float(rng.uniform(0.9, 1.3))
    previous_pitch, previous_end = None, -1.0
    for note, syllable in zip(part.notes, part.syllables):
        start = int(note.start * SAMPLE_RATE)
        n = int(note.seconds * SAMPLE_RATE)
        if start >= frames or n < 64:
            continue
        n = min(n, frames - start)
        t = np.arange(n) / SAMPLE_RATE
        pitch = np.full(n, float(note.pitch))
        if previous_pitch is not None and note.start - previous_end < 0.08:
            glide = np.exp(-t / 0.04)  # portamento from the previous note
            pitch += (previous_pitch - note.pitch) * glide
        onset = np.clip((t - 0.12) / 0.25, 0, 1)
        pitch += depth * onset * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
        pitch += np.interp(t, [0, t[-1] / 2 + 1e-3, t[-1] + 2e-3], rng.normal(0, 0.04, 3))  # drift
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        f0 *= 1 + 0.003 * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1))  # jitter
        phase = np.cumsum(f0 / SAMPLE_RATE) + rng.uniform()
        table = glottal_table(float(f0.max()), tilt - 0.2 * (note.velocity - 90) / 40)
        pos = (phase % 1.0) * TABLE
        idx = pos.astype(np.int64)
        frac = pos - idx
        source = table[idx] * (1 - frac) + table[idx + 1] * frac
        breath = rng.standard_normal(n) * (0.5 + 0.5 * np.cos(2 * np.pi * phase)) * 0.08
        vowel = syllable[-1]
        voiced = formant_filter(source + breath, vowel, register, scale)
        attack = 0.015 if previous_pitch is not None and note.start - previous_end < 0.08 else 0.05
        env = np.minimum(1, t / attack) * np.minimum(1, (t[-1] - t) / 0.08 + 1e-3)
        if syllable[:1] in ("m", "n", "l"):
            env *= np.clip(0.35 + t / 0.08, 0, 1)  # a murmured, softer start
        gain = (note.velocity / 127) ** 1.5
        out[start : start + n] += gain * env * voiced
        cons = consonant(rng, syllable[:1]) * gain * 4
        if cons.size:
            c0 = max(0, start - cons.size + int(0.01 * SAMPLE_RATE))
            c1 = min(frames, c0 + cons.size)
            out[c0:c1] += cons[: c1 - c0] * np.max(np.abs(voiced[:2048])) if n else 0
        previous_pitch, previous_end = float(note.pitch), note.start + note.seconds
    peak = np.abs(out).max()
    if peak > 0:
        out *= 0.5 / peak
    return out.astype(np.float32)
