"""Synthetic multitrack corpus: MIDI-like arrangements rendered with a General MIDI
SoundFont and a formant singer, mixed into MUSDB18 layouts. See :func:`make_corpus`."""
from convsep.synth.corpus import PRESETS, make_corpus

__all__ = ["PRESETS", "make_corpus"]
