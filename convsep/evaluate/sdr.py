"""MDX-style global SDR: one number per source over the whole track."""

from __future__ import annotations

import numpy as np
import torch

from convsep.errors import ConvSepError

_EPS = 1e-7


def global_sdr(
    references: torch.Tensor | np.ndarray, estimates: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """``10 log10((sum ref^2 + eps) / (sum (ref - est)^2 + eps))`` per source, eps = 1e-7.

    Args:
        references, estimates: (sources, samples, channels) or (sources, samples), same shape.

    Returns:
        (sources,) float64 tensor in dB, on the device of ``references``.
    """
    refs = torch.as_tensor(references)
    ests = torch.as_tensor(estimates, device=refs.device)
    if refs.shape != ests.shape:
        raise ConvSepError(
            f"estimates have shape {tuple(ests.shape)} but references have {tuple(refs.shape)}; "
            "give one estimate of the same length and channels per reference"
        )
    if refs.ndim not in (2, 3) or refs.numel() == 0:
        raise ConvSepError(
            f"expected (sources, samples, channels) or (sources, samples), got {tuple(refs.shape)}"
        )
    refs, ests = refs.to(torch.float64).flatten(1), ests.to(torch.float64).flatten(1)
    num = refs.square().sum(dim=1) + _EPS
    den = (refs - ests).square().sum(dim=1) + _EPS
    return 10 * torch.log10(num / den)
