"""STFT / ISTFT and the 30-frame blocks the model sees.

Conventions: waveforms are (..., samples); spectrograms are complex (..., bins, frames)
with bins = n_fft // 2 + 1. The STFT is "centred" with zero padding of n_fft // 2 on both
sides, so frame j is centred on sample j * hop and a signal of n samples has
1 + n // hop frames. Zero padding (not reflection) keeps chunked processing exact: a chunk
of the signal sees the same padding as the whole signal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class STFT:
    n_fft: int = 1024
    hop: int = 256

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def window(self, device=None, dtype=torch.float32) -> torch.Tensor:
        return torch.hann_window(self.n_fft, periodic=True, device=device, dtype=dtype)

    def frames(self, samples: int) -> int:
        """Frames of the centred STFT of ``samples`` samples."""
        return 1 + samples // self.hop

    def forward_padded(self, padded: torch.Tensor) -> torch.Tensor:
        """Uncentred STFT of an already padded signal: (..., n) -> complex (..., bins, frames)."""
        shape = padded.shape[:-1]
        spec = torch.stft(padded.reshape(-1, padded.shape[-1]), self.n_fft, self.hop,
                          window=self.window(padded.device, padded.dtype), center=False,
                          return_complex=True)
        return spec.reshape(*shape, *spec.shape[-2:])

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        """(..., samples) -> complex (..., bins, 1 + samples // hop)."""
        samples = waveform.shape[-1]
        frames = self.frames(samples)
        half = self.n_fft // 2
        right = (frames - 1) * self.hop + self.n_fft - half - samples
        return self.forward_padded(F.pad(waveform, (half, right)))

    def frames_to_signal(self, spec: torch.Tensor) -> torch.Tensor:
        """Windowed overlap-add of frames, not yet divided by the window envelope:
        complex (..., bins, frames) -> (..., (frames - 1) * hop + n_fft)."""
        shape = spec.shape[:-2]
        frames = spec.shape[-1]
        chunks = torch.fft.irfft(spec.reshape(-1, *spec.shape[-2:]), n=self.n_fft, dim=-2)
        chunks = chunks * self.window(spec.device, chunks.dtype)[:, None]
        length = (frames - 1) * self.hop + self.n_fft
        out = F.fold(chunks, output_size=(1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop))
        return out.reshape(*shape, length)

    def envelope(self, start: int, stop: int, total_frames: int, device=None,
                 dtype=torch.float32) -> torch.Tensor:
        """Sum of squared windows over the frames of a centred STFT with ``total_frames``
        frames, at padded sample positions [start, stop): (stop - start,)."""
        window_sq = self.window(device, dtype) ** 2
        positions = torch.arange(start, stop, device=device)
        env = torch.zeros(stop - start, device=device, dtype=dtype)
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
