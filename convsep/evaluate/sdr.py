"""MDX-style global SDR: one number per source over the whole track."""

from __future__ import annotations

import math

import numpy as np
import torch

from convsep.errors import ConvSepError
from convsep.evaluate.bsseval import SignalReader, _span

_EPS = 1e-7
_CHUNK = 1 << 20


def global_sdr(
    references: torch.Tensor | np.ndarray | SignalReader,
    estimates: torch.Tensor | np.ndarray | SignalReader,
) -> torch.Tensor:
    """``10 log10((sum ref^2 + eps) / (sum (ref - est)^2 + eps))`` per source, eps = 1e-7.

    Args:
        references, estimates: (sources, samples, channels) or (sources, samples), same shape;
            tensors, arrays or ``SignalReader`` objects (read in ranges).

    Returns:
        (sources,) float64 tensor in dB, on the device of ``references``.
    """
    refs = references if isinstance(references, SignalReader) else torch.as_tensor(references)
    ests = estimates if isinstance(estimates, SignalReader) else torch.as_tensor(estimates, device=refs.device)
    if tuple(refs.shape) != tuple(ests.shape):
        raise ConvSepError(
            f"estimates have shape {tuple(ests.shape)} but references have {tuple(refs.shape)}; "
            "give one estimate of the same length and channels per reference"
        )
    if len(refs.shape) not in (2, 3) or math.prod(refs.shape) == 0:
        raise ConvSepError(
            f"expected (sources, samples, channels) or (sources, samples), got {tuple(refs.shape)}"
        )
    num = torch.zeros(refs.shape[0], dtype=torch.float64, device=refs.device)
    den = torch.zeros_like(num)
    # float64 sums over chunks: memory stays bounded on long tracks
    for start in range(0, refs.shape[1], _CHUNK):
        r = _span(refs, start, start + _CHUNK).to(refs.device, torch.float64)
        e = _span(ests, start, start + _CHUNK).to(refs.device, torch.float64)
        num += r.square().flatten(1).sum(dim=1)
        den += (r - e).square().flatten(1).sum(dim=1)
    return 10 * torch.log10((num + _EPS) / (den + _EPS))
