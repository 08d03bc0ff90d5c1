"""Training losses on masked magnitude estimates.

All losses take ``estimates`` and ``targets`` of shape (B, sources, channels, frames, bins)
(the model's layout), where estimates are soft masks x mixture magnitude, so training
optimises exactly what separation outputs.
"""
from __future__ import annotations

from typing import Sequence

import torch

from convsep.constants import SOURCES
from convsep.dsp.masks import soft_masks
from convsep.errors import ConvSepError

LOSSES = ("deepconvsep", "mse", "l1")


def masked_estimates(model_output: torch.Tensor, mixture: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """model output (B, S, C, T, F) and mixture magnitude (B, C, T, F) -> (B, S, C, T, F)."""
    return soft_masks(model_output, dim=1, power=power) * mixture.unsqueeze(1)


def frequency_weights(bins: int, low: float = 1.0, high: float = 0.5, device=None) -> torch.Tensor:
    """Linear weights over frequency (PytorchConvSep used 1.0 -> 0.5): (bins,)."""
    return torch.linspace(low, high, bins, device=device)


def _error(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over everything, optionally weighted per frequency bin."""
    sq = (a - b) ** 2
    if weights is not None:
        sq = sq * weights
    return sq.mean()


def deepconvsep_loss(estimates: torch.Tensor, targets: torch.Tensor, sources: Sequence[str],
                     alpha: float = 0.001, beta: float = 0.01, beta_voc: float = 0.03,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """DeepConvSep's discriminative loss, with a reconstruction term for every source.

    sum_s E(s, s) - alpha * sum over pairs of vocals/bass/drums E(s, t)
    - beta * (E(bass, other) + E(drums, other)) - beta_voc * E(vocals, other), then abs(),
    where E(s, t) is the error of the estimate of s against the target of t.
    """
    index = {name: i for i, name in enumerate(sources)}
    missing = set(SOURCES) - set(index)
    if missing:
        raise ConvSepError(f"the deepconvsep loss needs the sources vocals, drums, bass, other (missing {sorted(missing)})")

    def E(s: str, t: str) -> torch.Tensor:
        return _error(estimates[:, index[s]], targets[:, index[t]], weights)

    loss = sum(E(s, s) for s in sources)
    trio = ("vocals", "bass", "drums")
    loss = loss - alpha * sum(E(s, t) for s in trio for t in trio if s != t)
    loss = loss - beta * (E("bass", "other") + E("drums", "other")) - beta_voc * E("vocals", "other")
    return loss.abs()


def compute_loss(name: str, estimates: torch.Tensor, targets: torch.Tensor, sources: Sequence[str],
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    if name == "deepconvsep":
        return deepconvsep_loss(estimates, targets, sources, weights=weights)
    if name == "mse":
        return _error(estimates, targets, weights)
    if name == "l1":
        diff = (estimates - targets).abs()
        return (diff * weights).mean() if weights is not None else diff.mean()
    raise ConvSepError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
