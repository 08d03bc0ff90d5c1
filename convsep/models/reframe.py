"""A trained ConvSep moved to another STFT frame length (to fine-tune it with finer frequency
resolution), keeping its function as closely as a linear fit allows.

Only the two layers that span the frequency axis depend on the frame length: conv1 (kernel
(1, bins), a matrix over channels x bins) and the last transposed conv (one row of bins per
source and channel). The hop, the context and every other layer stay, so frame j still covers
the same instant and the time-domain layers see the same sequence of features.

- The last transposed conv is resampled along frequency (linear interpolation at the new bins'
  frequencies): each source's output spectrum, and so its mask, keeps its shape. The loss and
  the masks depend only on ratios between sources, so no scale is needed.
- conv1 is refitted: on frames of real mixtures, the new weights W' minimise
  ||X' W'^T - X W^T||^2 + lambda ||W' - W0||^2, where X, X' are the network inputs of the
  same frames at the old and new lengths and W0 is the old conv1 resampled along frequency
  (and scaled by old bins / new bins, so a flat spectrum gives the same features). The ridge
  term decides the weights of bins the data never excites (for example above a recording's
  band limit). Closed form, in float64.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import torch

from convsep.dsp.spectral import STFT
from convsep.errors import ConvSepError
from convsep.models.config import ConvSepConfig
from convsep.models.network import ConvSep


def reframe_config(config: ConvSepConfig, n_fft: int) -> ConvSepConfig:
    """``config`` at frame length ``n_fft``; the input scale keeps its 1 / sqrt(n_fft) law."""
    if config.tied:
        raise ConvSepError("tied decoders cannot be reframed (conv1 and the output share weights)")
    if n_fft < 2 * config.hop or n_fft & (n_fft - 1):
        raise ConvSepError(f"n_fft must be a power of two of at least twice the hop ({2 * config.hop}), not {n_fft}")
    scale = config.input_scale * math.sqrt(config.n_fft / n_fft)
    return dataclasses.replace(config, n_fft=n_fft, input_scale=scale).validate()


def resample_bins(weight: torch.Tensor, bins: int) -> torch.Tensor:
    """(..., old bins) -> (..., bins): linear interpolation at the new bins' frequencies
    (both grids run from 0 Hz to Nyquist)."""
    old = weight.shape[-1]
    position = torch.linspace(0, old - 1, bins, dtype=torch.float64)
    low = position.floor().long().clamp(max=old - 2)
    frac = (position - low).to(weight.dtype)
    return weight[..., low] * (1 - frac) + weight[..., low + 1] * frac


def _input_frames(model: ConvSep, mixtures: Iterable[torch.Tensor]) -> torch.Tensor:
    """Mixtures (channels, samples) -> network inputs of their frames (frames, channels x bins)."""
    c = model.config
    stft = STFT(c.n_fft, c.hop)
    rows = []
    for mixture in mixtures:
        magnitude = stft(mixture.to(torch.float64)).abs().transpose(-1, -2)  # (C, frames, bins)
        x = model.prepare_input(magnitude.to(torch.float32)).to(torch.float64)
        rows.append(x.transpose(0, 1).reshape(x.shape[1], -1))
    return torch.cat(rows)


@torch.no_grad()
def reframe(model: ConvSep, n_fft: int, mixtures: list[torch.Tensor], ridge: float = 1e-3
            ) -> tuple[ConvSep, float]:
    """``model`` at frame length ``n_fft``, conv1 fitted on ``mixtures`` (channels, samples).

    Returns the new model and the fit's relative error of conv1's features over those frames,
    ||X' W'^T - X W^T|| / ||X W^T|| (0: the new first layer sees exactly what the old one saw).
    ``ridge`` is lambda relative to the mean diagonal of X'^T X'.
    """
    if not mixtures:
        raise ConvSepError("reframing needs at least one mixture to fit conv1 on")
    config = reframe_config(model.config, n_fft)
    new = ConvSep(config)
    new.load_state_dict({k: v for k, v in model.state_dict().items()
                         if k not in ("conv1.weight", "deconv1_weight", "input_mean", "input_gain")},
                        strict=False)
    if config.input_norm:
        new.input_mean.copy_(resample_bins(model.input_mean, config.bins))
        new.input_gain.copy_(resample_bins(model.input_gain, config.bins))
    new.deconv1_weight.copy_(resample_bins(model.deconv1_weight, config.bins))

    old_w = model.conv1.weight[:, :, 0, :].to(torch.float64)                  # (f1, C, old bins)
    prior = resample_bins(old_w, config.bins) * (model.config.bins / config.bins)
    f1 = old_w.shape[0]
    x_old = _input_frames(model, mixtures)
    x_new = _input_frames(new, mixtures)
    target = x_old @ old_w.reshape(f1, -1).T                                   # (frames, f1)
    gram = x_new.T @ x_new
    lam = ridge * gram.diagonal().mean().clamp_min(1e-12)
    rhs = x_new.T @ target + lam * prior.reshape(f1, -1).T
    gram.diagonal().add_(lam)
    w = torch.linalg.solve(gram, rhs).T                                        # (f1, C x bins)
    error = (torch.linalg.norm(x_new @ w.T - target) / torch.linalg.norm(target).clamp_min(1e-12)).item()
    new.conv1.weight.copy_(w.reshape(new.conv1.weight.shape).to(new.conv1.weight.dtype))
    return new, error
