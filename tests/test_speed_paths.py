"""The optimised separation paths equal plain reference implementations (to 1e-5).

Each reference below is the straightforward version of a step: torch.stft, the model on
explicit blocks followed by a fold-based overlap-add, soft masks then grouping then the
product with the mixture, and an irfft + F.fold ISTFT with a frame-by-frame envelope.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from convsep.masks import masked_mixtures, soft_masks
from convsep.models import PRESETS, ConvSep, preset
from convsep.separate import Separator, plan_outputs
from convsep.spectral import STFT, block_weights, overlap_add, to_blocks


def _randomised(name: str, seed: int = 0, **overrides) -> ConvSep:
    torch.manual_seed(seed)
    model = ConvSep(preset(name, **overrides)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    return model


def plain_estimate(model: ConvSep, magnitude: torch.Tensor, block_hop: int,
                   weights: torch.Tensor) -> torch.Tensor:
    """|STFT| (C, bins, frames) -> (S, C, bins, frames): blocks, model, overlap-add."""
    frames = magnitude.shape[-1]
    blocks = to_blocks(magnitude, model.config.context, block_hop).transpose(0, 1)
    estimates = model(blocks).permute(1, 2, 0, 3, 4)                 # (S, C, nb, T, bins)
    return overlap_add(estimates, frames, block_hop, weights)


def plain_frames_to_signal(stft: STFT, spec: torch.Tensor) -> torch.Tensor:
    shape, frames = spec.shape[:-2], spec.shape[-1]
    chunks = torch.fft.irfft(spec.reshape(-1, *spec.shape[-2:]), n=stft.n_fft, dim=-2)
    chunks = chunks * stft.window()[:, None]
    length = (frames - 1) * stft.hop + stft.n_fft
    out = F.fold(chunks, output_size=(1, length), kernel_size=(1, stft.n_fft), stride=(1, stft.hop))
    return out.reshape(*shape, length)


def plain_envelope(stft: STFT, start: int, stop: int, total_frames: int) -> torch.Tensor:
    window_sq = stft.window() ** 2
    env = torch.zeros(stop - start)
    for frame in range(total_frames):
        lo, hi = max(start, frame * stft.hop), min(stop, frame * stft.hop + stft.n_fft)
        if lo < hi:
            env[lo - start:hi - start] += window_sq[lo - frame * stft.hop:hi - frame * stft.hop]
    return env


def plain_separate(model: ConvSep, x: torch.Tensor, block_hop: int, crossfade: str,
                   groups: list[tuple[int, ...]], power: float) -> torch.Tensor:
    """Whole-signal separation without segments: (C, N) -> (O, C, N)."""
    stft = STFT(model.config.n_fft, model.config.hop)
    spec = torch.stft(x, stft.n_fft, stft.hop, window=stft.window(), center=True,
                      pad_mode="constant", return_complex=True)
    with torch.no_grad():
        est = plain_estimate(model, spec.abs(), block_hop, block_weights(model.config.context, crossfade))
    masks = soft_masks(est, dim=0, power=power)
    grouped = torch.stack([masks[list(g)].sum(0) for g in groups]) * spec
    return torch.istft(grouped.reshape(-1, *spec.shape[-2:]), stft.n_fft, stft.hop,
                       window=stft.window(), center=True, length=x.shape[-1]).reshape(len(groups), *x.shape)


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


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("block_hop", [1, 7, 15, 30])
@pytest.mark.parametrize("frames", [1, 30, 31, 97])
def test_frame_level_model_equals_blocks_model_overlap_add(name, block_hop, frames):
    model = _randomised(name)
    c = model.config
    magnitude = torch.rand(c.channels, c.bins, frames) * 4
    for crossfade in ("triangular", "equal"):
        weights = block_weights(c.context, crossfade)
        with torch.inference_mode():
            ref = plain_estimate(model, magnitude, block_hop, weights)
            for chunk in (1, 3, 64):
                ours = model.estimate_frames(magnitude.transpose(-1, -2), block_hop, weights, chunk_blocks=chunk)
                assert ours.shape == (len(c.sources), c.channels, frames, c.bins)
                assert (ours.transpose(-1, -2) - ref).abs().max() < 1e-5 * max(1.0, ref.abs().max())


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_masked_mixtures_equal_soft_masks_grouped(power):
    y = torch.rand(4, 2, 513, 60)
    y[:, :, :, 10:20] = 0.0
    y[1, :, :, 30:40] = -1.0                       # negative values count as zero
    mix = torch.randn(2, 513, 60, dtype=torch.complex64)
    groups = [(0,), (1, 2, 3), (2,), (0, 1, 2, 3)]
    masks = soft_masks(y, dim=0, power=power)
    ref = torch.stack([masks[list(g)].sum(0) for g in groups]) * mix
    ours = masked_mixtures(y.clone(), mix, groups, power, overwrite=True)
    assert (ours - ref).abs().max() < 1e-5
    assert torch.equal(masked_mixtures(y, mix, groups, power), ours)


@pytest.mark.parametrize("name,block_hop,seconds,outputs", [
    ("convsep-stereo", None, 3.3, None),
    ("convsep-plus", 7, 1.1, "two"),
    ("deepconvsep", None, 2.0, "subset"),
])
def test_separator_equals_plain_whole_signal_pipeline(name, block_hop, seconds, outputs):
    model = _randomised(name, seed=3)
    c = model.config
    plan = (plan_outputs(c.sources, two_stems="vocals") if outputs == "two"
            else plan_outputs(c.sources, stems=["bass", "vocals"]) if outputs == "subset" else None)
    x = torch.randn(c.channels, int(seconds * 44100)) * 0.1
    for segment_seconds in (0.4, 100.0):
        sep = Separator(model, block_hop=block_hop, segment_seconds=segment_seconds, outputs=plan)
        ours = sep.separate_tensor(x)
        ref = plain_separate(model, x, sep.block_hop, sep.crossfade,
                             [o.sources for o in sep.outputs], sep.mask_power)
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max() < 1e-5


def test_separator_estimate_and_masks_keep_their_layout_and_values():
    model = _randomised("convsep-stereo", seed=4)
    sep = Separator(model)
    spec = STFT()(torch.randn(2, 30000) * 0.1)
    with torch.no_grad():
        ref = plain_estimate(model, spec.abs(), sep.block_hop, sep._weights)
    est = sep.estimate(spec.abs())
    assert est.shape == ref.shape == (4, 2, 513, spec.shape[-1])
    assert (est - ref).abs().max() < 1e-5
    masks = sep.masks(spec)
    loud = ref.sum(0) > 1e-3               # masks of near-silent bins amplify rounding
    assert (masks - soft_masks(ref, dim=0))[:, loud].abs().max() < 1e-5
    assert math.isclose(float(masks.sum(0).mean()), 1.0, rel_tol=1e-6)
