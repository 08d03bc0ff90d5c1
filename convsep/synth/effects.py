"""Production effects for the corpus, built on Spotify's ``pedalboard`` (JUCE DSP):
insert chains per instrument (EQ, compression, saturation, chorus, stereo width), send
effects per stem (reverb, tempo-synced delay) and mix-bus processing.

Every stem stays exactly what is added to the mixture: the bus EQ and stereo width are
linear and time-invariant, so they are applied to each stem (their sum is the processed
mix); the bus compressor is a feed-forward gain computed from the mix and multiplied into
every stem, which is what such a compressor does to the sum. Bus saturation or clipping
would create intermodulation that belongs to no stem, so the bus has none (the limiter in
:func:`convsep.synth.mix.master` is again one gain curve applied to every stem).

Levels: ``none`` (no effects), ``light`` (filters, EQ and gentle compression, reverb sends),
``full`` (also saturation, chorus, delay, stereo width, bus EQ and glue compression).
All signals are float64 (2, frames) at 44.1 kHz unless said otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convsep.constants import SAMPLE_RATE
from convsep.synth.mix import uniform

LEVELS = ("none", "light", "full")
PROCESS_RMS = 0.1  # inserts see every part at this active RMS (-20 dBFS), so thresholds mean the same


def _pb():
    import pedalboard

    return pedalboard


@dataclass
class Chain:
    """A pedalboard chain with a readable description of its settings."""

    plugins: list = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    width: float = 1.0

    def add(self, plugin, name: str) -> None:
        self.plugins.append(plugin)
        self.names.append(name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Process ``x`` (2, frames) at PROCESS_RMS and give it back at its own level."""
        if not self.plugins and self.width == 1.0:
            return x
        from convsep.synth.mix import active_rms

        level = active_rms(x)
        if level <= 0:
            return x
        y = x * (PROCESS_RMS / level)
        if self.plugins:
            y = _pb().Pedalboard(self.plugins)(y.astype(np.float32), SAMPLE_RATE).astype(np.float64)
        y = stereo_width(y, self.width)
        return y * (level / PROCESS_RMS)


def stereo_width(x: np.ndarray, width: float) -> np.ndarray:
    """Mid/side width: 0 mono, 1 unchanged, >1 wider (linear)."""
    if width == 1.0:
        return x
    mid, side = 0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1]) * width
    return np.stack([mid + side, mid - side])


