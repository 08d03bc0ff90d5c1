"""DJ stems: Native Instruments' Stems format (``<track>.stem.mp4``), which Traktor and Mixxx
read, written from separated stems.

The file is an MP4 with five AAC streams in NI's order: the mixture (what any other player
plays), then drums, bass, other and vocals; and the stems' names and colours (and the
mastering settings a DJ application applies to their sum) as JSON in a ``stem`` box inside
``moov/udta``, as NI's specification says and as stempeg's writer (through MP4Box) writes
it. ffmpeg encodes and muxes the streams; ffmpeg cannot write the ``stem`` box, so it is
added here by rewriting the ``moov`` box, which ffmpeg writes after the audio data (so no
chunk offset moves).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from convsep.errors import ConvSepError
from convsep.io.audio import _ffmpeg_tools
from convsep.io.filesafety import commit_file, temporary_path, write_problem
from convsep.io.mixdown import mix_stems

STEM_SUFFIX = ".stem.mp4"
NI_STEMS = ("drums", "bass", "other", "vocals")          # after the mixture, in NI's order
NI_COLORS = {"drums": "#009E73", "bass": "#D55E00", "other": "#CC79A7", "vocals": "#56B4E9"}
AAC_BITRATE = "256k"


def stem_metadata() -> dict:
    """The ``stem`` box's JSON: the four stems' names and colours, the mastering DSP off."""
    return {
        "version": 1,
        "mastering_dsp": {
            "compressor": {"enabled": False, "input_gain": 0.5, "output_gain": 0.5, "threshold": 0,
                           "dry_wet": 50, "attack": 0.003, "release": 0.3, "ratio": 3, "hp_cutoff": 300},
            "limiter": {"enabled": False, "threshold": 0, "ceiling": -0.35, "release": 0.05},
        },
        "stems": [{"name": name.capitalize(), "color": NI_COLORS[name]} for name in NI_STEMS],
    }


def check_sources(names) -> None:
    """ConvSepError unless ``names`` include the four stems of NI's format."""
    missing = [name for name in NI_STEMS if name not in names]
    if missing:
        raise ConvSepError(f"a .stem.mp4 holds drums, bass, other and vocals; {', '.join(missing)} "
                           "missing (no --stems or --two-stems, and a four-stem model)")


