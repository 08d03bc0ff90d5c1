"""Real four-stem songs as a track source: MUSDB18 training previews and a CC0 album.

Layout of ``ROOT`` (e.g. ``../shared/data/real``)::

    ROOT/musdb7train/<artist - title>/{vocals,drums,bass,other}.opus    (+ tracks.json)
    ROOT/eif_cc0/<n.Song>/{vocals,drums,bass,other}.opus                (+ songs.json)

Either folder may be missing. The mixture of a song is the sum of its stems. The songs of
``real_validation.json`` (kept in the package) form the split ``"valid"``; every other song is
``"train"``. In ``eif_cc0`` the bass of some songs is played inside ``other`` (``songs.json``
says ``"in other"``): those tracks carry ``bass_in_other=True`` and are trained and scored with
bass + other as one group.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from convsep.constants import SOURCES
from convsep.errors import ConvSepError

FOLDERS = ("musdb7train", "eif_cc0")
VALIDATION_LIST = Path(__file__).with_name("real_validation.json")
EXTENSIONS = (".opus", ".flac", ".wav", ".ogg", ".mp3")


def is_real_root(root: Path) -> bool:
    """Whether ``root`` holds at least one of the real four-stem folders."""
    return any((root / f).is_dir() for f in FOLDERS)


@lru_cache(maxsize=1)
def validation_songs() -> dict[str, tuple[str, ...]]:
    """{folder: song names} of the fixed real validation set."""
    data = json.loads(VALIDATION_LIST.read_text())
    return {f: tuple(data.get(f, ())) for f in FOLDERS}


def _bass_in_other(folder: Path) -> set[str]:
    """Songs of ``folder`` whose bass sits inside ``other`` (from its songs.json)."""
    path = folder / "songs.json"
    if not path.is_file():
        return set()
    try:
        songs = json.loads(path.read_text())
        return {name for name, info in songs.items() if "in other" in str(info.get("bass", ""))}
    except (ValueError, AttributeError) as exc:
        raise ConvSepError(f"{path} is not a valid song list ({exc})") from None


def _stem_files(song: Path) -> dict[str, str]:
    files = {}
    for source in SOURCES:
        for ext in EXTENSIONS:
            if (song / f"{source}{ext}").is_file():
                files[source] = str(song / f"{source}{ext}")
                break
    return files


def list_real_songs(root: str | Path) -> list[dict]:
    """Every real song under ``root``: [{name, folder, split, bass_in_other, files}].

    ``name`` is the song's folder name (unique across both folders); ``files`` maps each source to its stem file. Refuses a
    song folder that lacks one of the four stems, and a validation song that is missing."""
    root = Path(root).expanduser()
    if not is_real_root(root):
        raise ConvSepError(f"{root} holds no real four-stem songs (expected {' or '.join(f + '/' for f in FOLDERS)})")
    valid = validation_songs()
    songs = []
    for folder_name in FOLDERS:
        folder = root / folder_name
        if not folder.is_dir():
            continue
        grouped = _bass_in_other(folder)
        names = sorted(p.name for p in folder.iterdir() if p.is_dir())
        missing = set(valid[folder_name]) - set(names)
        if missing:
            raise ConvSepError(f"{folder}: the validation songs {sorted(missing)[:3]} are missing; "
                               "the real validation set needs them all")
        for name in names:
            files = _stem_files(folder / name)
            lacking = [s for s in SOURCES if s not in files]
            if lacking:
                raise ConvSepError(f"{folder / name}: no {', '.join(lacking)} stem "
                                   f"(expected {', '.join(s + '.opus' for s in SOURCES)})")
            songs.append({"name": name, "folder": folder_name,
                          "split": "valid" if name in valid[folder_name] else "train",
                          "bass_in_other": name in grouped, "files": files})
    return songs
