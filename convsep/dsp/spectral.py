"""STFT / ISTFT and the 30-frame blocks the model sees.

Conventions: waveforms are (..., samples); spectrograms are complex (..., bins, frames)
with bins = n_fft // 2 + 1. The STFT is "centred" with zero padding of n_fft // 2 on both
sides, so frame j is centred on sample j * hop and a signal of n samples has
1 + n // hop frames. Zero padding (not reflection) keeps chunked processing exact: a chunk
of the signal sees the same padding as the whole signal.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=32)
def _hann(n_fft: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    with torch.inference_mode(False), torch.no_grad():
        return torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype)


@dataclass(frozen=True)
class STFT:
    n_fft: int = 1024
    hop: int = 256

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def window(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """Periodic Hann window (n_fft,); cached per device and dtype (do not modify it)."""
        return _hann(self.n_fft, torch.device(device or "cpu"), dtype)

    def frames(self, samples: int) -> int:
        """Frames of the centred STFT of ``samples`` samples."""
        return 1 + samples // self.hop

    def forward_padded(self, padded: torch.Tensor) -> torch.Tensor:
        """Uncentred STFT of an already padded signal: (..., n) -> complex (..., bins, frames).

        The result is a transposed view of frames-major storage (..., frames, bins) (the
        layout the rFFT produces; ``.transpose(-1, -2)`` of it is contiguous), which is what
        the model's blocks and the inverse want; values equal ``torch.stft(center=False)``.
        """
        if padded.shape[-1] < self.n_fft:
            raise ValueError(f"signal of {padded.shape[-1]} samples is shorter than n_fft ({self.n_fft})")
        frames = padded.unfold(-1, self.n_fft, self.hop)              # (..., frames, n_fft) view
        window = self.window(padded.device, padded.dtype)
        return torch.fft.rfft(frames * window, dim=-1).transpose(-1, -2)

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        """(..., samples) -> complex (..., bins, 1 + samples // hop)."""
        samples = waveform.shape[-1]
        frames = self.frames(samples)
        half = self.n_fft // 2
        right = (frames - 1) * self.hop + self.n_fft - half - samples
        return self.forward_padded(F.pad(waveform, (half, right)))

    def frames_to_signal(self, spec: torch.Tensor, chunk_frames: int = 2048) -> torch.Tensor:
        """Windowed overlap-add of frames, not yet divided by the window envelope:
        complex (..., bins, frames) -> (..., (frames - 1) * hop + n_fft).

        The inverse rFFT runs along contiguous bins (frames-major storage, as ``__call__``
        returns it; other layouts are copied once) in chunks of ``chunk_frames`` frames,
        each windowed and added into the output at its ``n_fft / hop`` shifts while it is
        still in cache.
        """
        shape, (bins, frames) = spec.shape[:-2], spec.shape[-2:]
        length = (frames - 1) * self.hop + self.n_fft
        rows = spec.transpose(-1, -2).reshape(-1, frames, bins)        # (N, frames, bins)
        window = self.window(spec.device, rows.real.dtype)
        if self.n_fft % self.hop:
            chunks = torch.fft.irfft(rows, n=self.n_fft, dim=-1) * window
            out = F.fold(chunks.transpose(1, 2), output_size=(1, length),
                         kernel_size=(1, self.n_fft), stride=(1, self.hop))
            return out.reshape(*shape, length)
        shifts = self.n_fft // self.hop
        out = rows.real.new_zeros(rows.shape[0], length)
        for first in range(0, frames, chunk_frames):
            last = min(frames, first + chunk_frames)
            chunk = torch.fft.irfft(rows[:, first:last], n=self.n_fft, dim=-1)
            chunk = chunk.mul_(window).view(rows.shape[0], last - first, shifts, self.hop)
            for k in range(shifts):
                out[:, (first + k) * self.hop:(last + k) * self.hop].view(
                    rows.shape[0], last - first, self.hop).add_(chunk[:, :, k])
        return out.reshape(*shape, length)

    def envelope(self, start: int, stop: int, total_frames: int, device=None,
                 dtype=torch.float32) -> torch.Tensor:
        """Sum of squared windows over the frames of a centred STFT with ``total_frames``
        frames, at padded sample positions [start, stop): (stop - start,).

        Away from both ends it is periodic with period hop; only the first and last n_fft
        samples of the padded signal are computed frame by frame.
        """
        if stop <= start:
            return torch.zeros(0, device=device, dtype=dtype)
        window_sq = self.window(device, dtype) ** 2
        end = (total_frames - 1) * self.hop + self.n_fft        # padded length
        if end <= 2 * self.n_fft or (stop - start) <= 2 * self.n_fft:
            return self._envelope_exact(start, stop, total_frames, window_sq)
        # periodic part: sum over k of window_sq[j + k hop], tiled from position start
        period = F.pad(window_sq, (0, -self.n_fft % self.hop)).reshape(-1, self.hop).sum(0)
        env = period.roll(-(start % self.hop)).repeat(math.ceil((stop - start) / self.hop))[:stop - start]
        for lo, hi in ((0, self.n_fft), (end - self.n_fft, end)):
            lo, hi = max(lo, start), min(hi, stop)
            if lo < hi:
                env[lo - start:hi - start] = self._envelope_exact(lo, hi, total_frames, window_sq)
        return env

    def _envelope_exact(self, start: int, stop: int, total_frames: int,
                        window_sq: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(start, stop, device=window_sq.device)
        env = torch.zeros(stop - start, device=window_sq.device, dtype=window_sq.dtype)
        for k in range(math.ceil(self.n_fft / self.hop)):
            frame = positions // self.hop - k
            offset = positions - frame * self.hop
            valid = (frame >= 0) & (frame < total_frames) & (offset < self.n_fft)
            env += torch.where(valid, window_sq[offset.clamp(max=self.n_fft - 1)], 0.0)
        return env

    def inverse(self, spec: torch.Tensor, samples: int) -> torch.Tensor:
        """complex (..., bins, frames) -> (..., samples): the exact inverse of ``__call__``."""
        frames = spec.shape[-1]
        signal = self.frames_to_signal(spec)
        env = self.envelope(0, signal.shape[-1], frames, spec.device, signal.dtype)
        half = self.n_fft // 2
        return (signal / env.clamp_min(1e-10))[..., half:half + samples]


def block_count(frames: int, context: int, block_hop: int) -> int:
    """Blocks on the grid 0, hop, 2 hop, ... needed to cover ``frames`` frames."""
    return 1 + max(0, math.ceil((frames - context) / block_hop))


def to_blocks(frames_tensor: torch.Tensor, context: int, block_hop: int) -> torch.Tensor:
    """(..., bins, frames) -> (..., blocks, context, bins); the last block is zero-padded."""
    frames = frames_tensor.shape[-1]
    blocks = block_count(frames, context, block_hop)
    needed = (blocks - 1) * block_hop + context
    padded = F.pad(frames_tensor, (0, needed - frames))
    # unfold: (..., bins, blocks, context) -> (..., blocks, context, bins)
    return padded.unfold(-1, context, block_hop).movedim(-3, -1)


def block_weights(context: int, crossfade: str = "triangular", device=None,
                  dtype=torch.float32) -> torch.Tensor:
    """Per-frame weights inside a block for overlap-add: (context,).

    "triangular" cross-fades linearly between overlapping blocks (as the original
    reconstruction does); "equal" averages them.
    """
    if crossfade == "equal":
        return torch.ones(context, device=device, dtype=dtype)
    if crossfade == "triangular":
        t = torch.arange(context, device=device, dtype=dtype)
        return torch.minimum(t + 1, context - t)
    raise ValueError(f"unknown crossfade {crossfade!r}")


def overlap_add(blocks: torch.Tensor, frames: int, block_hop: int,
                weights: torch.Tensor) -> torch.Tensor:
    """(..., blocks, context, bins) -> (..., bins, frames): weighted average of the blocks
    that cover each frame (the inverse of ``to_blocks`` for consistent blocks)."""
    *lead, count, context, bins = blocks.shape
    length = (count - 1) * block_hop + context
    weighted = (blocks * weights[:, None]).reshape(-1, count, context, bins)
    # fold wants (N, C * kernel, L): bins are the channels and context is the kernel.
    cols = weighted.permute(0, 3, 2, 1).reshape(-1, bins * context, count)
    summed = F.fold(cols, output_size=(1, length), kernel_size=(1, context), stride=(1, block_hop))
    norm = F.fold(weights.to(blocks.dtype)[None, :, None].expand(1, context, count),
                  output_size=(1, length), kernel_size=(1, context), stride=(1, block_hop))
    out = (summed / norm).reshape(*lead, bins, length)
    return out[..., :frames]
