"""From a song plan to parts: timed notes per instrument, grouped by stem.

Grooves and comping rhythms are step patterns over one bar (``beats_per_bar *
steps_per_beat`` characters; ``x`` a hit, ``g`` a ghost, ``.`` a rest). Times in a
:class:`Part` are in seconds from the track start.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convsep.synth.music import Chord, Song, chord_at

KICK, SNARE, STICK, CLAP, HAT, PEDAL, OPEN, CRASH, RIDE = 36, 38, 37, 39, 42, 44, 46, 49, 51
TOMS = (50, 48, 47, 45, 43, 41)
SHAKER, CONGA_HI, CONGA_LO, CLAVES, TAMB = 70, 63, 64, 75, 54


@dataclass
class TimedNote:
    """A note in seconds: onset, duration, MIDI pitch (or GM drum key), velocity 1..127."""

    start: float
    seconds: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """One instrument of one stem. ``program`` is a GM program (bank 128 for drum kits) or
    -1 for the formant singer of :mod:`convsep.synth.voice`; ``bends`` are (seconds, value
    0..16383) pitch-wheel events; ``pan`` in -1 (left) .. 1 (right)."""

    stem: str
    name: str
    program: int
    bank: int = 0
    notes: list[TimedNote] = field(default_factory=list)
    bends: list[tuple[float, int]] = field(default_factory=list)
    pan: float = 0.0
    gain_db: float = 0.0
    syllables: list[str] = field(default_factory=list)


# Drum grooves per style: instrument -> pattern, for the meter of that style.
GROOVES: dict[str, list[dict[int, str]]] = {
    "rock": [
        {KICK: "x.......x.x.....", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."},
        {KICK: "x.....x.x.......", SNARE: "....x.......x..g", HAT: "x.x.x.x.x.x.x.x."},
        {KICK: "x.x.....x.x.....", SNARE: "....x.......x...", RIDE: "x.x.x.x.x.x.x.x."},
    ],
    "pop": [
        {KICK: "x.......x.......", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."},
        {KICK: "x..x....x.......", SNARE: "....x.......x...", HAT: "xxxxxxxxxxxxxxxx", CLAP: "....x.......x..."},
    ],
    "funk": [
        {KICK: "x..x......x..x..", SNARE: "....x..g.g..x..g", HAT: "xxxxxxxxxxxxxxxx"},
        {KICK: "x.x....x..x.....", SNARE: "....x.g..g..x.g.", HAT: "x.xxx.xxx.xxx.xx", OPEN: ".....x.........."},
    ],
    "disco": [
        {KICK: "x...x...x...x...", SNARE: "....x.......x...", HAT: "x...x...x...x...", OPEN: "..x...x...x...x."},
    ],
    "latin": [
        {KICK: "x..xx..xx..xx..x", STICK: "x..x..x...x..x..", HAT: "x.x.x.x.x.x.x.x.", SHAKER: "xxxxxxxxxxxxxxxx"},
        {KICK: "x..x..x.x..x..x.", STICK: "..x..x....x..x..", CONGA_HI: "..xx..x...xx..x.", CONGA_LO: "......x.......x."},
    ],
    "ballad4": [
        {KICK: "x.......x.......", STICK: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."},
        {KICK: "x......xx.......", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."},
    ],
    "ballad3": [{KICK: "x...........", STICK: "....x.......", HAT: "x.x.x.x.x.x."}],
    "ballad2": [{KICK: "x.....", SNARE: "...x..", HAT: "xxxxxx"}],
    "waltz": [{KICK: "x...........", SNARE: "....x...x...", HAT: "x...x...x..."}],
    "swing": [{RIDE: "x..x.xx..x.x", PEDAL: "...x.....x..", KICK: "g..g..g..g..", SNARE: "......g....."}],
    "shuffle": [{KICK: "x.....x.....", SNARE: "...x.....x..", HAT: "x.xx.xx.xx.x"},
                {KICK: "x....gx.....", SNARE: "...x.....x..", RIDE: "x.xx.xx.xx.x"}],
}

# Bass patterns: R root, F fifth, O octave, T third, S seventh, A approach to next root.
BASS: dict[str, list[str]] = {
    "rock": ["R.R.R.R.R.R.R.R.", "R.....R.R...F..A"],
    "pop": ["R.....R.R...F...", "R.......R...R.A.", "R..R..R.R......."],
    "funk": ["R..O..R.R.S.R..O", "R.RO...RR..S.O.R"],
    "disco": ["R.O.R.O.R.O.R.O."],
    "latin": ["R..F....R..F....", "R..F..R.F..R..A."],
    "ballad4": ["R.......F.......", "R...............", "R.......R.....A."],
    "ballad3": ["R.......F...", "R..........."],
    "ballad2": ["R.....", "R..F.."],
    "waltz": ["R.......F...", "R..........."],
    "shuffle": ["R.TF..O.SF.T", "R..T..F..A.."],
}
STACCATO = {"funk": 0.45, "disco": 0.55, "rock": 0.8, "latin": 0.7}

# Accompaniment roles per style: (name, programs, role, low, high).
ROLES: dict[str, list[tuple[str, list[int], str, int, int]]] = {
    "rock": [("guitar", [29, 30], "power", 40, 64), ("guitar2", [27, 25], "strum", 52, 71),
             ("organ", [18, 16], "pad", 55, 72), ("piano", [0, 1], "comp", 55, 74)],
    "pop": [("piano", [0, 1, 4], "comp", 55, 74), ("guitar", [25, 27], "strum", 52, 71),
            ("pad", [88, 89, 48, 49, 50], "pad", 52, 72), ("synth", [80, 81, 98], "arp", 60, 84)],
    "funk": [("guitar", [28, 27], "chops", 57, 72), ("keys", [4, 5, 7], "stabs", 55, 74),
             ("brass", [61, 62], "stabs", 58, 76), ("organ", [16, 17], "pad", 55, 72)],
    "swing": [("piano", [0, 1], "comp", 52, 72), ("guitar", [26], "quarters", 50, 67),
              ("brass", [61, 65, 66], "pad", 55, 72), ("vibes", [11], "comp", 60, 79)],
    "ballad": [("piano", [0, 1, 4], "arp", 48, 79), ("strings", [48, 49], "pad", 52, 76),
               ("guitar", [24, 25], "arp", 48, 72), ("pad", [89, 91, 50], "pad", 52, 72)],
    "latin": [("guitar", [24], "comp", 50, 69), ("piano", [0, 4], "comp", 55, 76),
              ("brass", [61, 56], "stabs", 58, 76), ("strings", [48, 49], "pad", 55, 76)],
    "shuffle": [("organ", [16, 17, 18], "pad", 55, 72), ("piano", [0, 1], "comp", 55, 76),
                ("guitar", [27, 26, 29], "comp", 52, 69), ("brass", [61, 66], "stabs", 58, 74)],
    "disco": [("strings", [48, 50], "pad", 60, 79), ("guitar", [27, 28], "chops", 57, 72),
              ("keys", [4, 5], "comp", 55, 74), ("brass", [61, 62], "stabs", 58, 76)],
    "waltz": [("accordion", [21, 23], "comp", 55, 74), ("piano", [0, 1], "comp", 55, 76),
              ("strings", [48, 49], "pad", 55, 76), ("guitar", [24, 25], "arp", 48, 72)],
}
COMP: dict[str, list[str]] = {
    16: ["x...x...x...x...", "x..x..x...x.x...", "x.x.x.x.x.x.x.x.", "..x...x...x...x."],
    12: ["x...x...x...", "....x...x...", "x..x..x..x..", "x.....x.x..."],
    6: ["x..x..", "x.xx.x"],
}
SOLO_PROGRAMS = [65, 66, 56, 73, 29, 81, 80, 71]
VOWELS = ["a", "e", "i", "o", "u"]
CONSONANTS = ["", "", "l", "m", "n", "d", "t", "s", "h", "b", "k"]


def groove_key(song: Song) -> str:
    if song.style == "ballad":
        return f"ballad{song.beats_per_bar}"
    return song.style


def chord_tone(chord: Chord, symbol: str, nxt: Chord, base: int) -> int:
    """The bass pitch for ``symbol`` (see BASS) over ``chord``, root placed at ``base``..``base+11``."""
    root = base + (chord.root - base) % 12
    intervals = {"R": 0, "F": 7, "O": 12, "T": 4 if "min" not in chord.quality and "m7" not in chord.quality else 3,
                 "S": 10 if chord.quality != "maj7" else 11}
    if symbol == "A":
        target = base + (nxt.root - base) % 12
        return target + (1 if target <= root else -1)
    return root + intervals[symbol]


def voicing(chord: Chord, low: int, high: int, rng: np.random.Generator) -> list[int]:
    """Chord tones inside [low, high], closest to a random inversion starting above ``low``."""
    start = low + int(rng.integers(0, 5))
    pitches = sorted(start + (pc - start) % 12 for pc in chord.pitch_classes())
    return [p for p in pitches if p <= high] or [pitches[0]]


class Arranger:
    """Builds the parts of one song; all randomness comes from ``rng``."""

    def __init__(self, song: Song, rng: np.random.Generator, seconds: float):
        self.song = song
        self.rng = rng
        self.seconds = seconds
        self.spb = song.seconds_per_beat
        self.steps = song.beats_per_bar * song.steps_per_beat
        self.step_s = self.spb / song.steps_per_beat

    def t(self, beat: float) -> float:
        """Seconds for a beat position, with a little timing jitter."""
        return beat * self.spb + float(self.rng.normal(0, 0.004))

    def note(self, part: Part, beat: float, beats: float, pitch: int, velocity: float) -> None:
        start = max(0.0, self.t(beat))
        if start >= self.seconds:
            return
        vel = int(np.clip(velocity + self.rng.normal(0, 6), 20, 127))
        part.notes.append(TimedNote(start, max(0.03, beats * self.spb), int(pitch), vel))

    def active(self, kind: str, prob: dict[str, float]) -> bool:
        return bool(self.rng.random() < prob.get(kind, 0.8))

    # Drums --------------------------------------------------------------------------
    def drums(self) -> Part:
        song, rng = self.song, self.rng
        kits = {"swing": [32, 40, 0], "ballad": [0, 8, 40], "disco": [0, 24, 25], "funk": [0, 8, 16],
                "rock": [0, 16, 8], "latin": [0, 8]}.get(song.style, [0, 8, 16])
        part = Part("drums", "drums", int(rng.choice(kits)), 128, pan=0.0)
        grooves = GROOVES[groove_key(song)]
        for sec in song.sections:
            if sec.kind == "intro" and rng.random() < 0.4:
                continue
            groove = grooves[int(rng.integers(len(grooves)))] if sec.kind != "verse" else grooves[0]
            if sec.kind == "chorus" and HAT in groove and rng.random() < 0.5:
                groove = {**groove, RIDE: groove[HAT]}
                groove.pop(HAT)
            for b in range(sec.bars):
                bar = sec.start_bar + b
                beat0 = bar * song.beats_per_bar
                if sec.kind == "break":
                    if rng.random() < 0.5:
                        self.note(part, beat0, 1, CRASH, 110)
                        self.note(part, beat0, 1, KICK, 110)
                    continue
                if b == 0 and sec.kind != "verse" or b == 0 and rng.random() < 0.3:
                    self.note(part, beat0, 2, CRASH, 105)
                last = b == sec.bars - 1
                fill_from = self.steps - song.steps_per_beat * int(rng.choice([1, 2])) if last and sec.kind != "outro" else self.steps
                for key, pattern in groove.items():
                    for s, ch in enumerate(pattern):
                        if ch == "." or s >= fill_from:
                            continue
                        if key in (KICK, SNARE) and rng.random() < 0.04:
                            continue
                        accent = 100 if s % song.steps_per_beat == 0 else 78
                        vel = 45 if ch == "g" else accent
                        self.note(part, beat0 + s / song.steps_per_beat, 0.5, key, vel)
                    if key == KICK and rng.random() < 0.15:
                        s = int(rng.integers(self.steps))
                        self.note(part, beat0 + s / song.steps_per_beat, 0.5, KICK, 85)
                if fill_from < self.steps:
                    toms = list(TOMS[: int(rng.integers(2, 5))]) + [SNARE]
                    for j, s in enumerate(range(fill_from, self.steps)):
                        drum = toms[j * len(toms) // max(1, self.steps - fill_from)] if rng.random() < 0.7 else SNARE
                        self.note(part, beat0 + s / song.steps_per_beat, 0.5, drum, 85 + 2 * j)
        end_bar = song.sections[-1].start_bar + song.sections[-1].bars
        self.note(part, end_bar * song.beats_per_bar, 4, CRASH, 110)
        self.note(part, end_bar * song.beats_per_bar, 1, KICK, 110)
        return part

    # Bass ---------------------------------------------------------------------------
    def bass(self) -> Part:
        song, rng = self.song, self.rng
        programs = {"funk": [36, 37, 33, 38], "disco": [33, 38, 39], "swing": [32], "latin": [32, 33, 35],
                    "ballad": [33, 35, 32], "rock": [33, 34], "shuffle": [33, 32]}.get(song.style, [33, 34, 38])
        part = Part("bass", "bass", int(rng.choice(programs)))
        base = int(rng.choice([28, 31, 33]))
        patterns = BASS.get(groove_key(song), BASS["pop"])
        legato = STACCATO.get(song.style, 0.92)
        prob = {"intro": 0.5, "break": 0.25, "verse": 0.95, "chorus": 1.0, "bridge": 0.85, "solo": 0.9, "outro": 0.7}
        for sec in song.sections:
            if not self.active(sec.kind, prob):
                continue
            pattern = patterns[int(rng.integers(len(patterns)))]
            for b in range(sec.bars):
                bar = sec.start_bar + b
                beat0 = bar * song.beats_per_bar
                chord = chord_at(song.chords, beat0)
                nxt = chord_at(song.chords, beat0 + song.beats_per_bar)
                if song.style == "swing":
                    self.walk(part, beat0, chord, nxt, base)
                    continue
                hits = [s for s, ch in enumerate(pattern) if ch != "."]
                for i, s in enumerate(hits):
                    end = hits[i + 1] if i + 1 < len(hits) else self.steps
                    beats = (end - s) / song.steps_per_beat * legato
                    pitch = chord_tone(chord, pattern[s], nxt, base)
                    self.note(part, beat0 + s / song.steps_per_beat, beats, pitch, 100 if s == 0 else 85)
        return part

    def walk(self, part: Part, beat0: float, chord: Chord, nxt: Chord, base: int) -> None:
        """A walking-bass bar: root, chord tones, chromatic approach to the next root."""
        root = base + (chord.root - base) % 12
        tones = [root + i for i in (0, 3 if "min" in chord.quality or "m7" in chord.quality else 4, 7, 12)]
        line = [root, int(self.rng.choice(tones[1:])), int(self.rng.choice(tones[1:]))]
        target = base + (nxt.root - base) % 12
        line.append(target + int(self.rng.choice([-1, 1])))
        for i, p in enumerate(line[: self.song.beats_per_bar]):
            self.note(part, beat0 + i, 0.9, p, 95 if i == 0 else 82)

    # Accompaniment ----------------------------------------------------------------------
    def accompaniment(self) -> list[Part]:
        song, rng = self.song, self.rng
        roles = list(ROLES[song.style])
        n = int(rng.integers(2, len(roles) + 1))
        chosen = [roles[i] for i in sorted(rng.choice(len(roles), size=n, replace=False))]
        parts = []
        pans = np.linspace(-0.7, 0.7, len(chosen)) if len(chosen) > 1 else np.zeros(1)
        rng.shuffle(pans)
        for (name, programs, role, low, high), pan in zip(chosen, pans):
            part = Part("other", name, int(rng.choice(programs)), pan=float(pan),
                        gain_db=float(rng.uniform(-4, 0)))
            prob = {"intro": 0.5, "verse": 0.7, "chorus": 0.95, "bridge": 0.6, "solo": 0.8,
                    "break": 0.3, "outro": 0.7}
            if role == "stabs":
                prob = {"chorus": 0.8, "solo": 0.5, "intro": 0.3, "verse": 0.2, "outro": 0.4}
            pattern = COMP[self.steps][int(rng.integers(len(COMP[self.steps])))]
            for sec in song.sections:
                if not self.active(sec.kind, prob):
                    continue
                for b in range(sec.bars):
                    beat0 = (sec.start_bar + b) * song.beats_per_bar
                    chord = chord_at(song.chords, beat0)
                    self.play_role(part, role, beat0, chord, low, high, pattern)
            if part.notes:
                parts.append(part)
        solo = self.solo()
        if solo is not None:
            parts.append(solo)
        return parts

    def play_role(self, part: Part, role: str, beat0: float, chord: Chord, low: int, high: int,
                  pattern: str) -> None:
        song, rng = self.song, self.rng
        bpb, spb = song.beats_per_bar, song.steps_per_beat
        notes = voicing(chord, low, high, rng)
        if role == "pad":
            for p in notes:
                self.note(part, beat0, bpb * 0.98, p, 70)
        elif role == "power":
            root = low + (chord.root - low) % 12
            for s in range(0, self.steps, 2):
                for p in (root, root + 7, root + 12):
                    self.note(part, beat0 + s / spb, 2 / spb * 0.9, p, 95 if s % spb == 0 else 80)
        elif role == "arp":
            order = notes + notes[1:-1][::-1] if len(notes) > 2 else notes
            step = 2 if spb == 4 else 1
            for i, s in enumerate(range(0, self.steps, step)):
                self.note(part, beat0 + s / spb, step / spb * 1.8, order[i % len(order)], 72)
        elif role == "quarters":
            for i in range(bpb):
                for p in notes:
                    self.note(part, beat0 + i, 0.7, p, 70)
        elif role in ("comp", "strum", "chops", "stabs"):
            length = {"chops": 0.2, "stabs": 0.35}.get(role, 0.9)
            if role == "chops":
                pattern = "x.xx.x.xx.x.xx.x"[: self.steps] if spb == 4 else pattern
            hits = [s for s, ch in enumerate(pattern) if ch == "x"]
            for i, s in enumerate(hits):
                end = hits[i + 1] if i + 1 < len(hits) else self.steps
                beats = length if role in ("chops", "stabs") else (end - s) / spb * length
                spread = 0.012 if role == "strum" else 0.0
                down = rng.random() < 0.6
                for j, p in enumerate(notes if down else notes[::-1]):
                    self.note(part, beat0 + s / spb + j * spread / self.spb, beats, p, 85 if s % spb == 0 else 72)

    def solo(self) -> Part | None:
        """An instrumental lead in solo sections and sometimes over the intro."""
        song, rng = self.song, self.rng
        secs = [s for s in song.sections if s.kind == "solo" or s.kind == "intro" and rng.random() < 0.3]
        if not secs:
            return None
        part = Part("other", "lead", int(rng.choice(SOLO_PROGRAMS)), pan=float(rng.uniform(-0.3, 0.3)))
        scale = [0, 2, 3, 5, 7, 9, 10, 12] if song.mode == "minor" else [0, 2, 4, 7, 9, 12, 14]
        base = 60 + song.tonic
        for sec in secs:
            beat, end = sec.start_bar * song.beats_per_bar, (sec.start_bar + sec.bars) * song.beats_per_bar
            deg = 3
            while beat < end - 0.5:
                d = float(rng.choice([0.5, 0.5, 1.0, 1.5, 2.0]))
                if rng.random() < 0.15:
                    beat += d
                    continue
                deg = int(np.clip(deg + rng.choice([-2, -1, 1, 2]), 0, len(scale) - 1))
                self.note(part, beat, d * 0.9, base + scale[deg], 90)
                beat += d
        return part

    # Vocals -------------------------------------------------------------------------
    def vocals(self) -> list[Part]:
        song, rng = self.song, self.rng
        lead = Part("vocals", "lead voice", -1, pan=float(rng.uniform(-0.05, 0.05)))
        if rng.random() < 0.2:  # a sampled voice instead of the formant singer
            lead = Part("vocals", "lead voice", int(rng.choice([53, 54, 85])))
        for n in song.melody:
            self.note(lead, n.start, n.beats, n.pitch, n.velocity)
            lead.syllables.append(str(rng.choice(CONSONANTS)) + str(rng.choice(VOWELS)))
        if lead.program >= 0:
            lead.bends = self.vibrato(lead.notes)
        parts = [lead]
        if rng.random() < 0.5:
            backing = Part("vocals", "backing voices", int(rng.choice([52, 53])),
                           pan=float(rng.choice([-0.4, 0.4])), gain_db=-8.0)
            for sec in song.sections:
                if sec.kind != "chorus":
                    continue
                for b in range(sec.bars):
                    beat0 = (sec.start_bar + b) * song.beats_per_bar
                    for p in voicing(chord_at(song.chords, beat0), 55, 72, rng)[:2]:
                        self.note(backing, beat0, song.beats_per_bar * 0.95, p, 60)
            if backing.notes:
                parts.append(backing)
        return parts

    def vibrato(self, notes: list[TimedNote]) -> list[tuple[float, int]]:
        """Pitch-wheel vibrato (about 5.5 Hz, a quarter tone deep at 2 semitones range) that
        sets in after the note onset."""
        bends: list[tuple[float, int]] = []
        rate = float(self.rng.uniform(4.8, 6.2))
        for n in notes:
            t = np.arange(n.start + 0.15, n.start + n.seconds, 0.02)
            depth = np.minimum(1.0, (t - n.start - 0.15) / 0.3) * 0.22
            values = 8192 + 4096 * depth * np.sin(2 * np.pi * rate * (t - n.start))
            bends += [(float(a), int(v)) for a, v in zip(t, values)]
            bends.append((n.start + n.seconds, 8192))
        return bends


def arrange(song: Song, rng: np.random.Generator, seconds: float) -> dict[str, list[Part]]:
    """All parts of ``song`` grouped by stem name (vocals, drums, bass, other)."""
    a = Arranger(song, rng, seconds)
    return {"vocals": a.vocals(), "drums": [a.drums()], "bass": [a.bass()], "other": a.accompaniment()}
