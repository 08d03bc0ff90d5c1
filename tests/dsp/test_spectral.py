"""convsep.dsp.spectral: the STFT and its exact inverse, blocks, overlap-add and cross-fades,
against torch.stft and plain fold-based references."""
import math

import pytest
import torch

from convsep.dsp.spectral import STFT, block_weights, overlap_add, to_blocks
from tests.plain_pipeline import plain_envelope, plain_frames_to_signal


@pytest.mark.parametrize("samples", [1, 255, 1024, 44100 + 17, 3 * 44100])
def test_stft_round_trip_is_exact(samples):
    stft = STFT(1024, 256)
    x = torch.randn(2, samples, generator=torch.Generator().manual_seed(samples))
    spec = stft(x)
    assert spec.shape == (2, 513, 1 + samples // 256)
    assert (stft.inverse(spec, samples) - x).abs().max() < 1e-5


def test_stft_matches_torch_centred_stft_with_zero_padding():
    stft = STFT()
    x = torch.randn(2, 10000)
    ours = stft(x)
    ref = torch.stft(x, 1024, 256, window=torch.hann_window(1024), center=True, pad_mode="constant",
                     return_complex=True)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-4


@pytest.mark.parametrize("block_hop", [1, 5, 15, 30])
@pytest.mark.parametrize("crossfade", ["triangular", "equal"])
def test_blocks_then_overlap_add_is_identity(block_hop, crossfade):
    frames = torch.rand(2, 513, 347)
    blocks = to_blocks(frames, 30, block_hop)
    assert blocks.shape[-2:] == (30, 513)
    assert blocks.shape[-3] == 1 + math.ceil((347 - 30) / block_hop)
    back = overlap_add(blocks, 347, block_hop, block_weights(30, crossfade))
    assert (back - frames).abs().max() < 1e-5


def test_triangular_crossfade_weights_fade_between_blocks():
    w = block_weights(30, "triangular")
    assert w[0] == w[-1] == 1 and w.max() == 15 and torch.all(w > 0)


@pytest.mark.parametrize("samples", [1024, 5000, 44100 + 17])
def test_stft_equals_torch_stft(samples):
    stft = STFT()
    x = torch.randn(3, 2, samples)
    ours = stft.forward_padded(x)
    ref = torch.stft(x.reshape(-1, samples), 1024, 256, window=stft.window(), center=False,
                     return_complex=True).reshape(3, 2, 513, -1)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-5 * ref.abs().max()


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (1024, 512), (1000, 300), (64, 16)])
@pytest.mark.parametrize("chunk_frames", [1, 7, 2048])
def test_chunked_overlap_add_istft_equals_fold(n_fft, hop, chunk_frames):
    stft = STFT(n_fft, hop)
    spec = torch.randn(2, 3, n_fft // 2 + 1, 41, dtype=torch.complex64)
    ref = plain_frames_to_signal(stft, spec)
    for layout in (spec, spec.transpose(-1, -2).contiguous().transpose(-1, -2)):
        ours = stft.frames_to_signal(layout, chunk_frames=chunk_frames)
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max() < 1e-5


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (1000, 300), (64, 16)])
@pytest.mark.parametrize("total_frames", [1, 3, 40, 400])
def test_periodic_envelope_equals_frame_by_frame(n_fft, hop, total_frames):
    stft = STFT(n_fft, hop)
    end = (total_frames - 1) * hop + n_fft
    for start, stop in [(0, end), (0, end // 2), (end // 3, end), (7, end - 5), (hop + 1, 2 * n_fft + 3)]:
        stop = min(stop, end)
        if start >= stop:
            continue
        ref = plain_envelope(stft, start, stop, total_frames)
        assert (stft.envelope(start, stop, total_frames) - ref).abs().max() < 1e-6