def insert_chain(rng: np.random.Generator, role: str, level: str, band_limited: bool = False) -> Chain:
    """The insert effects of one instrument. ``role``: lead, backing, drums, bass, guitar,
    distorted (an already distorted guitar), keys, pad, brass, solo. ``band_limited`` (a
    voice recorded at 16 kHz) skips saturation and high-frequency boosts."""
    pb = _pb()
    c = Chain()
    if level == "none":
        return c
    full = level == "full"
    hp = {"lead": (70, 130), "backing": (150, 300), "drums": (25, 45), "bass": (28, 45), "guitar": (80, 160),
          "distorted": (80, 140), "keys": (50, 120), "pad": (100, 250), "brass": (80, 150), "solo": (90, 180)}[role]
    f = uniform(rng, *hp)
    c.add(pb.HighpassFilter(cutoff_frequency_hz=f), f"highpass {f:.0f} Hz")
    # corrective cut in the low mids, then a tonal boost or cut somewhere
    f, g = uniform(rng, 200, 600), uniform(rng, -4, 0)
    c.add(pb.PeakFilter(cutoff_frequency_hz=f, gain_db=g, q=1.0), f"eq {f:.0f} Hz {g:+.1f} dB")
    if role in ("lead", "backing"):
        f, g = uniform(rng, 2500, 5000), uniform(rng, 0, 4)
    elif role == "drums":
        f, g = uniform(rng, 50, 100), uniform(rng, 0, 5)
    elif role == "bass":
        f, g = uniform(rng, 600, 1200), uniform(rng, -2, 4)
    else:
        f, g = uniform(rng, 800, 6000), uniform(rng, -3, 3)
    if not (band_limited and f > 6000):
        c.add(pb.PeakFilter(cutoff_frequency_hz=f, gain_db=g, q=0.8), f"eq {f:.0f} Hz {g:+.1f} dB")
    if full and not band_limited and role in ("lead", "drums", "keys", "guitar", "pad") and rng.random() < 0.6:
        f, g = uniform(rng, 7000, 12000), uniform(rng, -2, 3)
        c.add(pb.HighShelfFilter(cutoff_frequency_hz=f, gain_db=g), f"high shelf {f:.0f} Hz {g:+.1f} dB")
    compress = {"lead": 1.0, "backing": 0.9, "drums": 0.8, "bass": 0.9, "brass": 0.5}.get(role, 0.4)
    if rng.random() < compress:
        thr, ratio = uniform(rng, -30, -16), uniform(rng, 2, 4 if level == "light" else 8)
        attack = uniform(rng, 5, 30) if role == "drums" else uniform(rng, 1, 15)
        c.add(pb.Compressor(threshold_db=thr, ratio=ratio, attack_ms=attack, release_ms=uniform(rng, 50, 250)),
              f"compressor {thr:.0f} dB {ratio:.1f}:1")
    if not full:
        return c
    saturate = {"bass": 0.35, "drums": 0.25, "guitar": 0.3, "lead": 0.15, "keys": 0.15, "solo": 0.2}.get(role, 0.0)
    if not band_limited and rng.random() < saturate:
        drive = uniform(rng, 3, 14 if role in ("bass", "guitar") else 8)
        c.add(pb.Distortion(drive_db=drive), f"saturation {drive:.0f} dB")
        f = uniform(rng, 5000, 12000)
        c.add(pb.LowpassFilter(cutoff_frequency_hz=f), f"lowpass {f:.0f} Hz")
    if role in ("guitar", "keys", "pad", "backing", "solo") and rng.random() < 0.3:
        rate, depth = uniform(rng, 0.3, 2.0), uniform(rng, 0.1, 0.4)
        c.add(pb.Chorus(rate_hz=rate, depth=depth, centre_delay_ms=uniform(rng, 5, 12), feedback=0.0, mix=uniform(rng, 0.3, 0.6)),
              f"chorus {rate:.1f} Hz")
    if role in ("keys", "pad", "guitar") and rng.random() < 0.1:
        c.add(pb.Phaser(rate_hz=uniform(rng, 0.2, 1.0), depth=0.5, mix=0.4), "phaser")
    if role in ("drums", "pad", "keys", "guitar", "backing"):
        c.width = uniform(rng, 0.6, 1.4)
    return c


@dataclass
class Send:
    """A wet-only effect fed from a stem and added back into it at ``gain``."""

    board: object
    gain: float
    name: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.gain <= 0 or not np.any(x):
            return np.zeros_like(x)
        return self.gain * self.board(x.astype(np.float32), SAMPLE_RATE).astype(np.float64)


def reverb_send(rng: np.random.Generator, room_size: float, damping: float, gain: float) -> Send:
    """An algorithmic (Freeverb) reverb return with a high-passed feed."""
    pb = _pb()
    board = pb.Pedalboard([pb.HighpassFilter(cutoff_frequency_hz=uniform(rng, 150, 400)),
                           pb.Reverb(room_size=room_size, damping=damping, wet_level=1.0, dry_level=0.0, width=1.0)])
    return Send(board, gain, f"reverb size {room_size:.2f} send {gain:.2f}")


def delay_send(rng: np.random.Generator, tempo: float, gain: float) -> Send:
    """A tempo-synced (1/8, dotted 1/8 or 1/4) delay return, band-passed like a tape echo."""
    pb = _pb()
    beats = float(rng.choice([0.5, 0.75, 1.0]))
    seconds = beats * 60.0 / tempo
    feedback = uniform(rng, 0.15, 0.45)
    board = pb.Pedalboard([pb.HighpassFilter(cutoff_frequency_hz=300), pb.LowpassFilter(cutoff_frequency_hz=uniform(rng, 3000, 7000)),
                           pb.Delay(delay_seconds=min(seconds, 1.5), feedback=feedback, mix=1.0)])
    return Send(board, gain, f"delay {beats:g} beat feedback {feedback:.2f} send {gain:.2f}")


