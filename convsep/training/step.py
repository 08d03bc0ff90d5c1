"""From a batch of source waveforms to the loss, all on the training device."""
from __future__ import annotations

import torch

from convsep.losses import compute_loss, frequency_weights, masked_estimates
from convsep.models import ConvSep
from convsep.spectral import STFT


def excerpt_samples(config, blocks_per_excerpt: int = 1) -> int:
    """Waveform length whose uncentred STFT has exactly blocks_per_excerpt x context frames."""
    return (blocks_per_excerpt * config.context - 1) * config.hop + config.n_fft


def batch_to_blocks(sources: torch.Tensor, stft: STFT, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source waveforms (B, S, C, L) -> mixture magnitude blocks (N, C, T, F) and source
    magnitude blocks (N, S, C, T, F), N = B x frames / T; the mixture is the sum of the
    sources (its STFT is the sum of theirs)."""
    spec = stft.forward_padded(sources)                       # (B, S, C, F, frames)
    mixture = spec.sum(1).abs()                               # (B, C, F, frames)
    B, S, C, F, frames = spec.shape
    k = frames // context
    src = spec.abs()[..., :k * context].reshape(B, S, C, F, k, context)
    mix = mixture[..., :k * context].reshape(B, C, F, k, context)
    src = src.permute(0, 4, 1, 2, 5, 3).reshape(B * k, S, C, context, F)
    mix = mix.permute(0, 3, 1, 4, 2).reshape(B * k, C, context, F)
    return mix, src


class LossComputer:
    """loss(model, sources (B, S, C, L)) -> scalar, for a model config and loss settings."""

    def __init__(self, model: ConvSep, loss: str = "mse", weighted: bool = False, device=None):
        cfg = model.config
        self.config = cfg
        self.stft = STFT(cfg.n_fft, cfg.hop)
        self.loss = loss
        self.weights = frequency_weights(cfg.bins, device=device) if weighted else None

    def __call__(self, model: torch.nn.Module, sources: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.channels == 1 and sources.shape[2] != 1:
            sources = sources.mean(2, keepdim=True)
        mix, src = batch_to_blocks(sources, self.stft, cfg.context)
        output = model(mix)
        estimates = masked_estimates(output, mix * cfg.input_scale, cfg.mask_power)
        return compute_loss(self.loss, estimates, src * cfg.input_scale, cfg.sources, self.weights)
