"""Song plans: style, tempo, key, meter, sections, chords per bar and a sung melody.

Everything here is in musical time (beats); :mod:`convsep.synth.arrange` turns a plan into
timed notes. Harmony comes from idiomatic progressions per style or from Bach chorale
harmony; melodies come from folk songs (Essen collection) or from a chord-tone generator.
Both real sources are pre-extracted into ``data/material.json.gz`` by
``scripts/synth_extract_material.py``.
"""
from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MATERIAL = Path(__file__).resolve().parent / "data" / "material.json.gz"
KEY_NAMES = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
NOTE_PC = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}   # note letter -> pitch class

# Chord qualities as semitone intervals above the root.
QUALITY_INTERVALS: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "m7b5": (0, 3, 6, 10),
    "sus4": (0, 5, 7), "add9": (0, 4, 7, 14),
}


@dataclass(frozen=True)
class Style:
    """What a style allows: meters as (beats per bar, steps per beat), tempo range in BPM."""

    name: str
    meters: tuple[tuple[int, int], ...]
    tempo: tuple[int, int]
    minor_prob: float
    chorale_prob: float
    sevenths: bool = False


STYLES: dict[str, Style] = {
    s.name: s
    for s in [
        Style("rock", ((4, 4),), (96, 150), 0.4, 0.2),
        Style("pop", ((4, 4),), (84, 126), 0.3, 0.4),
        Style("funk", ((4, 4),), (92, 116), 0.6, 0.0, sevenths=True),
        Style("swing", ((4, 3),), (110, 190), 0.25, 0.2, sevenths=True),
        Style("ballad", ((4, 4), (3, 4), (2, 3)), (60, 82), 0.4, 0.6),
        Style("latin", ((4, 4),), (100, 140), 0.5, 0.2, sevenths=True),
        Style("shuffle", ((4, 3),), (76, 112), 0.2, 0.0, sevenths=True),
        Style("disco", ((4, 4),), (112, 126), 0.4, 0.2),
        Style("waltz", ((3, 4),), (92, 160), 0.35, 0.5),
    ]
}

# Idiomatic progressions, one chord per bar: (semitones above tonic, quality).
IDIOMS: dict[str, list[list[tuple[int, str]]]] = {
    "major": [
        [(0, "maj"), (7, "maj"), (9, "min"), (5, "maj")],
        [(9, "min"), (5, "maj"), (0, "maj"), (7, "maj")],
        [(0, "maj"), (9, "min"), (5, "maj"), (7, "maj")],
        [(0, "maj"), (5, "maj"), (7, "maj"), (5, "maj")],
        [(0, "maj"), (10, "maj"), (5, "maj"), (0, "maj")],
        [(0, "maj"), (4, "min"), (5, "maj"), (7, "maj")],
        [(2, "min"), (7, "maj"), (0, "maj"), (0, "maj")],
        [(0, "maj"), (5, "maj"), (9, "min"), (7, "sus4")],
        [(5, "maj"), (7, "maj"), (4, "min"), (9, "min")],
    ],
    "minor": [
        [(0, "min"), (8, "maj"), (3, "maj"), (10, "maj")],
        [(0, "min"), (10, "maj"), (8, "maj"), (7, "maj")],
        [(0, "min"), (5, "min"), (7, "maj"), (0, "min")],
        [(0, "min"), (3, "maj"), (10, "maj"), (5, "min")],
        [(0, "min"), (0, "min"), (5, "min"), (7, "min")],
        [(0, "min"), (8, "maj"), (5, "min"), (7, "maj")],
    ],
}
JAZZ = {
    "major": [
        [(2, "min7"), (7, "7"), (0, "maj7"), (9, "7")],
        [(0, "maj7"), (9, "min7"), (2, "min7"), (7, "7")],
        [(4, "min7"), (9, "7"), (2, "min7"), (7, "7")],
        [(5, "maj7"), (4, "min7"), (2, "min7"), (0, "maj7")],
    ],
    "minor": [
        [(2, "m7b5"), (7, "7"), (0, "min7"), (0, "min7")],
        [(0, "min7"), (5, "min7"), (10, "7"), (3, "maj7")],
    ],
}
FUNK = {
    "major": [[(0, "7"), (0, "7"), (5, "7"), (0, "7")], [(0, "7"), (10, "maj"), (5, "maj"), (0, "7")]],
    "minor": [[(0, "min7"), (0, "min7"), (5, "7"), (5, "7")], [(0, "min7"), (3, "maj7"), (5, "min7"), (0, "min7")]],
}
BLUES = [(0, "7"), (5, "7"), (0, "7"), (0, "7"), (5, "7"), (5, "7"), (0, "7"), (0, "7"),
         (7, "7"), (5, "7"), (0, "7"), (7, "7")]


