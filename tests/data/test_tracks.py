"""convsep.data.tracks: MUSDB18 (HQ and stems), folders of stems, resampling, bad inputs."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from convsep.constants import SOURCES
from convsep.data import list_tracks, load_sources
from convsep.errors import ConvSepError


def test_musdb_hq_read_through_musdb_with_its_split(hq_dataset, monkeypatch):
    import musdb

    calls = []
    real = musdb.DB

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(musdb, "DB", spy)
    valid = list_tracks(hq_dataset, "train", split="valid", is_wav=True)
    train = list_tracks(hq_dataset, "train", split="train", is_wav=True)
    test = list_tracks(hq_dataset, "test", is_wav=True)
    assert calls and all(c["is_wav"] for c in calls)
    assert [t.name for t in valid] == ["Actions - One Minute Smile"]
    assert [t.name for t in train] == ["Alpha - Tones"]
    assert [(t.name, t.split) for t in test] == [("Gamma - Tones", "test")]
    t = train[0]
    assert (t.rate, t.num_samples, t.layout) == (44100, 66150, "musdb-hq")
    audio = load_sources(t)
    assert audio.shape == (4, 2, 66150) and audio.dtype == np.float32
    vocals, _ = sf.read(t.files["vocals"], dtype="float32")
    np.testing.assert_array_equal(audio[0], vocals.T)


def test_hq_layout_with_manifest_uses_manifest_split(tmp_path, make_hq_dataset, monkeypatch):
    import musdb

    make_hq_dataset(tmp_path, {("train", "s0"): 0.5, ("train", "s1"): 0.5, ("test", "s2"): 0.5})
    manifest = {"tracks": [{"track": "s0", "subset": "train", "split": "train"},
                           {"track": "s1", "subset": "train", "split": "valid"},
                           {"track": "s2", "subset": "test", "split": "test"}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(musdb, "DB", lambda *a, **k: pytest.fail("musdb.DB used for a manifest corpus"))
    assert [t.name for t in list_tracks(tmp_path, split="valid", is_wav=True)] == ["s1"]
    assert [t.name for t in list_tracks(tmp_path, split="train")] == ["s0"]  # HQ inferred without is_wav
    assert [t.split for t in list_tracks(tmp_path, ("train", "test"), is_wav=True)] == ["train", "valid", "test"]


def test_stems_folder_missing_sources_are_silent(tmp_path, make_stems_folder):
    written = make_stems_folder(tmp_path, {"a": SOURCES, "b": ("drums",)}, ext="flac")
    (tmp_path / "a" / "mixture.flac").write_bytes((tmp_path / "a" / "bass.flac").read_bytes())
    tracks = list_tracks(tmp_path)
    assert [(t.name, t.subset, t.split, t.layout) for t in tracks] == [
        ("a", "train", "train", "folder"), ("b", "train", "train", "folder")]
    assert sorted(tracks[1].files) == ["drums"]
    b = load_sources(tracks[1])
    assert not b[[0, 2, 3]].any()
    np.testing.assert_allclose(b, written["b"], atol=1e-4)  # flac is 16-bit


def test_load_sources_resamples_and_makes_stereo(tmp_path):
    (tmp_path / "t").mkdir()
    sf.write(tmp_path / "t" / "vocals.wav", np.full(22050, 0.5, np.float32), 22050)  # mono
    (track,) = list_tracks(tmp_path)
    audio = load_sources(track, 44100)
    assert audio.shape == (4, 2, 44100)
    np.testing.assert_allclose(audio[0, :, 1000:-1000], 0.5, atol=1e-3)


def test_stems_mp4_through_musdb(tmp_path):
    stempeg = pytest.importorskip("stempeg")
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not installed")
    (tmp_path / "train").mkdir()
    stems = (np.random.default_rng(0).standard_normal((5, 22050, 2)) * 0.1).astype(np.float32)
    stempeg.write_stems(str(tmp_path / "train" / "Artist - Song.stem.mp4"), stems, sample_rate=44100,
                        writer=stempeg.StreamsWriter(codec="aac", bitrate=128000))
    (track,) = list_tracks(tmp_path)
    assert (track.name, track.layout, track.split) == ("Artist - Song", "musdb", "train")
    assert track.stem_ids == {"vocals": 4, "drums": 1, "bass": 2, "other": 3}
    audio = load_sources(track)
    assert audio.shape[:2] == (4, 2) and abs(audio.shape[2] - 22050) < 2048
    with pytest.raises(ConvSepError, match="--is-wav|no tracks"):
        list_tracks(tmp_path, is_wav=True)


def _folder(tmp_path, name, sources: dict[str, tuple[int, int]]):
    """sources: {file name: (samples, rate)}."""
    (tmp_path / name).mkdir(parents=True)
    for file, (n, rate) in sources.items():
        sf.write(tmp_path / name / file, np.zeros((n, 2), np.float32), rate)


def test_bad_inputs_give_one_line_errors(tmp_path, make_stems_folder):
    def err(*args, **kwargs) -> str:
        with pytest.raises(ConvSepError) as info:
            list_tracks(*args, **kwargs)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "does not exist" in err(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert "expected ROOT/<track>/<source>.wav" in err(tmp_path / "empty")
    (tmp_path / "hq" / "train").mkdir(parents=True)
    assert "MUSDB18-HQ" in err(tmp_path / "hq", is_wav=True)
    assert "stem.mp4" in err(tmp_path / "hq")
    assert "unknown layout" in err(tmp_path / "empty", layout="zip")

    _folder(tmp_path / "partial", "x", {"mixture.wav": (100, 44100)})
    assert "no source file" in err(tmp_path / "partial")

    _folder(tmp_path / "long", "song", {"vocals.wav": (44100, 44100), "bass.wav": (44100 + 4410, 44100)})
    assert "'song'" in err(tmp_path / "long") and "differ in length" in err(tmp_path / "long")

    _folder(tmp_path / "short", "song", {"vocals.wav": (44100, 44100), "bass.wav": (44100 - 4000, 44100)})
    (track,) = list_tracks(tmp_path / "short")
    assert track.num_samples == 44100 and load_sources(track).shape == (4, 2, 44100)

    _folder(tmp_path / "rates", "song", {"vocals.wav": (44100, 44100), "bass.wav": (48000, 48000)})
    assert "different sample rates" in err(tmp_path / "rates")

    make_stems_folder(tmp_path / "ok", {"a": SOURCES}, seconds=0.1)
    assert "split 'valid'" in err(tmp_path / "ok", split="valid")
    assert "no tracks of subset test" in err(tmp_path / "ok", "test")
    (tmp_path / "ok" / "manifest.json").write_text("{not json")
    assert "manifest" in err(tmp_path / "ok")