def write_stem_mp4(path: str | os.PathLike, stems: Mapping[str, str | os.PathLike],
                   mixture: str | os.PathLike | None = None, overwrite: bool = False,
                   bitrate: str = AAC_BITRATE) -> Path:
    """Writes ``path`` (``<track>.stem.mp4``) from the stem files {drums, bass, other, vocals:
    path} and the mixture file (default: the stems' sum). Written under a temporary name and
    renamed; without ``overwrite`` an existing file is never replaced."""
    path = Path(path)
    check_sources(stems)
    if path.exists() and not overwrite:
        raise ConvSepError(f"{path} exists; pass --overwrite to replace it")
    ffmpeg, _ = _ffmpeg_tools()
    tmp = temporary_path(path)
    scratch = None
    try:
        if mixture is None:
            scratch = Path(tempfile.mkdtemp(prefix="convsep-mixture-"))
            mixture = scratch / "mixture.wav"
            mix_stems({name: stems[name] for name in NI_STEMS}, {}, mixture, "wav", bits="32f")
        inputs = [mixture, *(stems[name] for name in NI_STEMS)]
        cmd = [ffmpeg, "-v", "error", "-nostdin", "-y"]
        for source in inputs:
            cmd += ["-i", str(source)]
        for index in range(len(inputs)):
            cmd += ["-map", f"{index}:a:0"]
        cmd += ["-c:a", "aac", "-b:a", bitrate, "-ar", "44100", "-disposition:a:0", "default"]
        for index in range(1, len(inputs)):
            cmd += [f"-disposition:a:{index}", "0"]
        cmd += ["-map_metadata", "-1", "-f", "mp4", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            raise ConvSepError(f"{path}: ffmpeg could not write it ({lines[-1][:200] if lines else 'error'})")
        add_udta_box(tmp, b"stem", json.dumps(stem_metadata()).encode())
        commit_file(tmp, path, overwrite)
    except OSError as exc:
        raise ConvSepError(f"{path}: cannot write ({write_problem(tmp, exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return path


# -- MP4 boxes ---------------------------------------------------------------------------------
def _boxes(data: bytes, start: int, end: int):
    """(type, box start, payload start, box end) of the boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ConvSepError("damaged MP4 box structure")
        yield kind, pos, pos + header, pos + size
        pos += size


def _top_level(path: Path):
    """(type, offset, size) of the file's top-level boxes, without reading the media data."""
    found = []
    with open(path, "rb") as handle:
        total = os.fstat(handle.fileno()).st_size
        pos = 0
        while pos + 8 <= total:
            handle.seek(pos)
            head = handle.read(16)
            size, kind = struct.unpack(">I4s", head[:8])
            if size == 1:
                size = struct.unpack(">Q", head[8:16])[0]
            elif size == 0:
                size = total - pos
            if size < 8 or pos + size > total:
                raise ConvSepError(f"{path}: damaged MP4 file")
            found.append((kind, pos, size))
            pos += size
    return found


def add_udta_box(path: str | os.PathLike, kind: bytes, payload: bytes) -> None:
    """Adds a box ``kind`` with ``payload`` to ``moov/udta`` (created if missing), in place.
    The ``moov`` box must come after the media data, as ffmpeg writes it."""
    path = Path(path)
    boxes = _top_level(path)
    moov = [box for box in boxes if box[0] == b"moov"]
    if len(moov) != 1 or any(kind_ == b"mdat" and offset > moov[0][1] for kind_, offset, _ in boxes):
        raise ConvSepError(f"{path}: expected one moov box after the media data")
    _, offset, size = moov[0]
    with open(path, "r+b") as handle:
        handle.seek(offset)
        data = handle.read(size)
        trailing = handle.read()            # boxes after moov (never media data)
        if struct.unpack(">I", data[:4])[0] == 1:
            raise ConvSepError(f"{path}: unexpected 64-bit moov box")
        new_box = struct.pack(">I4s", 8 + len(payload), kind) + payload
        udta = [box for box in _boxes(data, 8, len(data)) if box[0] == b"udta"]
        if udta and struct.unpack(">I", data[udta[0][1]:udta[0][1] + 4])[0] != 1:
            _, start, _, end = udta[0]
            body = (data[8:start] + struct.pack(">I4s", end - start + len(new_box), b"udta")
                    + data[start + 8:end] + new_box + data[end:])
        else:
            body = data[8:] + struct.pack(">I4s", 8 + len(new_box), b"udta") + new_box
        handle.seek(offset)
        handle.write(struct.pack(">I4s", 8 + len(body), b"moov") + body + trailing)
        handle.truncate()


def read_udta_box(path: str | os.PathLike, kind: bytes) -> bytes | None:
    """The payload of ``moov/udta/<kind>``, or None."""
    path = Path(path)
    for kind_, offset, size in _top_level(path):
        if kind_ != b"moov":
            continue
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
        for child, _, payload, end in _boxes(data, 8, len(data)):
            if child == b"udta":
                for inner, _, inner_payload, inner_end in _boxes(data, payload, end):
                    if inner == kind:
                        return data[inner_payload:inner_end]
    return None


def read_stem_mp4(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """float32 (5, channels, samples) at 44.1 kHz (the mixture, then the stems in NI's order)
    and the ``stem`` box's metadata, decoded by ffmpeg."""
    path = Path(path)
    ffmpeg, _ = _ffmpeg_tools()
    streams = []
    for index in range(1 + len(NI_STEMS)):
        proc = subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-i", str(path), "-map", f"0:a:{index}",
                               "-ac", "2", "-ar", "44100", "-f", "f32le", "-"], capture_output=True)
        if proc.returncode != 0:
            raise ConvSepError(f"{path}: not a .stem.mp4 with 5 audio streams (stream {index} does not decode)")
        streams.append(np.frombuffer(proc.stdout, dtype="<f4").reshape(-1, 2).T)
    length = min(s.shape[1] for s in streams)
    raw = read_udta_box(path, b"stem")
    metadata = json.loads(raw.decode()) if raw else {}
    return np.stack([s[:, :length] for s in streams]), metadata