@dataclass
class Chord:
    """A chord held for ``beats`` beats from ``start`` (beats from the song start)."""

    start: float
    beats: float
    root: int  # pitch class 0..11 (absolute, key applied)
    quality: str

    def pitch_classes(self) -> list[int]:
        return [(self.root + i) % 12 for i in QUALITY_INTERVALS[self.quality]]


@dataclass
class Note:
    """A note in beats: ``start`` and ``beats`` from the song start, MIDI ``pitch``, velocity 1..127."""

    start: float
    beats: float
    pitch: int
    velocity: int = 90


@dataclass
class Section:
    """A song section spanning ``bars`` bars from ``start_bar``; ``kind`` is one of intro,
    verse, chorus, bridge, solo, break, outro."""

    kind: str
    start_bar: int
    bars: int
    vocals: bool


@dataclass
class Song:
    """The musical plan of one track."""

    style: str
    tempo: float  # beats per minute
    tonic: int  # pitch class
    mode: str  # "major" or "minor"
    beats_per_bar: int
    steps_per_beat: int  # 4: straight sixteenths, 3: triplet feel (swing, shuffle, 6/8)
    sections: list[Section]
    chords: list[Chord]
    melody: list[Note]
    voice_range: str  # "low" or "high"
    sources: list[str] = field(default_factory=list)  # real material used

    @property
    def key_name(self) -> str:
        return f"{KEY_NAMES[self.tonic]} {self.mode}"

    @property
    def meter_name(self) -> str:
        if self.beats_per_bar == 2 and self.steps_per_beat == 3:
            return "6/8"
        if self.beats_per_bar == 4 and self.steps_per_beat == 3:
            return "12/8"
        return f"{self.beats_per_bar}/4"

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.tempo

    @property
    def bars(self) -> int:
        return self.sections[-1].start_bar + self.sections[-1].bars

    def section_at(self, bar: int) -> Section:
        for s in self.sections:
            if s.start_bar <= bar < s.start_bar + s.bars:
                return s
        return self.sections[-1]


@functools.lru_cache(maxsize=1)
def load_material() -> dict:
    """The pre-extracted folk melodies and chorale progressions (empty lists if absent)."""
    if not MATERIAL.exists():
        return {"melodies": [], "progressions": []}
    with gzip.open(MATERIAL, "rt", encoding="utf-8") as f:
        return json.load(f)


