"""Recorded drum kits in Hydrogen's format (``drumkit.xml`` + samples, Debian's
``hydrogen-drumkits``) played as a sampler: General MIDI drum keys are mapped to the kit's
instruments by name, velocity layers are chosen by velocity, and instruments of one mute
group (open and closed hi-hat) choke each other.
"""
from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsep.constants import SAMPLE_RATE
from convsep.synth.arrange import Part

HAT = r"(hi.?hat|\bhi.?hh|\bhh\b|\bhat\b)"
# GM key -> name patterns, tried in order against the kit's instrument names (lower case).
KEY_PATTERNS: dict[int, tuple[str, ...]] = {
    36: (r"kick", r"bass ?drum", r"\bbd\b"),
    37: (r"side ?stick", r"\bstick\b", r"rim ?click"),
    38: (r"snare(?!.*(rim|roll))", r"snare"),
    39: (r"clap",),
    42: (rf"closed.*{HAT}|{HAT}.*(closed|\bcl\b)", rf"{HAT}(?!.*(open|\bop\b|pedal|\bpd\b|semi))"),
    44: (rf"pedal.*{HAT}|{HAT}.*(pedal|\bpd\b)",),
    46: (rf"open.*{HAT}|{HAT}.*(open|\bop\b)",),
    49: (r"crash",),
    51: (r"ride(?!.*(bell|cup))", r"ride"),
    50: (r"tom.*(hi|high|\b1\b)", r"high tom"),
    48: (r"tom.*(mid|\b2\b)", r"middle tom"),
    45: (r"tom.*(low|lo\b)", r"low tom"),
    41: (r"floor", r"tom.*(low|lo\b)"),
    54: (r"tambourine",),
    70: (r"shake|maraca",),
    75: (r"clave",),
    56: (r"cowbell",),
}
# Keys a kit lacks are played by a stand-in, when it has one.
STAND_IN = {44: 42, 46: 42, 51: 49, 49: 51, 37: 38, 39: 38, 47: 48, 43: 45, 50: 48, 48: 45, 45: 41, 41: 45}
REQUIRED = (36, 38, 42)


@dataclass
class Layer:
    low: float
    high: float
    gain: float
    file: str


@dataclass
class Instrument:
    name: str
    volume: float
    mute_group: int
    layers: list[Layer]


def parse_kit(xml_path: str) -> list[Instrument]:
    """The instruments of a Hydrogen ``drumkit.xml`` (old and new formats; namespaces ignored)
    that have at least one sample file present."""
    folder = Path(xml_path).parent
    text = Path(xml_path).read_text(errors="replace")
    text = re.sub(r'\sxmlns(:\w+)?="[^"]*"', "", text, count=0)
    root = ET.fromstring(text)
    instruments = []
    for inst in root.iter("instrument"):
        name = (inst.findtext("name") or "").strip()
        layers = []
        for layer in inst.iter("layer"):
            file = layer.findtext("filename")
            if not file or not (folder / file.strip()).is_file():  # some packaged kits lack files
                continue
            layers.append(Layer(float(layer.findtext("min") or 0), float(layer.findtext("max") or 1),
                                float(layer.findtext("gain") or 1), file.strip()))
        if not layers and inst.findtext("filename") and (folder / inst.findtext("filename").strip()).is_file():
            # the oldest format: one sample per instrument
            layers.append(Layer(0.0, 1.0, 1.0, inst.findtext("filename").strip()))
        if layers:
            instruments.append(Instrument(name, float(inst.findtext("volume") or 1),
                                          int(float(inst.findtext("muteGroup") or -1)), layers))
    return instruments


def key_map(instruments: list[Instrument]) -> dict[int, Instrument]:
    """GM drum key -> the first instrument whose name matches that key's patterns."""
    names = [i.name.lower() for i in instruments]
    out: dict[int, Instrument] = {}
    for key, patterns in KEY_PATTERNS.items():
        for pattern in patterns:
            hit = next((i for i, n in enumerate(names) if re.search(pattern, n)), None)
            if hit is not None:
                out[key] = instruments[hit]
                break
    return out


@functools.lru_cache(maxsize=64)
def usable_kit(xml_path: str) -> bool:
    """Whether a kit can play a drum kit part: it has a kick, a snare and a closed hi-hat."""
    try:
        mapped = key_map(parse_kit(xml_path))
    except (ET.ParseError, OSError, ValueError):
        return False
    return all(k in mapped for k in REQUIRED)


@functools.lru_cache(maxsize=4)
def load_kit(folder: str) -> tuple[dict[int, Instrument], dict[str, np.ndarray]]:
    """The key map of the kit in ``folder`` and its samples, float32 (2, n) at 44.1 kHz."""
    import soundfile as sf
    import soxr

    mapped = key_map(parse_kit(str(Path(folder) / "drumkit.xml")))
    samples: dict[str, np.ndarray] = {}
    for inst in mapped.values():
        for layer in inst.layers:
            if layer.file in samples:
                continue
            x, rate = sf.read(str(Path(folder) / layer.file), dtype="float32", always_2d=True)
            if rate != SAMPLE_RATE:
                x = soxr.resample(x, rate, SAMPLE_RATE).astype(np.float32)
            x = x[:, :2] if x.shape[1] >= 2 else np.repeat(x, 2, axis=1)
            samples[layer.file] = np.ascontiguousarray(x.T)
    return mapped, samples


def render_kit(part: Part, frames: int, folder: str) -> np.ndarray:
    """Play the drum notes of ``part`` on the kit in ``folder``: float32 (2, frames)."""
    mapped, samples = load_kit(folder)
    out = np.zeros((2, frames), dtype=np.float32)
    hits = []
    for n in part.notes:
        key = n.pitch if n.pitch in mapped else STAND_IN.get(n.pitch)
        if key not in mapped:
            continue
        hits.append((int(round(n.start * SAMPLE_RATE)), mapped[key], n.velocity))
    hits.sort(key=lambda h: h[0])
    choke_at = [frames] * len(hits)
    last_in_group: dict[int, int] = {}
    for i, (start, inst, _) in enumerate(hits):
        if inst.mute_group >= 0:
            j = last_in_group.get(inst.mute_group)
            if j is not None and hits[j][1] is not inst:
                choke_at[j] = min(choke_at[j], start)
            last_in_group[inst.mute_group] = i
    fade = 441
    for (start, inst, velocity), stop in zip(hits, choke_at):
        if start >= frames:
            continue
        v = velocity / 127
        layer = next((lay for lay in inst.layers if lay.low <= v <= lay.high), inst.layers[-1])
        x = samples[layer.file]
        n = min(x.shape[1], frames - start, stop - start + fade)
        if n <= 0:
            continue
        seg = x[:, :n] * (v * inst.volume * layer.gain)
        if stop - start < x.shape[1] and n > stop - start:
            k = n - max(0, stop - start)
            seg[:, n - k:] *= np.linspace(1, 0, k, dtype=np.float32)
        out[:, start:start + n] += seg
    return out
