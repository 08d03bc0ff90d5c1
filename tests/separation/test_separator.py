"""convsep.separation.separator: the streaming Separator (stems add up, chunking does not
change the output, resampling and channels, two stems), and what it is given (bad chunks,
NaN, int16 stream chunks)."""

import numpy as np
import pytest
import torch

from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.separation.separator import Separator
from convsep.separation.stems import plan_outputs


@pytest.fixture(scope="module")
def stereo_separator():
    torch.manual_seed(1)
    return Separator(ConvSep(preset("convsep-stereo")))


def test_stems_sum_to_the_mixture(stereo_separator):
    x = torch.randn(2, 3 * 44100 + 11) * 0.1
    stems = stereo_separator.separate_tensor(x)
    assert stems.shape == (4, 2, x.shape[1])
    assert (stems.sum(0) - x).abs().max() < 1e-4


@pytest.mark.parametrize("segment_seconds", [0.3, 1.0, 2.5])
def test_chunked_output_equals_whole_signal(stereo_separator, segment_seconds):
    model = stereo_separator.model
    x = torch.randn(2, 6 * 44100 + 321) * 0.1
    whole = Separator(model, segment_seconds=1000).separate_tensor(x)
    chunked = Separator(model, segment_seconds=segment_seconds)
    cuts = [0, 1, 1000, 70000, 70001, 150000, x.shape[1]]
    pieces = (x[:, a:b] for a, b in zip(cuts, cuts[1:]))
    streamed = torch.cat(list(chunked.stream(pieces)), -1)
    assert streamed.shape == whole.shape
    assert (streamed - whole).abs().max() < 1e-4
    assert (chunked.separate_tensor(x) - whole).abs().max() < 1e-4


def test_mono_model_and_every_block_hop_keep_the_sum(stereo_separator):
    torch.manual_seed(2)
    mono = Separator(ConvSep(preset("deepconvsep")))
    x = torch.randn(1, 44100) * 0.1
    assert (mono.separate_tensor(x).sum(0) - x).abs().max() < 1e-4
    for hop in (1, 7, 30):
        sep = Separator(stereo_separator.model, block_hop=hop, segment_seconds=0.5)
        y = torch.randn(2, 30000) * 0.1
        assert (sep.separate_tensor(y) - Separator(stereo_separator.model, block_hop=hop,
                                                   segment_seconds=100).separate_tensor(y)).abs().max() < 1e-4


def test_silence_gives_silent_stems_without_nan(stereo_separator):
    out = stereo_separator(np.zeros((2, 44100), np.float32), 44100)
    for stem in out.values():
        assert torch.isfinite(stem).all() and stem.abs().max() == 0


def test_call_resamples_and_adapts_channels(stereo_separator):
    t = np.arange(48000) / 48000  # band-limited, so the 48k -> 44.1k -> 48k round trip is exact
    mono_48k = (0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    out = stereo_separator(mono_48k, 48000)
    assert set(out) == {"vocals", "drums", "bass", "other"}
    for stem in out.values():
        assert stem.shape == (2, 48000)
    total = sum(out.values())
    assert np.abs(total.numpy() - mono_48k[None])[:, 1000:-1000].max() < 2e-3


def test_two_stems_plan_adds_up(stereo_separator):
    sep = Separator(stereo_separator.model, outputs=plan_outputs(stereo_separator.sources, two_stems="vocals"))
    x = torch.randn(2, 20000) * 0.1
    out = sep.separate_tensor(x)
    assert sep.output_names == ["vocals", "no_vocals"]
    assert (out.sum(0) - x).abs().max() < 1e-4
    with pytest.raises(ConvSepError, match="unknown stem"):
        plan_outputs(stereo_separator.sources, stems=["voice"])


RATE = 44100


@pytest.fixture(scope="module")
def separator():
    torch.manual_seed(0)
    return Separator(ConvSep(preset("convsep-stereo")).eval())


def tone(seconds=0.5, channels=2) -> np.ndarray:
    """float32 (channels, samples) in [-0.5, 0.5]."""
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


def test_separator_call_checks_the_same(separator):
    with pytest.raises(ConvSepError, match="looks transposed"):
        separator(tone().T, RATE)
    pcm = np.round(tone() * 32767).astype(np.int16)
    assert float(max(s.abs().max() for s in separator(pcm, RATE).values())) < 1.0


# -- stream ------------------------------------------------------------------------------
def test_stream_refuses_nan_chunks(separator):
    chunks = [tone(0.2), np.full((2, 4410), np.nan, np.float32), tone(0.2)]
    with pytest.raises(ConvSepError, match="chunk: the audio contains NaN"):
        list(separator.stream(chunks))


def test_stream_scales_int16_chunks_like_float(separator):
    audio = tone(1.0)
    pcm = np.round(audio * 32767).astype(np.int16)
    out_pcm = torch.cat(list(separator.stream([pcm[:, :20000], pcm[:, 20000:]])), -1)
    out_float = torch.cat(list(separator.stream([pcm[:, :20000] / np.float32(32768),
                                                 pcm[:, 20000:] / np.float32(32768)])), -1)
    assert torch.allclose(out_pcm, out_float, atol=1e-6)
    assert float(out_pcm.abs().max()) < 1.0


@pytest.mark.parametrize("chunk,pattern", [
    (np.zeros((1, 100), np.float32), "expected chunks of shape (2, n)"),
    (np.zeros((4410, 2), np.float32), "looks transposed"),
    (np.zeros((2, 100), bool), "bool samples"),
])
def test_stream_refuses_bad_chunks(separator, chunk, pattern):
    with pytest.raises(ConvSepError) as caught:
        list(separator.stream([chunk]))
    assert pattern in str(caught.value)
