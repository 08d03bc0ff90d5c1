"""Real four-stem songs: the track source, the fixed validation list, grouped songs, speed changes."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.constants import SOURCES
from convsep.data import AugmentConfig, ExcerptSampler, list_tracks, open_cache, prepare_cache
from convsep.data.augment import resample_rows
from convsep.data.real_songs import list_real_songs, validation_songs
from convsep.errors import ConvSepError
from tests.conftest import write_real_song

SHARED_REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


def test_real_songs_are_listed_with_their_split_and_grouping(real_root):
    songs = {s["name"]: s for s in list_real_songs(real_root)}
    assert len(songs) == 7
    assert {n for n, s in songs.items() if s["split"] == "valid"} == {"Artist - Song 2", "3.C"}
    assert {n for n, s in songs.items() if s["bass_in_other"]} == {"1.A", "2.B"}
    tracks = list_tracks(real_root)                       # the layout is recognised by its folders
    assert {t.layout for t in tracks} == {"real"} and len(tracks) == 7
    assert [t.name for t in list_tracks(real_root, subset="eif_cc0")] == ["1.A", "2.B", "3.C"]
    assert {t.name for t in list_tracks(real_root, split="valid")} == {"Artist - Song 2", "3.C"}


def test_real_songs_cache_keeps_the_mixture_and_the_groups(real_root, tmp_path):
    cache = prepare_cache(real_root, tmp_path / "cache", progress=False)
    assert len(cache) == 7 and cache.rate == 44100
    grouped = cache.select(split="train", bass_in_other=True)
    assert sorted(cache.tracks[i].name for i in grouped) == ["1.A", "2.B"]
    assert len(cache.select(split="train", bass_in_other=False)) == 3
    reopened = open_cache(tmp_path / "cache")               # the flag survives the index
    assert [t.bass_in_other for t in reopened.tracks] == [t.bass_in_other for t in cache.tracks]
    # the stems are decoded at 48 kHz and resampled: the mixture is the sum of the cached stems
    i = next(i for i, t in enumerate(cache.tracks) if t.name == "Artist - Song 0")
    audio = cache.load(i)
    assert audio.shape[0] == 4 and abs(audio.shape[-1] - 44100) <= 2
    stems = np.stack([sf.read(real_root / "musdb7train" / "Artist - Song 0" / f"{s}.flac")[0].T for s in SOURCES])
    import soxr
    expected = soxr.resample(stems.sum(0).T, 48000, 44100, quality="HQ").T
    n = min(expected.shape[-1], audio.shape[-1])
    assert np.abs(audio.sum(0)[:, 100:n - 100] - expected[:, 100:n - 100]).max() < 1e-3


def test_real_songs_refuse_a_missing_stem_and_a_missing_validation_song(real_root):
    (real_root / "musdb7train" / "Artist - Song 0" / "drums.flac").unlink()
    with pytest.raises(ConvSepError, match="no drums stem"):
        list_real_songs(real_root)
    write_real_song(real_root / "musdb7train" / "Artist - Song 9", 9)
    import shutil
    shutil.rmtree(real_root / "musdb7train" / "Artist - Song 0")
    shutil.rmtree(real_root / "musdb7train" / "Artist - Song 2")
    with pytest.raises(ConvSepError, match="validation songs"):
        list_real_songs(real_root)


def test_the_repository_validation_list():
    valid = validation_songs()
    assert len(valid["musdb7train"]) >= 20 and len(set(valid["musdb7train"])) == len(valid["musdb7train"])
    assert len(valid["eif_cc0"]) >= 1
    if not SHARED_REAL.is_dir():
        pytest.skip("the real songs are not beside the repository")
    songs = list_real_songs(SHARED_REAL)
    names = {s["name"] for s in songs}
    assert set(valid["musdb7train"]) | set(valid["eif_cc0"]) <= names
    train = [s for s in songs if s["split"] == "train"]
    assert not {s["name"] for s in train} & (set(valid["musdb7train"]) | set(valid["eif_cc0"]))
    assert sum(s["folder"] == "musdb7train" for s in train) >= 70


def test_resample_rows_is_exact_at_speed_one_and_moves_pitch():
    rate, f = 44100, 440.0
    t = torch.arange(20000, dtype=torch.float64) / rate
    rows = torch.sin(2 * math.pi * f * t).float()[None, None].expand(2, 2, -1).contiguous()
    same = resample_rows(rows, torch.tensor([1.0, 1.0]), 8000)
    assert torch.equal(same, rows[..., 1:8001])
    fast = resample_rows(rows, torch.tensor([1.12, 1 / 1.12]), 8000)
    for row, speed in zip(fast[:, 0], (1.12, 1 / 1.12)):
        spectrum = torch.fft.rfft(row.double() * torch.hann_window(8000, dtype=torch.float64)).abs()
        peak = float(spectrum.argmax()) * rate / 8000
        assert abs(peak - f * speed) < 6


def test_speed_changes_keep_shapes_and_aligned_items_share_one_speed(real_root, tmp_path):
    cache = prepare_cache(real_root, tmp_path / "cache", progress=False).to_device("cpu", split="train")
    cfg = AugmentConfig.none()
    cfg.speed, cfg.speed_max, cfg.speed_p = True, 1.2, 1.0
    sampler = ExcerptSampler(cache, 4096, 6, cfg, 0)
    x = sampler.sample()
    assert x.shape == (6, 4, 2, 4096) and torch.isfinite(x).all()
    # off (speed_max 1) the sampler reads exactly what it did before
    plain = ExcerptSampler(cache, 4096, 6, AugmentConfig.none(), 0).sample()
    cfg.speed_max = 1.0
    assert torch.equal(ExcerptSampler(cache, 4096, 6, cfg, 0).sample(), plain)
    with pytest.raises(ConvSepError, match="speed_max"):
        AugmentConfig(speed_max=3.0)
