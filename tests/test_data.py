"""Training data: track listing, the int16 cache, the batched sampler and its augmentations."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.cli import main
from convsep.data import SOURCES, AugmentConfig, ExcerptSampler, list_tracks, load_sources, open_cache, prepare_cache
from convsep.data.augment import (apply, augment, channel_mute, channel_swap, draw, mixture_db, random_gain,
                                  source_dropout)
from convsep.data.cache import DeviceCache
from convsep.errors import ConvSepError

Q = 1.0 / 32767


# ---------------------------------------------------------------------------- track sources


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


# ---------------------------------------------------------------------------- cache


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


# ---------------------------------------------------------------------------- augmentations


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_gain_range_and_mean():
    y = random_gain(torch.ones(4000, 4, 2, 8), _g(), 0.25, 1.25)
    g = y[:, :, 0, 0]
    assert torch.equal(y, g[:, :, None, None].expand_as(y))  # one gain per source
    assert g.min() >= 0.25 and g.max() <= 1.25
    assert abs(g.mean().item() - 0.75) < 0.01
    assert abs(g.std().item() - 1 / 12 ** 0.5) < 0.01


def test_channel_swap_frequency():
    x = torch.stack([torch.ones(8), 2 * torch.ones(8)]).expand(4000, 4, 2, 8)
    y = channel_swap(x, _g(), 0.3)
    swapped = (y[:, :, 0] == 2).all(-1)
    assert torch.equal(y[:, :, 1], torch.where(swapped[..., None], 1.0, 2.0).expand(-1, -1, 8))
    assert abs(swapped.float().mean().item() - 0.3) < 0.015


def test_channel_mute_frequency():
    y = channel_mute(torch.ones(4000, 4, 2, 8), _g(), 0.2)
    zero = (y == 0).all(-1)  # (B, S, C)
    assert not (zero[..., 0] & zero[..., 1]).any()  # never both channels
    muted = zero.any(-1).float()
    assert abs(muted.mean().item() - 0.2) < 0.015
    assert abs(zero[..., 0].float().sum().item() / muted.sum().item() - 0.5) < 0.05
    assert torch.equal(y[~zero], torch.ones(int((~zero).sum()), 8))


def test_source_dropout_frequency_and_mixture():
    x = torch.rand(4000, 4, 2, 8, generator=_g(1)) + 0.1
    y = source_dropout(x, _g(), 0.25)
    dropped = (y == 0).all(-1).all(-1)
    assert abs(dropped.float().mean().item() - 0.25) < 0.015
    assert torch.equal(y[~dropped], x[~dropped])
    mix = y.sum(1)
    expected = (x * (~dropped)[..., None, None]).sum(1)
    torch.testing.assert_close(mix, expected)  # a dropped source is out of the mixture


def test_fused_augment_equals_the_functions_in_order():
    x = torch.randn(64, 4, 2, 32, generator=_g(3))
    cfg = AugmentConfig(channel_mute_p=0.5, source_dropout_p=0.3)
    fused = augment(x, cfg, _g(9))
    g = _g(9)
    steps = source_dropout(channel_mute(channel_swap(random_gain(x, g, 0.25, 1.25), g, 0.5), g, 0.5), g, 0.3)
    torch.testing.assert_close(fused, steps)
    torch.testing.assert_close(mixture_db(fused), 10 * torch.log10(fused.sum(1).square().mean((1, 2))))


def test_sampler_gathers_augmented_channels_in_one_op(prepared):
    s = ExcerptSampler(prepared.to_device("cpu", split=None), 512, 6, AugmentConfig.none(), 0)
    track = torch.randint(0, 3, (6, 4), generator=_g())
    start = torch.randint(0, 40000, (6, 4), generator=_g(1))
    channels, factor = draw((6, 4, 2), AugmentConfig(channel_swap_p=0.5, channel_mute_p=0.5), _g(2), s.device)
    torch.testing.assert_close(s.excerpts(track, start, channels, factor),
                               apply(s.excerpts(track, start), channels, factor))


def test_row_copies_and_one_indexing_op_gather_the_same_batches(prepared):
    cache = prepared.to_device("cpu", split=None)
    rows, index = (ExcerptSampler(cache, 4096, 5, AugmentConfig(), 7, gather=g) for g in ("rows", "index"))
    for _ in range(3):
        assert torch.equal(rows.sample(), index.sample())
    with pytest.raises(ConvSepError, match="gather must be"):
        ExcerptSampler(cache, 4096, 5, gather="fast")


def test_augment_config_json_and_validation():
    cfg = AugmentConfig(cross_song_p=0.2, gain_min=1.0, gain_max=1.0)
    assert not cfg.gain_active
    assert AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConvSepError):
        AugmentConfig(channel_swap_p=1.5)
    with pytest.raises(ConvSepError):
        AugmentConfig(gain_min=2.0, gain_max=1.0)
    with pytest.raises(ConvSepError, match="unknown"):
        AugmentConfig.from_dict({"pitch": 1})


# ---------------------------------------------------------------------------- sampler


def _coded_cache(lengths: list[int]) -> DeviceCache:
    """Channel 0 holds 100 * (track + 1) + source, channel 1 the position within the track."""
    parts = []
    for t, n in enumerate(lengths):
        a = torch.zeros(4, 2, n, dtype=torch.int16)
        a[:, 0] = (100 * (t + 1) + torch.arange(4))[:, None]
        a[:, 1] = torch.arange(n)
        parts.append(a)
    offsets = torch.tensor([0] + lengths[:-1]).cumsum(0)
    return DeviceCache(torch.cat(parts, -1), offsets, torch.tensor(lengths), torch.full((len(lengths),), 32767.0),
                       [f"t{i}" for i in range(len(lengths))], 44100)


def _decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, 2, L) from a coded cache -> track (B, S), start (B, S)."""
    code = x[:, :, 0].round().long()
    pos = x[:, :, 1].round().long()
    assert (code == code[..., :1]).all() and (pos == pos[..., :1] + torch.arange(x.shape[-1])).all()
    assert (code[..., 0] % 100 == torch.arange(4)).all()  # source s comes from source s
    return code[..., 0] // 100 - 1, pos[..., 0]


