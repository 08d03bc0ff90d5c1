"""Rendering parts to audio with a General MIDI SoundFont (tinysoundfont).

Each part is rendered alone on a freshly reset channel of a synthesiser kept per process
and per SoundFont (loading FluidR3_GM takes about 0.2 s), so the audio of a part does not
depend on what was rendered before it.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.synth.arrange import Part

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
CHANNEL, DRUM_CHANNEL = 0, 9


def check_soundfont(path: str | Path) -> Path:
    """The SoundFont path, checked to exist and to load; raises ConvSepError otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ConvSepError(f"SoundFont not found: {p} (install fluid-soundfont-gm or pass --soundfont FILE.sf2)")
    try:
        import tinysoundfont  # noqa: F401
    except ImportError:
        raise ConvSepError("the synthetic corpus needs tinysoundfont: pip install 'convsep[synth]' "
                           "(it builds pyaudio: install the PortAudio headers first, e.g. apt-get "
                           "install portaudio19-dev)") from None
    try:
        _synth(str(p))
    except Exception as exc:  # tinysoundfont raises plain exceptions on bad files
        raise ConvSepError(f"cannot load SoundFont {p}: {exc}") from None
    return p


@functools.lru_cache(maxsize=8)
def _synth(path: str):
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    sfid = synth.sfload(path, max_voices=96)
    return synth, sfid


def render_part(part: Part, frames: int, soundfont: str | Path,
                preset: tuple[int, int] | None = None) -> np.ndarray:
    """Render ``part`` (times in seconds) to float32 stereo of shape (2, frames) at 44.1 kHz.
    ``preset`` (bank, program) replaces the part's own, e.g. for a drum-only SoundFont whose
    kit is its melodic preset 0."""
    synth, sfid = _synth(str(soundfont))
    drums = part.bank == 128
    chan = DRUM_CHANNEL if drums else CHANNEL
    bank, program = preset if preset is not None else (part.bank, part.program)
    synth.program_select(chan, sfid, bank, program, is_drums=drums and bank == 128)
    synth.control_change(chan, 121, 0)  # reset controllers
    synth.control_change(chan, 7, 100)
    synth.control_change(chan, 10, 64)  # panning is done in the mix
    synth.pitchbend_range(chan, 2.0)
    synth.pitchbend(chan, 8192)

    events: list[tuple[int, int, int, int]] = []  # (frame, order, kind/key, value)
    for n in part.notes:
        on = int(round(n.start * SAMPLE_RATE))
        off = int(round((n.start + n.seconds) * SAMPLE_RATE))
        if on >= frames:
            continue
        events.append((on, 1, n.pitch, n.velocity))
        events.append((max(off, on + 1), 0, n.pitch, 0))
    for t, value in part.bends:
        events.append((int(round(t * SAMPLE_RATE)), 2, -1, value))
    events.sort()

    out = np.zeros((frames, 2), dtype=np.float32)
    pos = 0
    for frame, kind, key, value in events:
        frame = min(frame, frames)
        if frame > pos:
            buf = synth.generate_simple(frame - pos)
            out[pos:frame] = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
            pos = frame
        if frame >= frames:
            break
        if kind == 1:
            synth.noteon(chan, key, value)
        elif kind == 0:
            synth.noteoff(chan, key)
        else:
            synth.pitchbend(chan, value)
    if pos < frames:
        buf = synth.generate_simple(frames - pos)
        out[pos:] = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
    _silence(synth, chan)
    return np.ascontiguousarray(out.T)


def _silence(synth, chan: int) -> None:
    """Stop every voice and run the synthesiser until they are gone, so the next part
    starts from silence."""
    synth.sounds_off(chan)
    synth.notes_off(chan)
    for _ in range(8):
        buf = np.frombuffer(synth.generate_simple(4096), dtype=np.float32)
        if not np.any(buf):
            break
