"""The synthetic multitrack corpus: ``make_corpus(out, ...)`` writes MUSDB18-HQ-style
folders (or MUSDB18-style ``.stem.mp4`` files), a validation split and a manifest.

Each track is generated from its own seed, derived from the global seed, the subset and the
track index, so a corpus made with several processes is identical to one made with one.
WAV files are 16-bit PCM stereo at 44.1 kHz; the mixture is the integer sum of the
quantised stems (exact) and never clips.
"""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from convsep.constants import SAMPLE_RATE, SOURCES
from convsep.errors import ConvSepError
from convsep.io.filesafety import remove_stale_folders, write_problem
from convsep.synth import mix, voice
from convsep.synth.arrange import Part, arrange
from convsep.synth.mix import REVERB_SEND, RT60, STEM_LEVEL
from convsep.synth.music import plan_song
from convsep.synth.render import DEFAULT_SOUNDFONT, check_soundfont, render_part

STEM_ORDER = ("mixture", "drums", "bass", "other", "vocals")  # MUSDB18 stream order
SUBSET_IDS = {"train": 0, "test": 1}
MIN_SECONDS = 1.0
PRESETS = {"tiny": {"tracks_train": 3, "tracks_test": 2, "seconds": 4.0}}
MAX_TRACKS = 100_000     # per subset: a bound on memory and time for a mistyped size
# The names musdb's bundled configuration lists as the validation split of MUSDB18's train
# subset. Validation tracks of this corpus take these names so that
# ``musdb.DB(root, is_wav=True, subsets="train", split="valid")`` finds them.
MUSDB_VALID_NAMES = (
    "Actions - One Minute Smile", "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies", "Patrick Talbot - A Reason To Leave", "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero", "Fergessen - Nos Palpitants", "Leaf - Summerghost",
    "Skelpolu - Human Mistakes", "Young Griffo - Pennies", "ANiMAL - Rockshow",
    "James May - On The Line", "Meaxic - Take A Step", "Traffic Experiment - Sirens",
)


@dataclass(frozen=True)
class TrackSpec:
    """What one worker needs to make one track."""

    index: int
    subset: str
    split: str
    name: str
    seed: int
    seconds: float
    soundfont: str
    fmt: str
    folder: str
    bankset: object = None  # a banks.BankSet for the varied corpus; None: the original recipe
    voices: str = "synthetic"
    production: str = "classic"


def track_seed(seed: int, subset: str, index: int) -> int:
    """The per-track seed: a hash of (global seed, subset, index)."""
    return int(np.random.SeedSequence([seed, SUBSET_IDS[subset], index]).generate_state(1)[0])


def render_stem(parts: list[Part], frames: int, soundfont: str, register: str,
                rng: np.random.Generator) -> np.ndarray:
    """The parts of one stem, each levelled, panned and summed: float64 (2, frames)."""
    acc = np.zeros((2, frames))
    for part in parts:
        if part.program < 0:
            audio = voice.sing(part, frames, register, rng).astype(np.float64)
            width = 1.0
        else:
            audio = render_part(part, frames, soundfont).astype(np.float64)
            width = 1.0 if part.stem in ("other", "drums") else 0.4
        level = mix.active_rms(audio if audio.ndim == 2 else audio[None].repeat(2, 0))
        if level <= 0:
            continue
        gain = 10 ** (part.gain_db / 20) * 0.1 / level
        acc += mix.pan(audio, part.pan, width) * gain
    return acc