@dataclass
class Bus:
    """Mix-bus processing: a linear EQ and stereo width applied to every stem, and a glue
    compressor whose gain (from the mix) multiplies every stem."""

    eq: list = field(default_factory=list)
    width: float = 1.0
    compressor: dict | None = None
    names: list[str] = field(default_factory=list)


def plan_bus(rng: np.random.Generator, level: str) -> Bus:
    bus = Bus()
    if level != "full":
        return bus
    pb = _pb()
    lo, hi, mid = uniform(rng, -1.5, 2.0), uniform(rng, -1.5, 2.5), uniform(rng, -1.5, 1.0)
    bus.eq = [pb.LowShelfFilter(cutoff_frequency_hz=100, gain_db=lo), pb.PeakFilter(cutoff_frequency_hz=400, gain_db=mid, q=0.7),
              pb.HighShelfFilter(cutoff_frequency_hz=9000, gain_db=hi)]
    bus.names.append(f"bus eq low {lo:+.1f} mid {mid:+.1f} high {hi:+.1f} dB")
    bus.width = uniform(rng, 0.85, 1.25)
    bus.names.append(f"bus width {bus.width:.2f}")
    if rng.random() < 0.8:
        bus.compressor = {"over_db": uniform(rng, 0, 6), "ratio": uniform(rng, 1.5, 3.0), "attack_ms": uniform(rng, 5, 30),
                          "release_ms": uniform(rng, 100, 400)}
        bus.names.append("bus compressor {ratio:.1f}:1".format(**bus.compressor))
    return bus


def apply_bus(stems: dict[str, np.ndarray], bus: Bus) -> dict[str, np.ndarray]:
    """Bus EQ and width on each stem (linear), then the glue compressor's gain on all."""
    out = {}
    for name, x in stems.items():
        if bus.eq:
            x = _pb().Pedalboard(bus.eq)(x.astype(np.float32), SAMPLE_RATE).astype(np.float64)
        out[name] = stereo_width(x, bus.width)
    if bus.compressor:
        from convsep.synth.mix import active_rms

        mix = sum(out.values())
        threshold = 20 * np.log10(max(active_rms(mix), 1e-9)) + bus.compressor["over_db"]
        gain = compressor_gain(mix, threshold, bus.compressor["ratio"], bus.compressor["attack_ms"],
                               bus.compressor["release_ms"])
        out = {k: v * gain for k, v in out.items()}
    return out


def compressor_gain(mix: np.ndarray, threshold_db: float, ratio: float, attack_ms: float, release_ms: float,
                    block: int = 64) -> np.ndarray:
    """The gain curve (frames,) of a feed-forward RMS compressor on ``mix`` (2, frames):
    gain reduction (1 - 1/ratio) dB per dB over the threshold, smoothed per block of
    ``block`` samples with attack and release time constants, interpolated per sample."""
    frames = mix.shape[1]
    nb = -(-frames // block)
    power = np.zeros(nb * block)
    power[:frames] = (mix**2).mean(axis=0)
    level_db = 10 * np.log10(power.reshape(nb, block).mean(axis=1) + 1e-12)
    target = np.maximum(0.0, level_db - threshold_db) * (1 - 1 / ratio)
    a_att = np.exp(-block / (attack_ms * 1e-3 * SAMPLE_RATE))
    a_rel = np.exp(-block / (release_ms * 1e-3 * SAMPLE_RATE))
    reduction = np.empty(nb)
    r = 0.0
    for i, t in enumerate(target.tolist()):
        a = a_att if t > r else a_rel
        r = a * r + (1 - a) * t
        reduction[i] = r
    centres = (np.arange(nb) + 0.5) * block
    return 10 ** (-np.interp(np.arange(frames), centres, reduction) / 20)
