"""Musicians' exports of separated stems: a mix of the stems at chosen gains (a karaoke or
practice track), and a stem in another format, as WAV, FLAC or MP3.

The stems are read block by block and summed in float64, so memory does not grow with the
song's length and a 16-bit mix is the weighted sum rounded once (within half a step).
Files are written under a temporary name and renamed into place (``AtomicAudioWriter``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import soundfile as sf

from convsep.errors import ConvSepError
from convsep.io.audio import AtomicAudioWriter

EXPORT_FORMATS = ("wav", "flac", "mp3")
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}
MAX_GAIN = 4.0          # +12 dB
BLOCK = 1 << 17


def check_format(fmt: str | None) -> str:
    fmt = (fmt or "wav").lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ConvSepError(f"unsupported format {fmt[:20]!r}; use one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def check_gains(gains: Mapping[str, object], names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """{stem: gain} for every stem in ``names`` (1 where not given); ConvSepError for an
    unknown stem or a gain that is not a number from 0 to ``MAX_GAIN``."""
    unknown = [str(name)[:40] for name in gains if name not in names]
    if unknown:
        raise ConvSepError(f"unknown stem {unknown[0]!r}; the stems are {', '.join(names)}")
    checked = {}
    for name in names:
        gain = gains.get(name, 1.0)
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain) \
                or not 0.0 <= gain <= MAX_GAIN:
            raise ConvSepError(f"gain of {name} must be a number from 0 to {MAX_GAIN:g}, got {str(gain)[:20]!r}")
        checked[name] = float(gain)
    return checked


def parse_gains(items: list[str] | None) -> dict[str, float]:
    """``["vocals=0", "drums=0.5"]`` -> {"vocals": 0.0, "drums": 0.5} (the CLI's --gain)."""
    gains: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            gains[name.strip()] = float(value)
        except ValueError:
            raise ConvSepError(f"--gain takes STEM=GAIN (e.g. vocals=0), got {item!r}") from None
    return gains


def mix_stems(stems: Mapping[str, str | os.PathLike], gains: Mapping[str, float], target: str | os.PathLike,
              fmt: str | None = None, bits: str = "16", overwrite: bool = True) -> int:
    """Writes sum(gain * stem) of the stem files to ``target`` (wav, flac or mp3; by default
    its extension) and returns the number of clipped samples. The stems must share their rate
    and channels; the mix has the length of the longest."""
    target = Path(target)
    fmt = check_format(fmt or target.suffix)
    gains = check_gains(gains, list(stems))
    files = []
    try:
        for path in stems.values():
            try:
                files.append(sf.SoundFile(str(path)))
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise ConvSepError(f"{path}: not a readable audio file ({str(exc).strip()[:100]})") from None
        rates, channels = {f.samplerate for f in files}, {f.channels for f in files}
        if len(rates) != 1 or len(channels) != 1:
            raise ConvSepError("the stems differ in sample rate or channels; they cannot be mixed")
        writer = AtomicAudioWriter(target, rates.pop(), channels.pop(), fmt, "32f" if fmt == "mp3" else bits)
        try:
            while True:
                blocks = [f.read(BLOCK, dtype="float64", always_2d=True) for f in files]
                length = max(len(b) for b in blocks)
                if length == 0:
                    break
                mix = np.zeros((length, blocks[0].shape[1]))
                for block, gain in zip(blocks, gains.values()):
                    if gain:
                        mix[: len(block)] += gain * block
                writer.write(mix.T)
            writer.commit(overwrite)
        except BaseException:
            writer.discard()
            raise
        return writer.clipped
    finally:
        for f in files:
            f.close()


def convert(source: str | os.PathLike, target: str | os.PathLike, fmt: str | None = None,
            bits: str = "16", overwrite: bool = True) -> int:
    """One audio file in another format (wav, flac, mp3); returns the clipped samples."""
    return mix_stems({"audio": source}, {"audio": 1.0}, target, fmt, bits, overwrite)
