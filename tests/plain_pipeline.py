"""Plain reference implementations of the separation pipeline's steps: torch.stft, the
model on explicit blocks followed by a fold-based overlap-add, soft masks then grouping then
the product with the mixture, and an irfft + F.fold ISTFT with a frame-by-frame envelope.
The optimised paths are checked against them (to 1e-5).
"""
import torch
import torch.nn.functional as F

from convsep.dsp.masks import soft_masks
from convsep.dsp.spectral import STFT, block_weights, overlap_add, to_blocks
from convsep.models import ConvSep, preset


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
