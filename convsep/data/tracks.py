"""Where training tracks come from: MUSDB18 (STEMS or HQ), MUSDB18-HQ-like folders, folders of stems.

Layouts (``layout=``):

- ``"musdb"``: ``ROOT/<subset>/<track>.stem.mp4`` (MUSDB18, read with stempeg + ffmpeg) or, with
  ``is_wav=True``, ``ROOT/<subset>/<track>/{mixture,vocals,drums,bass,other}.wav`` (MUSDB18-HQ).
  Tracks are listed by ``musdb.DB`` with musdb's official train/valid split. A folder in the
  MUSDB18-HQ layout with a ``ROOT/manifest.json`` (as the synthetic corpus writes) is read
  without musdb; wherever a manifest lists a track, its split wins.
- ``"folder"``: ``ROOT/<track>/<source>.wav|flac|ogg|aiff|mp3`` with any subset of the four
  sources (a missing source is silence; a ``mixture`` file is ignored). All tracks are in
  subset ``"train"``, split ``"train"``, unless a ``ROOT/manifest.json`` says otherwise.
- ``"real"``: real four-stem songs, ``ROOT/{musdb7train,eif_cc0}/<song>/<source>.opus``, split
  by the fixed validation list (see ``convsep.data.real_songs``).
- ``"auto"``: ``"real"`` when ``ROOT/musdb7train`` or ``ROOT/eif_cc0`` exists, ``"musdb"`` when
  ``ROOT/train`` or ``ROOT/test`` exists, else ``"folder"``.

Stems of one track must share their rate (a track mixing rates is refused) and their length
up to ``LENGTH_TOLERANCE_S`` (shorter stems are padded with silence).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from convsep.constants import SOURCES
from convsep.data.real_songs import FOLDERS as REAL_FOLDERS
from convsep.data.real_songs import is_real_root, list_real_songs
from convsep.errors import ConvSepError

LAYOUTS = ("auto", "musdb", "folder", "real")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".aiff", ".aif", ".mp3")
LENGTH_TOLERANCE_S = 0.1
MANIFEST = "manifest.json"
SPLITS = ("train", "valid")


@dataclass
class Track:
    """One multitrack song and how to read each of its sources.

    ``files`` maps a source name to its file; a source absent from it is silence. For MUSDB18
    STEMS all sources live in one file and ``stem_ids`` gives each one's stream index.
    """

    name: str
    subset: str
    split: str
    rate: int
    num_samples: int
    files: dict[str, str]
    stem_ids: dict[str, int] = field(default_factory=dict)
    layout: str = "folder"
    vocals_bandwidth_hz: float | None = None   # from a manifest: the vocals stop here (None: full band)
    bass_in_other: bool = False                # the bass plays inside "other": score them as one group

    @property
    def duration(self) -> float:
        return self.num_samples / self.rate


def _subsets(subset: str | Sequence[str]) -> list[str]:
    return [subset] if isinstance(subset, str) else list(subset)


def _read_manifest(root: Path) -> dict[str, dict]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())["tracks"]
        return {str(e["track"]): e for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConvSepError(
            f"{path} is not a valid manifest ({exc}); fix or remove it"
        ) from None


def _default_split(subset: str) -> str:
    return "train" if subset == "train" else subset


def _audio_files(folder: Path) -> dict[str, Path]:
    """Source (or "mixture") name -> file in ``folder``; refuses two files for one source."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        key = path.stem.lower()
        if key not in SOURCES and key != "mixture":
            continue
        if key in found:
            raise ConvSepError(
                f"track folder {folder} has two files for '{key}' ({found[key].name}, {path.name}); keep one"
            )
        found[key] = path
    return found


def _probe(name: str, files: dict[str, str]) -> tuple[int, int]:
    """(rate, num_samples) of a track whose sources are separate files, checked for consistency."""
    infos = {}
    for source, path in files.items():
        try:
            infos[source] = sf.info(path)
        except RuntimeError as exc:
            raise ConvSepError(f"cannot read {path}: {exc}; check that it is an audio file") from None
    rates = sorted({int(i.samplerate) for i in infos.values()})
    if len(rates) > 1:
        raise ConvSepError(
            f"track '{name}': stems have different sample rates ({', '.join(map(str, rates))} Hz); "
            "convert them to one rate"
        )
    lengths = [int(i.frames) for i in infos.values()]
    check_lengths(name, lengths, rates[0])
    return rates[0], max(lengths)


def check_lengths(name: str, lengths: Iterable[int], rate: int) -> None:
    lengths = list(lengths)
    if max(lengths) - min(lengths) >= LENGTH_TOLERANCE_S * rate:
        raise ConvSepError(
            f"track '{name}': stems differ in length by {(max(lengths) - min(lengths)) / rate:.2f} s "
            f"(more than {LENGTH_TOLERANCE_S} s); trim or pad them to one length"
        )


