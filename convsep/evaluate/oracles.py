"""Oracle separations: what a mask could reach if it knew the true sources.

Each oracle builds one mask per source from the true sources' STFTs, applies it to the
mixture STFT (the sum of the sources' STFTs) and inverts it; the mixture oracle returns the
mixture itself for every source (the lower bound).

- ``irm1``: magnitude ratio mask ``|S_j| / sum_k |S_k|``.
- ``irm2``: power ratio (Wiener-like) mask ``|S_j|^2 / sum_k |S_k|^2``.
- ``ibm``: binary mask ``|S_j| / |X| > 0.5`` (a majority vote on the mixture ``X``).
- ``mixture``: the mixture as every source's estimate.

The STFT is Hann ``n_fft`` = 4096, hop 1024 (as the sigsep oracles for MUSDB18), computed
frame chunk by frame chunk, so the working memory beyond the output stays bounded on long tracks;
``oracle_chunks`` yields the estimates piece by piece, final as soon as no later frame overlaps them.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from convsep.dsp.spectral import STFT
from convsep.errors import ConvSepError

ORACLES: tuple[str, ...] = ("irm1", "irm2", "ibm", "mixture")
ORACLE_N_FFT = 4096
ORACLE_HOP = 1024
IBM_THRESHOLD = 0.5
_EPS = 1e-12
_CHUNK_FRAMES = 256


def parse_oracles(spec: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"irm1,ibm"`` or a list of names -> checked, de-duplicated names."""
    if not spec:
        return []
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in ORACLES]
    if unknown:
        raise ConvSepError(f"unknown oracle {unknown[0]!r}; choose from {', '.join(ORACLES)}")
    return list(dict.fromkeys(names))


def _masks(spec: torch.Tensor, kind: str) -> torch.Tensor:
    """Source STFTs (S, C, bins, frames) complex -> masks (S, C, bins, frames) real."""
    mag = spec.abs()
    if kind == "irm1":
        return mag / (mag.sum(0, keepdim=True) + _EPS)
    if kind == "irm2":
        power = mag.square()
        return power / (power.sum(0, keepdim=True) + _EPS)
    mixture = spec.sum(0, keepdim=True).abs()
    return (mag / (mixture + _EPS) > IBM_THRESHOLD).to(mag.dtype)


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """(..., F, n_fft) windowed frames -> (..., (F - 1) * hop + n_fft), n_fft a multiple of hop."""
    *lead, count, n_fft = frames.shape
    ratio = n_fft // hop
    parts = frames.reshape(*lead, count, ratio, hop)
    out = frames.new_zeros(*lead, count + ratio - 1, hop)
    for k in range(ratio):
        out[..., k:k + count, :] += parts[..., k, :]
    return out.reshape(*lead, (count + ratio - 1) * hop)


def _segment(sources, start: int, stop: int) -> torch.Tensor:
    """Samples [start, stop) of (S, C, N) sources or of a (S, N, C) signal reader -> (S, C, n) float32."""
    if isinstance(sources, torch.Tensor):
        return sources[..., start:stop].to(torch.float32)
    return sources.read(start, stop).permute(0, 2, 1)


def oracle_chunks(
    sources, kind: str, n_fft: int = ORACLE_N_FFT, hop: int = ORACLE_HOP
) -> Iterator[tuple[int, torch.Tensor]]:
    """True sources -> ``(start, (S, C, n))`` float32 pieces of the oracle estimates, in order.

    ``sources``: a (S, C, N) tensor or a (S, N, C) ``SignalReader``. Only the pieces and one
    STFT frame of overlap are held in memory; together the pieces equal ``oracle_estimates``.
    """
    if kind not in ORACLES:
        raise ConvSepError(f"unknown oracle {kind!r}; choose from {', '.join(ORACLES)}")
    if n_fft % hop:
        raise ConvSepError(f"the oracle STFT size ({n_fft}) must be a multiple of its hop ({hop})")
    tensor = isinstance(sources, torch.Tensor)
    n_src, n_ch, n = (sources.shape if tensor else (sources.shape[0], sources.shape[2], sources.shape[1]))
    if kind == "mixture":
        for start in range(0, n, _CHUNK_FRAMES * hop):
            piece = _segment(sources, start, start + _CHUNK_FRAMES * hop)
            yield start, piece.sum(0, keepdim=True).expand_as(piece)
        return
    stft = STFT(n_fft, hop)
    device = sources.device
    window = stft.window(device)
    half = n_fft // 2
    frames = stft.frames(n)
    overlap = n_fft - hop
    # overlap-add sums past the last final sample: padded samples [first * hop, + overlap)
    carry = torch.zeros(n_src, n_ch, overlap, device=device)
    env_carry = torch.zeros(overlap, device=device)
    for first in range(0, frames, _CHUNK_FRAMES):
        last = min(frames, first + _CHUNK_FRAMES)
        # padded samples [first * hop, (last - 1) * hop + n_fft) of the centred STFT
        start, stop = first * hop - half, (last - 1) * hop + n_fft - half
        segment = _segment(sources, max(start, 0), min(stop, n))
        segment = F.pad(segment, (max(0, -start), max(0, stop - n)))
        spec = stft.forward_padded(segment)                      # (S, C, bins, frames)
        masked = _masks(spec, kind) * spec.sum(0, keepdim=True)
        chunks = torch.fft.irfft(masked, n=n_fft, dim=-2).transpose(-1, -2) * window
        signal = _overlap_add(chunks, hop)
        out = carry.new_zeros(n_src, n_ch, signal.shape[-1])
        out[..., :overlap] = carry
        out += signal
        env = env_carry.new_zeros(signal.shape[-1])
        env[:overlap] = env_carry
        env += _overlap_add(window.square().expand(last - first, n_fft), hop)
        # padded samples before last * hop get nothing more (all of them at the end)
        done = signal.shape[-1] if last == frames else (last - first) * hop
        carry, env_carry = out[..., done:], env[done:]
        lo, hi = max(first * hop, half), min(first * hop + done, half + n)
        if hi > lo:
            piece = out[..., lo - first * hop:hi - first * hop]
            piece /= env[lo - first * hop:hi - first * hop].clamp_min(1e-10)
            yield lo - half, piece


def oracle_estimates(
    sources: torch.Tensor, kind: str, n_fft: int = ORACLE_N_FFT, hop: int = ORACLE_HOP
) -> torch.Tensor:
    """True sources (S, C, N) -> oracle estimates (S, C, N), float32 on the same device."""
    pieces = [piece for _, piece in oracle_chunks(sources, kind, n_fft, hop)]
    if not pieces:
        return sources.to(torch.float32)[..., :0]
    return torch.cat(pieces, dim=-1)
