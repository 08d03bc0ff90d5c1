"""Real recordings the corpus reads where they lie (``../shared/data/real``, next to the
checkout), never copied into the package: where they are, and how one is read."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from convsep.constants import SAMPLE_RATE


def real_root() -> Path:
    """``../shared/data/real`` next to the checkout (the parent of the MIR-1K folder)."""
    from convsep.data.mir1k import default_root

    return default_root().parent


@functools.lru_cache(maxsize=64)
def read_recording(path: str) -> np.ndarray:
    """A recording as mono float64 at 44.1 kHz (cached: do not modify it)."""
    import soundfile as sf

    x, rate = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1).astype(np.float64)
    if rate != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, rate, SAMPLE_RATE)
    return x
