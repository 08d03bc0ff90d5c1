"""Soft masks from source magnitude estimates, and their application to the mixture."""
from __future__ import annotations

from typing import Sequence

import torch

EPS = 1e-10


def soft_masks(estimates: torch.Tensor, dim: int = 0, power: float = 1.0,
               eps: float = EPS) -> torch.Tensor:
    """Ratio masks m_s = (y_s^p + eps) / sum_k (y_k^p + eps) along ``dim`` (the sources).

    They sum to one everywhere; where every estimate is zero (silence) each source gets
    1 / sources, so nothing is NaN and the stems still add up to the mixture.
    """
    powered = estimates.clamp_min(0) if power == 1.0 else estimates.clamp_min(0) ** power
    powered = powered + eps
    return powered / powered.sum(dim=dim, keepdim=True)


def apply_masks(masks: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """masks (S, ..., bins, frames) real x mixture (..., bins, frames) complex: the
    estimates keep the mixture's phase."""
    return masks * mixture.unsqueeze(0)


def masked_mixtures(estimates: torch.Tensor, mixture: torch.Tensor,
                    groups: Sequence[Sequence[int]], power: float = 1.0, eps: float = EPS,
                    overwrite: bool = False) -> torch.Tensor:
    """Source magnitude estimates (S, ..., bins, frames) and the complex mixture (...,
    bins, frames) -> complex (len(groups), ..., bins, frames): for each group of sources,
    the sum of their ``soft_masks`` times the mixture.

    The same as ``stack([soft_masks(estimates)[g].sum(0) for g in groups]) * mixture`` in
    fewer passes: mixture / sum_k (y_k^p + eps) is formed once and each output is one
    multiplication. ``overwrite`` lets it reuse ``estimates``' memory.
    """
    powered = estimates.clamp_min_(0) if overwrite else estimates.clamp_min(0)
    if power != 1.0:
        powered = powered.pow_(power)
    powered = powered.add_(eps)
    ratio = mixture / powered.sum(0)
    out = torch.empty((len(groups), *ratio.shape), dtype=ratio.dtype, device=ratio.device)
    for o, group in enumerate(groups):
        group = list(group)
        numerator = powered[group[0]] if len(group) == 1 else powered[group].sum(0)
        torch.mul(numerator, ratio, out=out[o])
    return out