def make_track(spec: TrackSpec) -> dict:
    """Generate, mix and write one track; returns its manifest row."""
    if spec.bankset is not None:
        return make_varied_track(spec)
    rng = np.random.default_rng(spec.seed)
    song = plan_song(rng, spec.seconds)
    parts = arrange(song, rng, spec.seconds)
    frames = int(round(spec.seconds * SAMPLE_RATE))
    lo, hi = RT60.get(song.style, (0.8, 1.6))
    room = mix.room_response(rng, float(rng.uniform(lo, hi)))
    stems: dict[str, np.ndarray] = {}
    for name in SOURCES:
        x = render_stem(parts[name], frames, spec.soundfont, song.voice_range, rng)
        level = mix.active_rms(x)
        mean, spread = STEM_LEVEL[name]
        if level > 0:
            x *= 10 ** ((mean + rng.normal(0, spread / 2)) / 20) * 0.1 / level
        stems[name] = mix.reverb(x, room, float(rng.uniform(*REVERB_SEND[name])))
    stems = mix.master(stems, target_dbfs=float(rng.uniform(-19, -13)))
    write_track(Path(spec.folder), spec.name, quantise(stems, spec.name), spec.fmt)
    instruments = sorted({f"{p.stem}:{p.name}" + (f"({p.program})" if p.program >= 0 else "(formant)")
                          for ps in parts.values() for p in ps if p.notes})
    return {
        "track": spec.name, "subset": spec.subset, "split": spec.split, "style": song.style,
        "tempo": round(song.tempo, 1), "key": song.key_name, "meter": song.meter_name,
        "instruments": instruments, "seed": spec.seed, "seconds": spec.seconds,
        "material": sorted(set(song.sources)),
    }


