"""Soft masks from source magnitude estimates, and their application to the mixture."""
from __future__ import annotations

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