def test_excerpts_are_uniform_and_aligned_without_cross_song():
    lengths = [1000, 3000, 2000]
    s = ExcerptSampler(_coded_cache(lengths), 100, 3000, AugmentConfig.none(), 0)
    x = s.sample()
    assert x.shape == (3000, 4, 2, 100) and x.dtype == torch.float32
    track, start = _decode(x)
    assert (track == track[:, :1]).all() and (start == start[:, :1]).all()
    counts = torch.bincount(track[:, 0], minlength=3).float() / 3000
    expected = torch.tensor([901.0, 2901.0, 1901.0]) / 5703  # proportional to start positions
    assert (counts - expected).abs().max() < 0.03
    limit = torch.tensor(lengths)[track[:, 0]] - 100
    assert (start[:, 0] >= 0).all() and (start[:, 0] <= limit).all()
    assert abs((start[:, 0].float() / limit).mean().item() - 0.5) < 0.02


def test_cross_song_draws_independent_sources():
    cache = _coded_cache([2000] * 8)
    cfg = AugmentConfig.none()
    cfg.cross_song, cfg.cross_song_p = True, 1.0
    track, start = _decode(ExcerptSampler(cache, 64, 4000, cfg, 0).sample())
    same = (track[:, 1:] == track[:, :1]).float().mean().item()
    assert abs(same - 1 / 8) < 0.02
    assert (start[:, 1:] == start[:, :1]).float().mean().item() < 0.01
    cfg.cross_song_p = 0.4
    track, start = _decode(ExcerptSampler(cache, 64, 4000, cfg, 1).sample())
    aligned = ((track == track[:, :1]).all(1) & (start == start[:, :1]).all(1)).float().mean().item()
    assert abs(aligned - (0.6 + 0.4 / 8 ** 3)) < 0.03


def test_sources_sum_to_the_dataset_mixture(prepared, hq_dataset):
    dc = prepared.to_device("cpu", split=None)
    s = ExcerptSampler(dc, 2048, 8, AugmentConfig.none(), 0)
    track = torch.tensor([[1] * 4, [2] * 4])
    start = torch.tensor([[0] * 4, [5000] * 4])
    x = s.excerpts(track, start)
    for row, (t, st) in enumerate([(1, 0), (2, 5000)]):
        info = prepared.tracks[t]
        mix = sf.read(hq_dataset / info.subset / info.name / "mixture.wav", dtype="float32")[0].T
        assert np.abs(x[row].sum(0).numpy() - mix[:, st : st + 2048]).max() <= 4 * Q


def test_silent_excerpts_are_redrawn():
    loud = (torch.randn(4, 2, 4000, generator=_g()) * 3000).to(torch.int16)
    audio = torch.cat([torch.zeros(4, 2, 4000, dtype=torch.int16), loud], -1)
    dc = DeviceCache(audio, torch.tensor([0, 4000]), torch.tensor([4000, 4000]), torch.ones(2), ["quiet", "loud"], 44100)
    cfg = AugmentConfig.none()
    off = ExcerptSampler(dc, 256, 500, cfg, 0).sample()
    assert 0.4 < (mixture_db(off) < -60).float().mean().item() < 0.6
    cfg.silence_rejection = True
    on = ExcerptSampler(dc, 256, 500, cfg, 0).sample()
    assert (mixture_db(on) >= -60).all()
    silent = DeviceCache(torch.zeros(4, 2, 1000, dtype=torch.int16), torch.tensor([0]), torch.tensor([1000]),
                         torch.ones(1), ["s"], 44100)
    assert ExcerptSampler(silent, 100, 4, cfg, 0).sample().abs().max() == 0  # bounded, gives up


def test_same_seed_same_batches_and_exact_resume(prepared):
    dc = prepared.to_device("cpu", split=None)
    cfg = AugmentConfig(channel_mute_p=0.3, source_dropout_p=0.3, silence_threshold_db=-20.0)
    a, b = ExcerptSampler(dc, 1000, 16, cfg, 7), ExcerptSampler(dc, 1000, 16, cfg, 7)
    for _ in range(3):
        torch.testing.assert_close(a.sample(), b.sample(), rtol=0, atol=0)
    state = a.state_dict()
    expected = [a.sample() for _ in range(3)]
    c = ExcerptSampler(dc, 1000, 16, cfg, torch.Generator().manual_seed(123))
    c.load_state_dict(state)
    for e in expected:
        torch.testing.assert_close(c.sample(), e, rtol=0, atol=0)
    assert not torch.equal(ExcerptSampler(dc, 1000, 16, cfg, 8).sample(), ExcerptSampler(dc, 1000, 16, cfg, 7).sample())


def test_excerpt_longer_than_every_track(prepared):
    with pytest.raises(ConvSepError, match="longer than every track"):
        ExcerptSampler(prepared.to_device("cpu", split="train"), 10 * 44100, 4, AugmentConfig(), 0)


# ---------------------------------------------------------------------------- CLI


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