def quantise(stems: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """int16 stems and their integer sum as the mixture (exact)."""
    quantised = {k: np.round(np.clip(v, -1, 1) * 32767).astype(np.int16) for k, v in stems.items()}
    total = sum(q.astype(np.int32) for q in quantised.values())
    if np.abs(total).max() > 32767:  # cannot happen below the limiter's ceiling; kept as a guard
        raise RuntimeError(f"mixture of {name} clips")
    quantised["mixture"] = total.astype(np.int16)
    return quantised


def make_varied_track(spec: TrackSpec) -> dict:
    """A track of the varied corpus (see :mod:`convsep.synth.studio`); returns its manifest row."""
    from convsep.synth import studio

    maker = studio.TrackMaker(spec.seed, spec.seconds, spec.split, spec.bankset, spec.voices, spec.production)
    stems, record = maker.make()
    write_track(Path(spec.folder), spec.name, quantise(stems, spec.name), spec.fmt)
    song, parts = record["song"], record["parts"]
    instruments = [i for i in studio.instruments_of(parts) if not i.startswith("vocals:")]
    instruments.append(f"vocals:{record['vocals_source']}")
    return {
        "track": spec.name, "subset": spec.subset, "split": spec.split, "style": song.style,
        "tempo": round(song.tempo, 1), "key": song.key_name, "meter": song.meter_name,
        "instruments": sorted(instruments), "seed": spec.seed, "seconds": spec.seconds,
        "material": sorted(set(song.sources)), **studio.describe(record),
    }


def write_track(folder: Path, name: str, audio: dict[str, np.ndarray], fmt: str) -> None:
    """Write int16 (2, frames) arrays as ``folder/name/<stem>.wav`` or ``folder/name.stem.mp4``."""
    if fmt == "wav":
        d = folder / name
        d.mkdir(parents=True)
        for stem, x in audio.items():
            path = d / f"{stem}.wav"
            try:
                sf.write(path, x.T, SAMPLE_RATE, subtype="PCM_16")
            except (sf.SoundFileError, RuntimeError, OSError) as exc:   # a full disk: "System error"
                raise ConvSepError(f"{path}: cannot write ({write_problem(path, exc)})") from None
        return
    import stempeg

    data = np.stack([audio[s].T.astype(np.float32) / 32768 for s in STEM_ORDER])
    folder.mkdir(parents=True, exist_ok=True)
    stempeg.write_stems(str(folder / f"{name}.stem.mp4"), data, sample_rate=SAMPLE_RATE,
                        writer=stempeg.StreamsWriter(codec="aac", bitrate=256000))


def plan_tracks(tracks_train: int, tracks_test: int, seed: int, seconds: float, soundfont: str,
                fmt: str, root: Path, bankset=None, voices: str = "synthetic",
                production: str = "classic") -> list[TrackSpec]:
    """Names, splits and seeds of every track. About 14 % of the train subset (at most 14
    tracks, at least one when there are two or more) forms the validation split."""
    n_valid = 0 if tracks_train < 2 else min(len(MUSDB_VALID_NAMES), max(1, round(0.14 * tracks_train)))
    valid_idx = {int(i) for i in np.linspace(tracks_train - 1, 0, n_valid, endpoint=False).round()} if n_valid else set()
    specs = []
    for subset, count in (("train", tracks_train), ("test", tracks_test)):
        v = 0
        for i in range(count):
            split = subset
            name = f"Convsep Synth - {subset.capitalize()} {i + 1:03d}"
            if subset == "train" and i in valid_idx:
                split, name = "valid", MUSDB_VALID_NAMES[v]
                v += 1
            specs.append(TrackSpec(i, subset, split, name, track_seed(seed, subset, i), seconds,
                                   soundfont, fmt, str(root / subset), bankset, voices, production))
    return specs


def check_arguments(out: Path, tracks_train: int, tracks_test: int, seconds: float, fmt: str,
                    jobs: int, overwrite: bool, voices: str = "all", production: str = "full") -> None:
    """Raise ConvSepError for impossible sizes or an output folder that cannot be used."""
    from convsep.synth.studio import PRODUCTION, VOICES

    if voices not in VOICES:
        raise ConvSepError(f"--voices must be one of {', '.join(VOICES)}, got {voices!r}")
    if production not in PRODUCTION:
        raise ConvSepError(f"--production must be one of {', '.join(PRODUCTION)}, got {production!r}")
    if tracks_train < 1 or tracks_test < 1:
        raise ConvSepError(f"need at least one train and one test track (got {tracks_train} and {tracks_test})")
    if max(tracks_train, tracks_test) > MAX_TRACKS:
        raise ConvSepError(f"at most {MAX_TRACKS} train and {MAX_TRACKS} test tracks per corpus "
                           f"(got {tracks_train} and {tracks_test})")
    if not MIN_SECONDS <= seconds <= 3600:     # shorter songs have no room for their parts
        raise ConvSepError(f"--seconds must be from {MIN_SECONDS:g} to 3600, got {seconds}")
    if fmt not in ("wav", "stems"):
        raise ConvSepError(f"--format must be wav or stems, got {fmt!r}")
    if jobs < 1:
        raise ConvSepError(f"--jobs must be at least 1, got {jobs}")
    if out.exists() and not out.is_dir():
        raise ConvSepError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConvSepError(f"{out} is not empty; pass --overwrite to replace it")
    parent = out.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConvSepError(f"cannot write to {parent}")


def make_corpus(out: str | Path, tracks_train: int = 100, tracks_test: int = 50, seconds: float = 60.0,
                seed: int = 0, soundfont: str | Path | None = None, fmt: str = "wav", jobs: int = 1,
                overwrite: bool = False, progress: bool = False, banks: str = "all", voices: str = "all",
                production: str = "full", warn=None) -> dict:
    """Write the corpus to ``out`` and return the manifest (also written as
    ``out/manifest.json`` and ``out/manifest.csv``) with the wall-clock ``generation_seconds``.

    ``banks`` (all, fluid, or a comma list, see :mod:`convsep.synth.banks`), ``voices`` (all,
    synthetic, mir1k) and ``production`` (none, classic, light, full) choose the material and
    the mix; ``banks="fluid", voices="synthetic", production="classic"`` is the original
    corpus, byte for byte. ``warn`` (a callable taking a line) hears about banks and
    recordings that were asked for but are not installed.

    The corpus is built in a temporary sibling folder and moved to ``out`` at the end, so a
    failure leaves ``out`` as it was. Raises ConvSepError on bad arguments.
    """
    out = Path(out)
    check_arguments(out, tracks_train, tracks_test, seconds, fmt, jobs, overwrite, voices, production)
    sf2 = str(check_soundfont(soundfont or DEFAULT_SOUNDFONT)) if soundfont or banks == "fluid" else DEFAULT_SOUNDFONT
    classic = banks == "fluid" and voices == "synthetic" and production == "classic"
    bankset, extra = None, {}
    if not classic:
        bankset, extra = _varied_setup(banks, soundfont, voices, production, warn)
    remove_stale_folders(out.resolve().parent, out.name + ".tmp")   # of runs killed earlier
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-{os.getpid()}-", dir=out.resolve().parent))
    except OSError as exc:
        raise ConvSepError(f"cannot create a folder next to {out}: {exc.strerror}") from None
    try:
        specs = plan_tracks(tracks_train, tracks_test, seed, seconds, sf2, fmt, tmp, bankset, voices, production)
        start = time.perf_counter()
        rows = list(_run(specs, jobs, progress))
        elapsed = time.perf_counter() - start
        manifest = {
            "generator": "convsep synth", "seed": seed, "seconds": seconds, "sample_rate": SAMPLE_RATE,
            "format": fmt, "subtype": "PCM_16" if fmt == "wav" else "aac-256k",
            "soundfont": Path(sf2).name if classic else None, **extra, "stem_order": list(STEM_ORDER),
            "valid": [r["track"] for r in rows if r["split"] == "valid"],
            "tracks": rows,
        }
        write_manifest(tmp, manifest)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**manifest, "generation_seconds": round(elapsed, 3), "jobs": jobs}


