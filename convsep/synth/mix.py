"""Mixing: panning, stem levels, a shared convolution reverb, and a peak limiter whose gain
is applied identically to every stem so that the stems still sum to the mixture.

All signals are float stereo arrays of shape (2, frames) at 44.1 kHz.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from convsep.constants import SAMPLE_RATE

CEILING = 0.97  # peak of the mixture after limiting, leaves room for 16-bit rounding
# The classic corpus's relative stem levels (dB, mean and spread) and reverb sends (range).
STEM_LEVEL = {"vocals": (0.0, 2.0), "drums": (-1.0, 2.0), "bass": (-3.0, 2.0), "other": (-1.5, 2.0)}
REVERB_SEND = {"vocals": (0.25, 0.5), "drums": (0.08, 0.2), "bass": (0.0, 0.04), "other": (0.15, 0.4)}
RT60 = {"ballad": (1.6, 2.6), "swing": (1.0, 1.8), "waltz": (1.2, 2.2)}


def pan(x: np.ndarray, position: float, width: float = 1.0) -> np.ndarray:
    """Place ``x`` (shape (frames,) or (2, frames)) at ``position`` in -1..1 with
    constant-power gains; ``width`` in 0..1 narrows a stereo input towards mono."""
    if x.ndim == 1:
        x = np.stack([x, x])
    elif width < 1.0:
        mid = 0.5 * (x[0] + x[1])
        x = np.stack([mid + width * (x[0] - mid), mid + width * (x[1] - mid)])
    angle = (position + 1) * np.pi / 4
    return np.stack([x[0] * np.cos(angle), x[1] * np.sin(angle)]) * np.sqrt(2)


def room_response(rng: np.random.Generator, rt60: float, seconds: float | None = None) -> np.ndarray:
    """A stereo impulse response (2, taps): decorrelated noise with an exponential decay of
    ``rt60`` seconds, darker as it decays, after a short pre-delay."""
    seconds = seconds or min(3.0, rt60 * 1.2)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    decay = 10 ** (-3 * t / rt60)
    ir = rng.standard_normal((2, n)) * decay
    sos = signal.butter(1, 5000, fs=SAMPLE_RATE, output="sos")
    dark = signal.sosfilt(sos, ir, axis=1)
    fade = np.minimum(1, t / max(t[-1], 1e-3))
    ir = (1 - fade) * ir + fade * dark
    predelay = int(rng.uniform(0.008, 0.03) * SAMPLE_RATE)
    ir = np.concatenate([np.zeros((2, predelay)), ir], axis=1)
    return ir / np.sqrt((ir**2).sum(axis=1, keepdims=True))


def reverb(x: np.ndarray, ir: np.ndarray, send: float) -> np.ndarray:
    """``x`` plus ``send`` times its convolution with ``ir`` (left and right stay separate)."""
    if send <= 0 or not np.any(x):
        return x
    wet = signal.oaconvolve(x, ir, mode="full", axes=1)[:, : x.shape[1]]
    return x + send * wet


def active_rms(x: np.ndarray, frame: int = 4096, floor_db: float = -50.0) -> float:
    """RMS over the frames of ``x`` (2, frames) louder than ``floor_db`` below its peak frame."""
    n = x.shape[1] // frame
    if n == 0:
        return float(np.sqrt(np.mean(x**2)))
    e = (x[:, : n * frame].reshape(2, n, frame) ** 2).mean(axis=(0, 2))
    if e.max() <= 0:
        return 0.0
    keep = e > e.max() * 10 ** (floor_db / 10)
    return float(np.sqrt(e[keep].mean()))


def limiter_gain(mix: np.ndarray, ceiling: float = CEILING, lookahead: int = 256) -> np.ndarray:
    """A gain curve (frames,) that keeps |mix * gain| <= ``ceiling``; it never exceeds the
    instantaneous requirement because a moving average of length ``lookahead`` is taken over
    a running minimum of twice that length."""
    peak = np.abs(mix).max(axis=0)
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    if need.min() >= 1.0:
        return np.ones_like(need)
    held = ndimage.minimum_filter1d(need, size=2 * lookahead + 1, mode="nearest")
    smooth = ndimage.uniform_filter1d(held, size=lookahead, mode="nearest")
    return np.minimum(smooth, need)


def master(stems: dict[str, np.ndarray], target_dbfs: float, fade_out: float = 0.5) -> dict[str, np.ndarray]:
    """Scale all stems so the mixture's active RMS is ``target_dbfs``, limit its peaks to
    CEILING and fade the end; the same gain curve multiplies every stem."""
    mix = sum(stems.values())
    level = active_rms(mix)
    scale = 10 ** (target_dbfs / 20) / level if level > 0 else 1.0
    gain = limiter_gain(mix * scale) * scale
    frames = mix.shape[1]
    n_in, n_out = min(frames, 64), min(frames, int(fade_out * SAMPLE_RATE))
    gain[:n_in] *= np.linspace(0, 1, n_in)
    gain[frames - n_out :] *= np.linspace(1, 0, n_out)
    return {name: x * gain for name, x in stems.items()}


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One draw from U(lo, hi) as a float."""
    return float(rng.uniform(lo, hi))
