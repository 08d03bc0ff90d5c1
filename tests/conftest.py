"""Shared fixtures: tiny multitrack datasets made of numpy tones and noise.

- ``make_hq_dataset(root, tracks, ...)``: MUSDB18-HQ layout, ``ROOT/<subset>/<track>/
  {mixture,vocals,drums,bass,other}.wav``; returns {(subset, track): float32 (4, 2, samples)}.
- ``make_stems_folder(root, tracks, ...)``: folder-of-stems layout, ``ROOT/<track>/<source>.<ext>``
  with any subset of the sources; returns {track: float32 (4, 2, samples)} (missing sources zero).
- ``hq_dataset`` / ``stems_folder``: ready-made session-wide examples of each (do not modify).
- ``model_file``: a random-weight stereo model file (per test module).
- ``small_disk``: mount(size) -> a fresh tmpfs (root only; skips elsewhere).
- ``fake_mir1k``: MIR-1K's layout with 5 singers, 2 held out (per test module).
- ``put_nan(path, frame, channel)``: a NaN sample written into an audio file.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from convsep.constants import SOURCES

SOURCE_NAMES = ("vocals", "drums", "bass", "other")
BASE_FREQS = {"vocals": 440.0, "drums": 0.0, "bass": 80.0, "other": 660.0}


def synth_sources(seed: int, samples: int, rate: int = 44100, amplitude: float = 0.2) -> np.ndarray:
    """float32 (4, 2, samples): tones for vocals/bass/other and decaying noise bursts for drums."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    out = np.zeros((4, 2, samples), dtype=np.float32)
    for i, name in enumerate(SOURCE_NAMES):
        for c in range(2):
            if name == "drums":
                env = np.exp(-((t * 4.0) % 1.0) * 12.0)
                sig = env * rng.standard_normal(samples)
            else:
                f = BASE_FREQS[name] * (1.0 + 0.05 * seed) * (1.0 + 0.01 * c)
                sig = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                sig += 0.05 * rng.standard_normal(samples)
            out[i, c] = amplitude * sig / max(1e-9, np.max(np.abs(sig)))
    return out


def _write(path: Path, audio: np.ndarray, rate: int) -> None:
    """audio: (channels, samples)."""
    subtype = "FLOAT" if path.suffix == ".wav" else None
    sf.write(str(path), audio.T, rate, subtype=subtype)


@pytest.fixture(scope="session")
def make_hq_dataset():
    def make(
        root: Path,
        tracks: dict[tuple[str, str], float] | None = None,
        rate: int = 44100,
        seed: int = 0,
        mixture: bool = True,
    ) -> dict[tuple[str, str], np.ndarray]:
        """tracks: {(subset, name): seconds}."""
        tracks = tracks or {("train", "Alpha - Tones"): 1.0, ("test", "Gamma - Tones"): 1.0}
        out = {}
        for k, ((subset, name), seconds) in enumerate(sorted(tracks.items())):
            folder = Path(root) / subset / name
            folder.mkdir(parents=True, exist_ok=True)
            audio = synth_sources(seed + k, int(round(seconds * rate)), rate)
            for i, source in enumerate(SOURCE_NAMES):
                _write(folder / f"{source}.wav", audio[i], rate)
            if mixture:
                _write(folder / "mixture.wav", audio.sum(0), rate)
            out[(subset, name)] = audio
        return out

    return make


@pytest.fixture(scope="session")
def make_stems_folder():
    def make(
        root: Path,
        tracks: dict[str, tuple[str, ...]] | None = None,
        seconds: float = 1.0,
        rate: int = 44100,
        ext: str = "wav",
        seed: int = 100,
    ) -> dict[str, np.ndarray]:
        """tracks: {name: sources present}."""
        tracks = tracks or {"song_a": SOURCE_NAMES, "song_b": ("vocals", "bass")}
        out = {}
        for k, (name, present) in enumerate(sorted(tracks.items())):
            folder = Path(root) / name
            folder.mkdir(parents=True, exist_ok=True)
            audio = synth_sources(seed + k, int(round(seconds * rate)), rate)
            for i, source in enumerate(SOURCE_NAMES):
                if source in present:
                    _write(folder / f"{source}.{ext}", audio[i], rate)
                else:
                    audio[i] = 0.0
            out[name] = audio
        return out

    return make


