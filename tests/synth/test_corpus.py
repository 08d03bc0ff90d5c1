"""The synthetic corpus: layouts musdb can load, exact mixtures, determinism, bad input."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.synth import make_corpus


# -- bounds, devices, the error path --------------------------------------------------------
@pytest.mark.parametrize("args,pattern", [
    (["--tracks-train", "1000000000"], "at most 100000"),
    (["--tracks-test", "1000000000"], "at most 100000"),
    (["--seconds", "1e9"], "--seconds must be from 1 to 3600"),
])
def test_synth_sizes_are_bounded(tmp_path, capsys, args, pattern):
    code = main(["synth", str(tmp_path / "corpus"), *args, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "corpus").exists()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_synth_cleans_its_folder_on_sigterm_and_the_next_run_removes_stale_ones(tmp_path, capsys, monkeypatch):
    """A real SIGTERM to this process while `convsep synth` works in its temporary folder (sent
    by the process to itself once the tracks are planned there): the folder is removed, and a
    stale one of a dead pid too."""
    import convsep.synth.corpus as corpus

    dead = dead_pid()
    stale = tmp_path / f"corpus.tmp-{dead}-zz"
    (stale / "train").mkdir(parents=True)
    out = tmp_path / "corpus"
    plan = corpus.plan_tracks

    def plan_then_terminate(*args, **kwargs):
        specs = plan(*args, **kwargs)
        assert list(tmp_path.glob(f"corpus.tmp-{os.getpid()}-*"))          # the work folder exists
        os.kill(os.getpid(), signal.SIGTERM)
        return specs

    monkeypatch.setattr(corpus, "plan_tracks", plan_then_terminate)
    # A late signal (after the command ended) must not stop the test run: ignore it outside.
    previous = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        code = main(["synth", str(out), "--tracks-train", "20", "--tracks-test", "2", "--seconds", "4", "--quiet"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert code == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# Every bank but MuseScore General, whose decoding takes seconds per process.
FAST_BANKS = "fluid,timgm6mb,csound,avl,hydrogen"


TINY = {"tracks_train": 3, "tracks_test": 2, "seconds": 3.0, "banks": FAST_BANKS}


SOURCES = ("vocals", "drums", "bass", "other")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    make_corpus(out, seed=7, **TINY)
    return out


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_loads_with_musdb(corpus: Path) -> None:
    musdb = pytest.importorskip("musdb")
    db = musdb.DB(root=str(corpus), is_wav=True)
    assert len(db) == 5
    assert len(musdb.DB(root=str(corpus), is_wav=True, subsets="test")) == 2
    track = db.tracks[0]
    assert track.rate == 44100
    assert track.audio.shape == (int(3.0 * 44100), 2)
    for name in SOURCES:
        assert track.sources[name].audio.shape == track.audio.shape
    valid = musdb.DB(root=str(corpus), is_wav=True, subsets="train", split="valid")
    train = musdb.DB(root=str(corpus), is_wav=True, subsets="train", split="train")
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert [t.name for t in valid] == sorted(manifest["valid"]) and len(valid) == 1
    assert len(train) == 2
    assert {r["split"] for r in manifest["tracks"]} == {"train", "valid", "test"}
    assert (corpus / "manifest.csv").read_text().startswith("track,subset,split,style,tempo,key,meter")


def test_mixture_is_sum_of_stems(corpus: Path) -> None:
    for folder in sorted(corpus.glob("*/*/")):
        mix, rate = sf.read(folder / "mixture.wav", dtype="int16")
        assert rate == 44100 and mix.shape[1] == 2
        total = sum(sf.read(folder / f"{s}.wav", dtype="int16")[0].astype(np.int32) for s in SOURCES)
        assert np.array_equal(total, mix.astype(np.int32))
        stems = {s: sf.read(folder / f"{s}.wav")[0] for s in SOURCES}
        assert np.abs(sum(stems.values()) - sf.read(folder / "mixture.wav")[0]).max() < 1e-6
        assert np.abs(mix).max() < 32767
        assert all(np.any(x) for x in stems.values()), folder


def test_same_seed_same_bytes_serial_and_parallel(corpus: Path, tmp_path: Path) -> None:
    make_corpus(tmp_path / "again", seed=7, jobs=2, **TINY)
    assert digest(tmp_path / "again") == digest(corpus)
    make_corpus(tmp_path / "other", seed=8, **TINY)
    assert digest(tmp_path / "other") != digest(corpus)


def test_stems_format_round_trip(tmp_path: Path) -> None:
    stempeg = pytest.importorskip("stempeg")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg missing")
    out = tmp_path / "stems"
    make_corpus(out, tracks_train=1, tracks_test=1, seconds=2.0, seed=3, fmt="stems")
    files = sorted(out.rglob("*.stem.mp4"))
    assert len(files) == 2
    audio, rate = stempeg.read_stems(str(files[0]))
    assert audio.shape[0] == 5 and audio.shape[2] == 2 and rate == 44100
    assert abs(audio.shape[1] - 2 * 44100) < 4096
    n = 2 * 44100 - 4096
    error = audio[0, :n] - audio[1:, :n].sum(axis=0)
    assert 10 * np.log10((audio[0, :n] ** 2).sum() / (error**2).sum()) > 15  # lossy AAC
    musdb = pytest.importorskip("musdb")
    assert len(musdb.DB(root=str(out), is_wav=False)) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"tracks_train": 0}, "at least one"),
    ({"tracks_test": -1}, "at least one"),
    ({"seconds": -2.0}, "--seconds"),
    ({"seconds": 0.0}, "--seconds"),
    ({"seconds": 0.001}, "--seconds must be from 1 to 3600"),      # crashed the arranger (exit 1)
    ({"seconds": float("nan")}, "--seconds"),
    ({"jobs": 0}, "--jobs"),
    ({"fmt": "flac"}, "--format"),
    ({"soundfont": "/nonexistent/font.sf2"}, "SoundFont not found"),
])
def test_bad_input_raises_and_leaves_nothing(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {**TINY, **kwargs}
    with pytest.raises(ConvSepError, match=message):
        make_corpus(tmp_path / "out", **args)
    assert list(tmp_path.iterdir()) == []


def test_non_empty_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ConvSepError, match="--overwrite"):
        make_corpus(out, **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    make_corpus(out, overwrite=True, tracks_train=1, tracks_test=1, seconds=1.0, banks=FAST_BANKS)
    assert not (out / "keep.txt").exists() and (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_unwritable_parent(tmp_path: Path) -> None:
    with pytest.raises(ConvSepError, match="cannot write"):
        make_corpus(tmp_path / "missing" / "deeper" / "out", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import convsep.synth.corpus as corpus_module

    def broken(spec):
        raise RuntimeError("boom")

    monkeypatch.setattr(corpus_module, "make_track", broken)
    with pytest.raises(RuntimeError):
        make_corpus(tmp_path / "out", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_cli_end_to_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--preset", "tiny", "--seconds", "1", "--quiet"]) == 0
    assert len(json.loads((out / "manifest.json").read_text())["tracks"]) == 5
    capsys.readouterr()  # a warning naming banks that are not installed, if any
    assert main(["synth", str(out), "--preset", "tiny", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert main(["synth", str(tmp_path / "x"), "--tracks-train", "0", "--quiet"]) == 2
    assert main(["synth", str(tmp_path / "y"), "--seconds", "-1", "--quiet"]) == 2
    assert main(["synth", str(tmp_path / "z"), "--soundfont", str(tmp_path / "no.sf2"), "--quiet"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli"]


def test_full_disk_is_a_one_line_error(small_disk, capsys) -> None:
    """libsndfile says only "System error" on a full disk: the free space tells (exit 2)."""
    from convsep.cli import main

    disk = small_disk("1m")
    code = main(["synth", str(disk / "corpus"), "--tracks-train", "1", "--tracks-test", "1", "--seconds", "8",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no space left on the device" in err and len(err.strip().splitlines()) == 1, err
    assert list(disk.iterdir()) == []
