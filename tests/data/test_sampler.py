"""convsep.data.sampler: batched excerpts, cross-song mixing, silent draws, exact resume."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.data import AugmentConfig, ExcerptSampler, prepare_cache
from convsep.data.augment import apply, draw, mixture_db
from convsep.data.cache import DeviceCache
from convsep.errors import ConvSepError

Q = 1.0 / 32767


@pytest.fixture(scope="module")
def prepared(hq_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache") / "hq"
    return prepare_cache(hq_dataset, root, subsets=("train", "test"), is_wav=True, progress=False)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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


def test_a_track_cap_keeps_long_songs_from_outweighing_short_ones():
    lengths = [20100, 200, 300, 200]                   # one long song beside three short ones
    s = ExcerptSampler(_coded_cache(lengths), 100, 4000, AugmentConfig.none(), 0, track_cap=150)
    track, start = _decode(s.sample())
    counts = torch.bincount(track[:, 0], minlength=4).float() / 4000
    expected = torch.tensor([150.0, 101.0, 150.0, 101.0]) / 502   # capped start positions
    assert (counts - expected).abs().max() < 0.03
    long = track[:, 0] == 0                            # the cap picks the song, not the start:
    assert start[long, 0].float().mean().item() > 5000  # its excerpts still span all of it
    with pytest.raises(ConvSepError, match="track cap"):
        ExcerptSampler(_coded_cache(lengths), 100, 4, AugmentConfig.none(), 0, track_cap=0)


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