@pytest.fixture(scope="session")
def hq_dataset(tmp_path_factory, make_hq_dataset) -> Path:
    """MUSDB18-HQ layout: two train tracks (one in musdb's validation list) and one test track."""
    root = tmp_path_factory.mktemp("musdb18hq")
    make_hq_dataset(
        root,
        {
            ("train", "Actions - One Minute Smile"): 1.0,
            ("train", "Alpha - Tones"): 1.5,
            ("test", "Gamma - Tones"): 1.0,
        },
    )
    return root


@pytest.fixture(scope="session")
def stems_folder(tmp_path_factory, make_stems_folder) -> Path:
    """Folder-of-stems layout: song_a with all four sources, song_b with vocals and bass only."""
    root = tmp_path_factory.mktemp("stems")
    make_stems_folder(root)
    return root


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained convsep-stereo model file (seed 0) whose card says so."""
    import torch

    from convsep.models import ConvSep, preset
    from convsep.models.modelfile import save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "stereo.pt"
    save_model(path, ConvSep(preset("convsep-stereo")), {"trained_on": "nothing (random weights)"})
    return path


# -- full disk, read-only folders -------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """mount(size) -> a fresh tmpfs of that size; ro(path) remounts it read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(point)
        return point

    def read_only(point: Path) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)

    mount.read_only = read_only
    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture(scope="module")
def fake_mir1k(tmp_path_factory):
    """MIR-1K's layout: 16 kHz mono vocals and accompaniment of 5 singers (2 held out)."""
    root = tmp_path_factory.mktemp("mir1k")
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    for folder in ("vocals", "accompaniment"):
        (root / folder).mkdir()
    for singer in ("abjones", "annar", "leon", "amy", "yifen"):
        for clip in ("1_01", "1_02"):
            f0 = rng.uniform(150, 400)
            voice = 0.3 * np.sin(2 * np.pi * f0 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
            accomp = 0.1 * rng.standard_normal(t.size)
            sf.write(root / "vocals" / f"{singer}_{clip}.wav", voice, 16000)
            sf.write(root / "accompaniment" / f"{singer}_{clip}.wav", accomp, 16000)
    return root


def put_nan(path: Path, frame: int, channel: int) -> None:
    """Rewrite an audio file as float WAV with one NaN sample (a damaged stem)."""
    audio, rate = sf.read(path, dtype="float32")
    audio[frame, channel] = np.nan
    sf.write(path, audio, rate, subtype="FLOAT")


def write_real_song(folder: Path, seed: int, seconds: float = 1.0, rate: int = 48000, bass: bool = True) -> None:
    """Four random stereo stems as FLAC in ``folder`` (the bass silent when ``bass`` is False)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    n = int(seconds * rate)
    for k, source in enumerate(SOURCES):
        audio = 0.1 * rng.standard_normal((n, 2)).astype(np.float32) * (k + 1)
        if source == "bass" and not bass:
            audio[:] = 0
        sf.write(folder / f"{source}.flac", audio, rate)


@pytest.fixture()
def real_root(tmp_path, monkeypatch) -> Path:
    """A small real-songs folder: 4 musdb7train songs (one for validation), 3 album songs
    (two with the bass inside other, one for validation), with its own validation list."""
    from convsep.data.real_songs import validation_songs

    root = tmp_path / "real"
    for i in range(4):
        write_real_song(root / "musdb7train" / f"Artist - Song {i}", i)
    for i, name in enumerate(("1.A", "2.B", "3.C")):
        write_real_song(root / "eif_cc0" / name, 10 + i, bass=name == "3.C")
    (root / "eif_cc0" / "songs.json").write_text(json.dumps({
        "1.A": {"bass": "in other (synth bass)"}, "2.B": {"bass": "in other"}, "3.C": {"bass": "own stem"}}))
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps({"musdb7train": ["Artist - Song 2"], "eif_cc0": ["3.C"]}))
    monkeypatch.setattr("convsep.data.real_songs.VALIDATION_LIST", valid)
    validation_songs.cache_clear()
    yield root
    validation_songs.cache_clear()