def _track_from_folder(
    folder: Path, subset: str, split: str, layout: str
) -> Track:
    found = _audio_files(folder)
    files = {s: str(found[s]) for s in SOURCES if s in found}
    if not files:
        raise ConvSepError(
            f"track folder {folder} has no source file ({', '.join(SOURCES)}, "
            f"as {'/'.join(AUDIO_EXTENSIONS)}); add its stems or remove the folder"
        )
    rate, num_samples = _probe(folder.name, files)
    return Track(folder.name, subset, split, rate, num_samples, files, layout=layout)


def _track_folders(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_folder(root: Path, subsets: list[str]) -> list[Track]:
    manifest = _read_manifest(root)
    tracks = []
    for folder in _track_folders(root):
        entry = manifest.get(folder.name, {})
        subset = str(entry.get("subset", "train"))
        if subset not in subsets:
            continue
        split = str(entry.get("split", _default_split(subset)))
        tracks.append(_with_bandwidth(_track_from_folder(folder, subset, split, "folder"), entry))
    return tracks


def _list_real(root: Path, subsets: list[str]) -> list[Track]:
    """The real four-stem songs of the folders named in ``subsets`` (all of them when it names
    none), both splits: the validation list decides."""
    folders = [s for s in subsets if s in REAL_FOLDERS] or list(REAL_FOLDERS)
    tracks = []
    for song in list_real_songs(root):
        if song["folder"] not in folders:
            continue
        rate, num_samples = _probe(song["name"], song["files"])
        tracks.append(Track(song["name"], song["folder"], song["split"], rate, num_samples, song["files"],
                            layout="real", bass_in_other=song["bass_in_other"]))
    return tracks


def _list_hq_manifest(root: Path, subsets: list[str], manifest: dict[str, dict]) -> list[Track]:
    tracks = []
    for subset in subsets:
        if not (root / subset).is_dir():
            continue
        for folder in _track_folders(root / subset):
            entry = manifest.get(folder.name, {})
            split = str(entry.get("split", _default_split(subset)))
            tracks.append(_with_bandwidth(_track_from_folder(folder, subset, split, "musdb-hq"), entry))
    return tracks


def _with_bandwidth(track: Track, entry: dict) -> Track:
    """Sets the vocals' band limit a manifest entry gives (``vocals_bandwidth_hz``)."""
    value = entry.get("vocals_bandwidth_hz")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < track.rate / 2:
        track.vocals_bandwidth_hz = float(value)
    return track


def _import_musdb():
    try:
        import musdb
    except ImportError:
        raise ConvSepError(
            "reading MUSDB18 needs the musdb package; install it with: pip install 'convsep[musdb]'"
        ) from None
    return musdb


def _list_musdb(root: Path, subsets: list[str], is_wav: bool, manifest: dict[str, dict]) -> list[Track]:
    """Tracks listed by ``musdb.DB``; the split comes from musdb's validation track list
    unless a manifest names it."""
    musdb = _import_musdb()
    tracks = []
    for subset in subsets:
        if not (root / subset).is_dir():
            continue
        db = musdb.DB(root=str(root), is_wav=is_wav, subsets=[subset])
        valid = set(db.setup["validation_tracks"])
        for mt in db.tracks:
            split = ("valid" if mt.name in valid else "train") if subset == "train" else subset
            split = str(manifest.get(mt.name, {}).get("split", split))
            if is_wav:
                files = {s: mt.sources[s].path for s in SOURCES if s in mt.sources}
                if not files:
                    raise ConvSepError(
                        f"track folder {root / subset / mt.name} has no source file "
                        f"({', '.join(s + '.wav' for s in SOURCES)}); add its stems or remove the folder"
                    )
                rate, num_samples = _probe(mt.name, files)
                tracks.append(Track(mt.name, subset, split, rate, num_samples, files, layout="musdb-hq"))
            else:
                if mt.rate is None or mt.samples is None:
                    raise ConvSepError(f"cannot read {mt.path}; check the file and that ffmpeg is installed")
                ids = {s: int(mt.sources[s].stem_id) for s in SOURCES}
                tracks.append(
                    Track(mt.name, subset, split, int(mt.rate), int(mt.samples), {s: mt.path for s in SOURCES},
                          stem_ids=ids, layout="musdb")
                )
    return tracks


def _has_stems(root: Path, subsets: list[str]) -> bool:
    return any((root / s).is_dir() and any((root / s).glob("*.stem.mp4")) for s in subsets)


def _has_track_folders(root: Path, subsets: list[str]) -> bool:
    return any((root / s).is_dir() and _track_folders(root / s) for s in subsets)


def list_tracks(
    root: str | os.PathLike,
    subset: str | Sequence[str] = "train",
    split: str | None = None,
    layout: str = "auto",
    is_wav: bool = False,
) -> list[Track]:
    """List the tracks of ``subset`` (``"train"``, ``"test"`` or several) under ``root``.

    ``split`` keeps only the tracks of that split (``"train"`` or ``"valid"``; test tracks
    have split ``"test"``); ``None`` keeps all. Raises ConvSepError when nothing usable is found.
    """
    root = Path(root).expanduser()
    subsets = _subsets(subset)
    if not root.is_dir():
        raise ConvSepError(f"dataset folder {root} does not exist; check the path")
    if layout not in LAYOUTS:
        raise ConvSepError(f"unknown layout '{layout}'; use one of {', '.join(LAYOUTS)}")
    if split is not None and split not in SPLITS + ("test",):
        raise ConvSepError(f"unknown split '{split}'; use train, valid or none")
    if layout == "auto":
        if is_real_root(root):
            layout = "real"
        else:
            layout = "musdb" if any((root / s).is_dir() for s in ("train", "test")) else "folder"

    if layout == "real":
        tracks = _list_real(root, subsets)
        expected = "ROOT/{musdb7train,eif_cc0}/<song>/<source>.opus"
    elif layout == "folder":
        tracks = _list_folder(root, subsets)
        expected = "ROOT/<track>/<source>.wav (sources: " + ", ".join(SOURCES) + ")"
    else:
        manifest = _read_manifest(root)
        if not is_wav and not _has_stems(root, subsets) and _has_track_folders(root, subsets):
            is_wav = True  # MUSDB18-HQ folders given without is_wav: nothing else they can be
        if is_wav and manifest:
            tracks = _list_hq_manifest(root, subsets, manifest)
        else:
            tracks = _list_musdb(root, subsets, is_wav, manifest)
        expected = (
            "ROOT/<subset>/<track>/{mixture,vocals,drums,bass,other}.wav (MUSDB18-HQ)"
            if is_wav else "ROOT/<subset>/<track>.stem.mp4 (MUSDB18)"
        )
    if not tracks:
        raise ConvSepError(
            f"no tracks of subset {'/'.join(subsets)} found in {root}; expected {expected}"
        )
    if split is not None:
        tracks = [t for t in tracks if t.split == split]
        if not tracks:
            raise ConvSepError(
                f"split '{split}' of subset {'/'.join(subsets)} in {root} is empty; "
                "choose another split or add tracks to it"
            )
    return tracks


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """(channels, samples) -> (2, samples): mono is duplicated, channels past two are dropped."""
    if audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    return audio[:2]


def _decode(track: Track) -> tuple[dict[str, np.ndarray], int]:
    """Source -> float32 (2, samples) at the file rate, for the sources the track has."""
    if track.stem_ids:
        import stempeg

        path = next(iter(track.files.values()))
        try:
            stems, rate = stempeg.read_stems(path, dtype=np.float32, always_3d=True)
        except Exception as exc:  # stempeg raises bare Exceptions on ffmpeg failures
            raise ConvSepError(f"cannot decode {path}: {exc}; check the file and ffmpeg") from None
        for s, i in track.stem_ids.items():
            _check_finite(stems[i], f"{path} (stem {s})")
        return {s: to_stereo(stems[i].T) for s, i in track.stem_ids.items()}, int(rate)
    out = {}
    rate = track.rate
    for source, path in track.files.items():
        try:
            data, rate = sf.read(path, dtype="float32", always_2d=True)
        except RuntimeError as exc:
            raise ConvSepError(f"cannot read {path}: {exc}; check that it is an audio file") from None
        _check_finite(data, path)
        out[source] = to_stereo(np.ascontiguousarray(data.T))
    return out, int(rate)


def _check_finite(data: np.ndarray, where: str) -> None:
    """A NaN or Inf sample would become an arbitrary int16 in the cache (and NaN losses)."""
    if not np.isfinite(data).all():
        raise ConvSepError(f"{where}: contains NaN or infinite samples; repair or remove this file")


def load_sources(track: Track, rate: int | None = None) -> np.ndarray:
    """Decode a track: float32 (4, 2, samples) in ``SOURCES`` order, missing sources silent.

    Resampled with soxr to ``rate`` when given and different from the track's rate.
    """
    stems, file_rate = _decode(track)
    check_lengths(track.name, [a.shape[1] for a in stems.values()], file_rate)
    length = max(a.shape[1] for a in stems.values())
    out = np.zeros((len(SOURCES), 2, length), dtype=np.float32)
    for i, source in enumerate(SOURCES):
        if source in stems:
            a = stems[source]
            out[i, :, : a.shape[1]] = a
    if rate is not None and rate != file_rate:
        import soxr

        flat = out.reshape(-1, length).T  # (samples, 8)
        out = np.ascontiguousarray(soxr.resample(flat, file_rate, rate, quality="HQ").T, dtype=np.float32)
        out = out.reshape(len(SOURCES), 2, -1)
    return out
