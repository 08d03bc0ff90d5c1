"""Constants of the whole package, with one home each.

``VERSION``: the package's version (``convsep.__version__``).

``SAMPLE_RATE``: every model, the corpus and the STFT work at 44.1 kHz; other rates are
resampled on the way in (and, where asked, on the way out).
``SOURCES``: the four sources and the order of the source axis everywhere in the package.
"""
from __future__ import annotations

VERSION = "0.1.0"
SAMPLE_RATE = 44100
SOURCES: tuple[str, ...] = ("vocals", "drums", "bass", "other")
