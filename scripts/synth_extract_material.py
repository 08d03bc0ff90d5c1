"""Extract compact musical material for the synthetic corpus from the music21 corpus.

Writes ``convsep/synth/data/material.json.gz`` with:

- ``melodies``: folk-song melodies (Essen collection) as notes relative to the tonic,
  ``[onset_bars, duration_bars, semitones]`` where onsets and durations are in bars of the
  song's own meter, and ``meter`` ("duple" or "triple");
- ``progressions``: Bach chorale harmony, one chord per beat, ``[root_semitones, quality]``
  relative to the tonic, with the chorale's mode.

Parsing scores with music21 takes about two minutes; generation then reads the small file.

    python scripts/synth_extract_material.py [--chorales 200]
"""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from music21 import corpus

ESSEN_FILES = ["altdeu10", "altdeu20", "ballad10", "ballad20", "ballad30", "ballad40",
               "kinder0", "erk10", "erk20", "boehme10"]
OUT = Path(__file__).resolve().parent.parent / "convsep" / "synth" / "data" / "material.json.gz"
QUALITIES = {"major": "maj", "minor": "min", "diminished": "dim", "augmented": "aug"}


def meter_kind(numerator: int) -> str | None:
    if numerator in (2, 4):
        return "duple"
    if numerator in (3, 6):
        return "triple"
    return None


def extract_melody(score) -> dict | None:
    sigs = list(score.recurse().getElementsByClass("TimeSignature"))
    if len(sigs) != 1:
        return None
    kind = meter_kind(sigs[0].numerator)
    if kind is None:
        return None
    bar_q = float(sigs[0].barDuration.quarterLength)
    key = score.analyze("key")
    tonic = key.tonic.pitchClass
    notes = []
    for n in score.flatten().notes:
        if not n.isNote:
            continue
        rel = n.pitch.midi - (60 + tonic)
        notes.append([round(float(n.offset) / bar_q, 4), round(float(n.quarterLength) / bar_q, 4), rel])
    if len(notes) < 12:
        return None
    return {"meter": kind, "mode": key.mode, "notes": notes}


def extract_progression(score) -> dict | None:
    key = score.analyze("key")
    tonic = key.tonic.pitchClass
    chords = score.chordify().flatten().getElementsByClass("Chord")
    beats: list[list] = []
    for c in chords:
        if float(c.offset) != int(c.offset):
            continue
        quality = QUALITIES.get(c.quality, "maj")
        beats.append([(c.root().pitchClass - tonic) % 12, quality])
    if len(beats) < 16:
        return None
    return {"mode": key.mode, "beats": beats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chorales", type=int, default=200)
    args = parser.parse_args()
    melodies = []
    for name in ESSEN_FILES:
        opus = corpus.parse(f"essenFolksong/{name}")
        for i, score in enumerate(opus.scores):
            try:
                m = extract_melody(score)
            except Exception:  # a few abc tunes are malformed; skip them
                continue
            if m is not None:
                m["source"] = f"essenFolksong/{name}#{i}"
                melodies.append(m)
        print(f"{name}: {len(melodies)} melodies so far", flush=True)
    progressions = []
    for path in sorted(corpus.getComposer("bach"))[: args.chorales]:
        try:
            p = extract_progression(corpus.parse(path))
        except Exception:
            continue
        if p is not None:
            p["source"] = "bach/" + Path(path).stem
            progressions.append(p)
    print(f"{len(progressions)} chorale progressions", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT, "wt", encoding="utf-8") as f:
        json.dump({"melodies": melodies, "progressions": progressions}, f, separators=(",", ":"))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
