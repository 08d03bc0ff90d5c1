"""convsep.data.cache: the int16 cache: round trip, device copies, atomic and idempotent
preparation, damage, a full disk and read-only folders."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.cli import main
from convsep.constants import SOURCES
from convsep.data import open_cache, prepare_cache
from convsep.errors import ConvSepError
from tests.conftest import put_nan


def one_line_error(code, err, pattern):
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err and pattern in lines[0], err


def test_full_disk_during_prepare(tmp_path, capsys, make_hq_dataset, small_disk):
    root = tmp_path / "hq"
    make_hq_dataset(root, {("train", "A"): 4.0, ("train", "B"): 4.0})   # 2.8 MB per track in the cache
    disk = small_disk("1m")
    code = main(["prepare", str(root), str(disk / "cache"), "--is-wav", "-q"])
    one_line_error(code, capsys.readouterr().err, "no space left on the device")
    assert list(disk.iterdir()) == []


def test_prepare_into_read_only_and_missing_folders(tmp_path, capsys, hq_dataset, small_disk):
    disk = small_disk("4m")
    small_disk.read_only(disk)
    code = main(["prepare", str(hq_dataset), str(disk / "cache"), "--is-wav", "-q"])
    one_line_error(code, capsys.readouterr().err, "read-only file system")
    code = main(["prepare", str(hq_dataset), str(disk / "missing" / "cache"), "--is-wav", "-q"])
    one_line_error(code, capsys.readouterr().err, "read-only file system")
    # A missing (writable) parent is created.
    assert main(["prepare", str(hq_dataset), str(tmp_path / "new" / "deep" / "cache"), "--is-wav", "-q"]) == 0


Q = 1.0 / 32767


def _folder(tmp_path, name, sources: dict[str, tuple[int, int]]):
    """sources: {file name: (samples, rate)}."""
    (tmp_path / name).mkdir(parents=True)
    for file, (n, rate) in sources.items():
        sf.write(tmp_path / name / file, np.zeros((n, 2), np.float32), rate)


@pytest.fixture(scope="module")
def prepared(hq_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache") / "hq"
    return prepare_cache(hq_dataset, root, subsets=("train", "test"), is_wav=True, progress=False)


def test_cache_round_trip(prepared, hq_dataset):
    cache = open_cache(prepared.root)
    assert [(t.name, t.subset, t.split) for t in cache.tracks] == [
        ("Actions - One Minute Smile", "train", "valid"), ("Alpha - Tones", "train", "train"),
        ("Gamma - Tones", "test", "test")]
    index = json.loads((cache.root / "index.json").read_text())
    assert index["sources"] == list(SOURCES) and index["version"] == 1 and index["rate"] == 44100
    for i, t in enumerate(cache.tracks):
        original = np.stack([sf.read(hq_dataset / t.subset / t.name / f"{s}.wav", dtype="float32")[0].T
                             for s in SOURCES])
        a = cache.array(i)
        assert isinstance(a, np.memmap) and a.dtype == np.int16 and a.shape == original.shape
        assert np.abs(cache.load(i) - original).max() <= Q
        mixture = sf.read(hq_dataset / t.subset / t.name / "mixture.wav", dtype="float32")[0].T
        assert np.abs(cache.load(i).sum(0) - mixture).max() <= 4 * Q


def test_to_device_concatenates_with_offsets(prepared):
    dc = prepared.to_device("cpu", split=None)
    lengths = [t.num_samples for t in prepared.tracks]
    assert dc.audio.dtype == torch.int16 and dc.audio.shape == (4, 2, sum(lengths))
    assert dc.offsets.tolist() == [0, lengths[0], lengths[0] + lengths[1]]
    assert dc.lengths.tolist() == lengths and dc.names == [t.name for t in prepared.tracks]
    for i in range(len(prepared)):
        np.testing.assert_array_equal(dc.track(i).numpy(), prepared.load(i))
    train = prepared.to_device("cpu", split="train")
    assert train.names == ["Alpha - Tones"] and train.offsets.tolist() == [0]
    with pytest.raises(ConvSepError, match="no tracks in split 'nope'"):
        prepared.to_device("cpu", split="nope")


def test_loud_tracks_get_a_scale(tmp_path):
    (tmp_path / "data" / "loud").mkdir(parents=True)
    x = np.sin(np.linspace(0, 100, 4410, dtype=np.float32))[:, None].repeat(2, 1) * 3.0
    sf.write(tmp_path / "data" / "loud" / "drums.wav", x, 44100, subtype="FLOAT")
    cache = prepare_cache(tmp_path / "data", tmp_path / "cache", progress=False)
    assert cache.tracks[0].scale == pytest.approx(3.0, rel=1e-3)
    assert np.abs(cache.load(0)[1] - x.T).max() <= 3.0 * Q


def test_prepare_is_atomic_and_idempotent(tmp_path, make_stems_folder):
    make_stems_folder(tmp_path / "data", {"a": SOURCES, "b": ("bass",)}, seconds=0.2)
    target = tmp_path / "cache"
    first = prepare_cache(tmp_path / "data", target, progress=False)
    mtime = (target / "index.json").stat().st_mtime_ns
    prepare_cache(tmp_path / "data", target, progress=False)
    assert (target / "index.json").stat().st_mtime_ns == mtime  # no-op on a complete cache
    with pytest.raises(ConvSepError, match="--overwrite"):
        prepare_cache(tmp_path / "data", target, subsets=("train", "test"), progress=False)
    again = prepare_cache(tmp_path / "data", target, jobs=2, overwrite=True, progress=False)
    for i in range(len(first)):
        np.testing.assert_array_equal(again.array(i), first.array(i))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "data"]  # no temporary leftovers

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConvSepError, match="not a complete cache"):
        prepare_cache(tmp_path / "data", tmp_path / "other", progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    _folder(tmp_path / "bad", "x", {"mixture.wav": (100, 44100)})
    with pytest.raises(ConvSepError):
        prepare_cache(tmp_path / "bad", tmp_path / "c2", progress=False)
    assert not (tmp_path / "c2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_damaged_cache_is_refused(tmp_path, make_stems_folder):
    make_stems_folder(tmp_path / "data", {"a": SOURCES}, seconds=0.2)
    c = tmp_path / "c"
    prepare_cache(tmp_path / "data", c, progress=False)
    with pytest.raises(ConvSepError, match="not a prepared cache"):
        open_cache(tmp_path / "data")
    with pytest.raises(ConvSepError, match="does not exist"):
        open_cache(tmp_path / "missing")
    index = (c / "index.json").read_text()
    (c / "index.json").write_text("{")
    with pytest.raises(ConvSepError, match="damaged"):
        open_cache(c)
    (c / "index.json").write_text(index.replace('"version": 1', '"version": 99'))
    with pytest.raises(ConvSepError, match="damaged.*version"):
        open_cache(c)
    (c / "index.json").write_text(index)
    npy = c / "tracks" / "00000.npy"
    npy.write_bytes(npy.read_bytes()[:-100])
    with pytest.raises(ConvSepError, match="damaged"):
        open_cache(c)
    npy.unlink()
    with pytest.raises(ConvSepError, match="damaged"):
        open_cache(c)


def test_cli_prepare_end_to_end(hq_dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["prepare", str(hq_dataset), str(cache), "--is-wav", "--subsets", "train,test", "-q"]) == 0
    assert "3 tracks" in capsys.readouterr().out
    c = open_cache(cache)
    assert [t.split for t in c.tracks] == ["valid", "train", "test"]
    assert main(["prepare", str(hq_dataset), str(cache), "--is-wav", "--subsets", "train,test", "-q"]) == 0
    assert main(["prepare", str(tmp_path / "nope"), str(tmp_path / "c2"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "does not exist" in err and "Traceback" not in err
    assert main(["prepare", str(hq_dataset), str(tmp_path / "c3"), "--subsets", "dev", "-q"]) == 2
    assert main(["prepare", str(hq_dataset), str(tmp_path / "c4"), "--layout", "folder", "-q"]) == 2
    assert "no source file" in capsys.readouterr().err
    assert not (tmp_path / "c2").exists() and not (tmp_path / "c4").exists()


def test_prepare_refuses_a_nan_in_a_stem_naming_the_file(tmp_path, capsys, make_hq_dataset):
    root = tmp_path / "hq"
    make_hq_dataset(root, {("train", "A"): 1.0})
    bad = root / "train" / "A" / "bass.wav"
    put_nan(bad, 100, 0)
    code = main(["prepare", str(root), str(tmp_path / "cache"), "--is-wav", "-q"])
    one_line_error(code, capsys.readouterr().err, f"{bad}: contains NaN or infinite samples")
    assert not (tmp_path / "cache").exists()