def _varied_setup(banks: str, soundfont, voices: str, production: str, warn) -> tuple:
    """The bank set and the manifest's description of the varied corpus's sources; warns
    about what was asked for and is missing."""
    from convsep.synth import banks as bank_lib
    from convsep.synth import singers, studio

    bankset = bank_lib.select(banks, soundfont)
    missing = list(bankset.missing)
    singers_by_split = {}
    if voices in ("all", "mir1k"):
        for corpus_split in ("train", "test"):
            groups = singers.mir1k_songs(singers.mir1k_split_for(corpus_split))
            singers_by_split[corpus_split] = sorted({singer for (singer, _), _ in groups})
        if not singers_by_split["train"]:
            missing.append("MIR-1K real singing (../shared/data/real/mir1k or $CONVSEP_MIR1K)")
    if voices == "all" and not singers.berklee_vowels():
        missing.append("Berklee voice samples (../shared/data/real/berklee/vocals)")
    if missing and warn is not None:
        warn("not installed, generating without: " + "; ".join(missing))
    extra = {"banks": studio.bank_credits(bankset), "banks_missing": missing, "voices": voices,
             "production": production,
             "mir1k_singers": {"train and valid splits": singers_by_split.get("train", []),
                               "test split": singers_by_split.get("test", [])}}
    return bankset, extra


def _run(specs: list[TrackSpec], jobs: int, progress: bool):
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(specs), unit="track")
    try:
        if jobs == 1:
            for s in specs:
                yield make_track(s)
                bar and bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(jobs, len(specs))) as pool:
                for row in pool.imap(make_track, specs):
                    yield row
                    bar and bar.update()
    finally:
        bar and bar.close()


def write_manifest(root: Path, manifest: dict) -> None:
    """``manifest.json`` (everything) and ``manifest.csv`` (one row per track)."""
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    fields = ["track", "subset", "split", "style", "tempo", "key", "meter", "instruments", "seed", "seconds"]
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in manifest["tracks"]:
            w.writerow({**r, "instruments": ";".join(r["instruments"])})


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing what was there."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=out.name + ".old-", dir=out.resolve().parent))
        os.rename(out, old / "x")
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