def plan_sections(rng: np.random.Generator, bars_needed: int, phrase: int) -> list[Section]:
    """A song-like form covering ``bars_needed`` bars (``phrase`` is 4 or 8 bars): intro,
    verse, chorus, a bridge, solo or break, verse, chorus, ..., outro. Verses and choruses
    are lengthened to fill the time, so short tracks still hold a whole form."""
    middle = ["bridge", "solo", "break"]
    form = ["intro", "verse", "chorus", str(rng.choice(middle)), "verse", "chorus",
            str(rng.choice(middle)), "chorus", "outro"]
    bars = {"intro": int(rng.choice([1, 2])) * phrase // 2 or 2, "break": 2, "outro": phrase}
    lengths = [bars.get(k, phrase) for k in form]
    growable = [i for i, k in enumerate(form) if k in ("verse", "chorus", "bridge", "solo")]
    while sum(lengths) < bars_needed:
        i = growable[int(rng.integers(len(growable)))]
        if lengths[i] < 4 * phrase:
            lengths[i] += phrase
        elif all(lengths[j] >= 4 * phrase for j in growable):
            form.insert(-1, "chorus")
            lengths.insert(-1, phrase)
            growable.append(len(form) - 2)
    sections, bar = [], 0
    for kind, n in zip(form, lengths):
        sections.append(Section(kind, bar, n, kind in ("verse", "chorus", "bridge")))
        bar += n
    return sections


def chorale_loop(rng: np.random.Generator, mode: str, length: int) -> tuple[list[tuple[int, str]], str] | None:
    """``length`` chords from a random window of a chorale in ``mode``, repeated chords removed."""
    pool = [p for p in load_material()["progressions"] if p["mode"] == mode]
    if not pool:
        return None
    p = pool[int(rng.integers(len(pool)))]
    beats = p["beats"]
    for _ in range(8):
        i = int(rng.integers(0, max(1, len(beats) - 4 * length)))
        out: list[tuple[int, str]] = []
        for root, quality in beats[i:]:
            if not out or out[-1] != (root, quality):
                out.append((int(root), str(quality)))
            if len(out) == length:
                return out, p["source"]
    return None


def progression(rng: np.random.Generator, style: Style, mode: str, length: int,
                sources: list[str]) -> list[tuple[int, str]]:
    """A loop of ``length`` bar chords (tonic-relative) idiomatic for ``style``."""
    if style.name == "shuffle":
        return BLUES[:length] if length <= 12 else BLUES
    if rng.random() < style.chorale_prob:
        got = chorale_loop(rng, mode, length)
        if got is not None:
            sources.append(got[1])
            return got[0]
    table = JAZZ if style.name in ("swing", "latin") else FUNK if style.name == "funk" else IDIOMS
    loop = list(table[mode][int(rng.integers(len(table[mode])))])
    while len(loop) < length:
        loop = loop + loop
    loop = loop[:length]
    if style.sevenths and table is IDIOMS:
        seventh = {"maj": "maj7", "min": "min7"}
        loop = [(r, seventh.get(q, q) if rng.random() < 0.5 else q) for r, q in loop]
    return loop


def plan_chords(rng: np.random.Generator, style: Style, tonic: int, mode: str,
                sections: list[Section], beats_per_bar: int, sources: list[str]) -> list[Chord]:
    """One chord per bar (two per bar in some fast-changing loops), one loop per section kind."""
    loops: dict[str, list[tuple[int, str]]] = {}
    chords: list[Chord] = []
    for sec in sections:
        key = {"intro": "verse", "outro": "chorus", "break": "chorus", "solo": "verse"}.get(sec.kind, sec.kind)
        if key not in loops:
            length = 12 if style.name == "shuffle" else int(rng.choice([4, 4, 8]))
            loops[key] = progression(rng, style, mode, length, sources)
        loop = loops[key]
        for b in range(sec.bars):
            root, quality = loop[b % len(loop)]
            start = (sec.start_bar + b) * beats_per_bar
            chords.append(Chord(start, beats_per_bar, (tonic + root) % 12, quality))
    return chords


def chord_at(chords: list[Chord], beat: float) -> Chord:
    """The chord sounding at ``beat`` (chords are one per bar, in order)."""
    i = int(np.searchsorted([c.start for c in chords], beat, side="right")) - 1
    return chords[max(0, min(i, len(chords) - 1))]


def nearest_chord_tone(pitch: int, chord: Chord) -> int:
    pcs = chord.pitch_classes()
    best = min(range(-6, 7), key=lambda d: (abs(d), d) if (pitch + d) % 12 in pcs else (99, 0))
    return pitch + best


def fit_range(pitches: list[int], centre: int) -> list[int]:
    """Shift ``pitches`` by octaves so their median sits near ``centre``, then fold outliers."""
    if not pitches:
        return pitches
    shift = 12 * round((centre - float(np.median(pitches))) / 12)
    out = []
    for p in pitches:
        q = p + shift
        while q > centre + 11:
            q -= 12
        while q < centre - 11:
            q += 12
        out.append(q)
    return out


def folk_phrase(rng: np.random.Generator, triple: bool, mode: str, bars: int, stretch: int,
                sources: list[str]) -> list[tuple[float, float, int]] | None:
    """A window of a folk melody as (onset_bars, duration_bars, semitones) covering ``bars`` bars."""
    kind = "triple" if triple else "duple"
    pool = [m for m in load_material()["melodies"] if m["meter"] == kind and m["mode"] == mode]
    if not pool:
        return None
    m = pool[int(rng.integers(len(pool)))]
    notes = m["notes"]
    span = bars / stretch
    last = notes[-1][0]
    start = float(np.floor(rng.uniform(0, max(0.0, last - span)))) if last > span else 0.0
    out = [(stretch * (o - start), stretch * d, s) for o, d, s in notes if start <= o < start + span]
    if len(out) < 3:
        return None
    sources.append(m["source"])
    return out


def generated_phrase(rng: np.random.Generator, bars: int, beats_per_bar: int) -> list[tuple[float, float, int]]:
    """A stepwise melodic phrase on scale degrees (semitones of a major scale), in bars."""
    scale = [0, 2, 4, 5, 7, 9, 11, 12, 14]
    rhythms = [[1, 1, 1, 1], [1.5, 0.5, 1, 1], [0.5, 0.5, 1, 2], [2, 1, 1], [1, 0.5, 0.5, 2], [3, 1]]
    out, deg = [], int(rng.integers(2, 6))
    for bar in range(bars):
        beat = 0.0
        pattern = rhythms[int(rng.integers(len(rhythms)))]
        for d in pattern:
            if beat + d > beats_per_bar:
                break
            deg = int(np.clip(deg + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(scale) - 1))
            out.append(((bar * beats_per_bar + beat) / beats_per_bar, d / beats_per_bar, scale[deg]))
            beat += d
    return out


def plan_melody(rng: np.random.Generator, song: Song, minor: bool) -> list[Note]:
    """The lead vocal line: one phrase per 4 bars of each sung section, breaths between phrases."""
    bpb = song.beats_per_bar
    triple = bpb == 3 or song.steps_per_beat == 3 and bpb == 2
    centre = 57 if song.voice_range == "low" else 67
    notes: list[Note] = []
    phrases: dict[str, list[tuple[float, float, int]]] = {}
    for sec in song.sections:
        if not sec.vocals:
            continue
        for p0 in range(0, sec.bars, 4):
            bars = min(4, sec.bars - p0)
            key = f"{sec.kind}{p0 % 8}"
            if key not in phrases:
                ph = None
                if rng.random() < 0.75:
                    stretch = 2 if song.tempo > 140 else 1
                    ph = folk_phrase(rng, triple, song.mode, bars, stretch, song.sources)
                if ph is None:
                    ph = generated_phrase(rng, bars, bpb)
                    if minor:
                        ph = [(o, d, s - 1 if s % 12 in (4, 9, 11) else s) for o, d, s in ph]
                phrases[key] = ph
            ph = phrases[key]
            rel = [s for _, _, s in ph]
            pitches = fit_range([song.tonic + 60 + s for s in rel], centre)
            base = (sec.start_bar + p0) * bpb
            end = base + bars * bpb - rng.uniform(0.5, 1.5)  # a breath before the next phrase
            sung = []
            for (o, d, _), p in zip(ph, pitches):
                start = base + o * bpb
                if start >= end or o >= bars:
                    continue
                beats = min(d * bpb, end - start)
                chord = chord_at(song.chords, start)
                if beats >= 1.0 or start % 1 == 0:
                    p = nearest_chord_tone(p, chord)
                sung.append(Note(start, max(0.25, beats * 0.95), p, int(rng.integers(80, 110))))
            notes += sung
    return notes


def plan_song(rng: np.random.Generator, seconds: float, style_name: str | None = None) -> Song:
    """A complete plan covering at least ``seconds`` seconds."""
    style = STYLES[style_name] if style_name else STYLES[str(rng.choice(sorted(STYLES)))]
    bpb, spb = style.meters[int(rng.integers(len(style.meters)))]
    tempo = float(rng.integers(style.tempo[0], style.tempo[1] + 1))
    if bpb == 2:  # 6/8: the beat is a dotted quarter
        tempo = tempo * 0.6
    mode = "minor" if rng.random() < style.minor_prob else "major"
    tonic = int(rng.integers(12))
    bar_seconds = bpb * 60.0 / tempo
    bars_needed = int(np.ceil(seconds / bar_seconds)) + 1
    phrase = 8 if bpb == 2 or bar_seconds < 1.6 else 4
    sections = plan_sections(rng, bars_needed, phrase)
    if seconds < 10:  # very short tracks (tests): let the voice in right away
        sections = [Section("verse", 0, bars_needed, True)]
    sources: list[str] = []
    chords = plan_chords(rng, style, tonic, mode, sections, bpb, sources)
    song = Song(style.name, tempo, tonic, mode, bpb, spb, sections, chords, [],
                str(rng.choice(["low", "high"])), sources)
    song.melody = plan_melody(rng, song, mode == "minor")
    return song
