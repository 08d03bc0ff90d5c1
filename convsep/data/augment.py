"""Batched source augmentations on (batch, sources, channels, samples) tensors.

Every function draws its randomness from ``generator``, which must live on the tensor's device,
and returns a new tensor; none loops over batch items. The mixture of an augmented batch is
``x.sum(1)``, so a silenced source is also removed from the mix.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from convsep.errors import ConvSepError


@dataclass
class AugmentConfig:
    """What the sampler does to each excerpt (JSON-able through ``to_dict``/``from_dict``).

    cross_song_p: probability that a batch item takes each source from its own random track and
        offset (cross-song mixing); otherwise all sources come from one track, aligned.
    gain_min, gain_max: uniform random gain per source (off when both are 1).
    channel_swap_p: probability, per source, of swapping left and right.
    channel_mute_p: probability, per source, of zeroing one of its channels chosen at random.
    source_dropout_p: probability, per source, of silencing it (and so removing it from the mix).
    silence_threshold_db: items whose mixture RMS (dBFS) is below this are redrawn, at most
        ``max_redraws`` times; items still silent after that are kept.
    The booleans switch each augmentation on or off without losing its setting.
    """

    cross_song: bool = True
    cross_song_p: float = 0.5
    gain: bool = True
    gain_min: float = 0.25
    gain_max: float = 1.25
    channel_swap: bool = True
    channel_swap_p: float = 0.5
    channel_mute: bool = True
    channel_mute_p: float = 0.05
    source_dropout: bool = True
    source_dropout_p: float = 0.05
    silence_rejection: bool = True
    silence_threshold_db: float = -60.0
    max_redraws: int = 10

    def __post_init__(self) -> None:
        for name in ("cross_song_p", "channel_swap_p", "channel_mute_p", "source_dropout_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConvSepError(f"augmentation {name} must be within [0, 1], got {p}")
        if not 0.0 <= self.gain_min <= self.gain_max:
            raise ConvSepError(
                f"augmentation gain range must satisfy 0 <= gain_min <= gain_max, got {self.gain_min}, {self.gain_max}"
            )
        if self.max_redraws < 0:
            raise ConvSepError(f"augmentation max_redraws must be >= 0, got {self.max_redraws}")

    @classmethod
    def none(cls) -> "AugmentConfig":
        """Plain aligned random excerpts: every augmentation off."""
        return cls(cross_song=False, gain=False, channel_swap=False, channel_mute=False,
                   source_dropout=False, silence_rejection=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConvSepError(f"unknown augmentation settings: {', '.join(sorted(unknown))}")
        return cls(**d)

    @property
    def gain_active(self) -> bool:
        return self.gain and not (self.gain_min == 1.0 and self.gain_max == 1.0)


def _rand(shape: tuple[int, ...], x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=x.device)


def random_gain(x: torch.Tensor, generator: torch.Generator, low: float = 0.25, high: float = 1.25) -> torch.Tensor:
    """Scale each source of each item by a gain uniform in [low, high]. x: (B, S, C, L)."""
    g = low + (high - low) * _rand(x.shape[:2], x, generator)
    return x * g[:, :, None, None].to(x.dtype)


def channel_swap(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Reverse the channel order of each source with probability ``p``. x: (B, S, C, L)."""
    swap = _rand(x.shape[:2], x, generator) < p
    return torch.where(swap[:, :, None, None], x.flip(2), x)


def channel_mute(x: torch.Tensor, generator: torch.Generator, p: float = 0.05) -> torch.Tensor:
    """With probability ``p`` per source, zero one of its channels chosen uniformly. x: (B, S, C, L)."""
    B, S, C = x.shape[:3]
    mute = _rand((B, S), x, generator) < p
    channel = (_rand((B, S), x, generator) * C).long().clamp_max(C - 1)
    hit = mute[:, :, None] & (torch.arange(C, device=x.device) == channel[:, :, None])
    return x * (~hit)[..., None].to(x.dtype)


def source_dropout(x: torch.Tensor, generator: torch.Generator, p: float = 0.05) -> torch.Tensor:
    """Silence each source of each item with probability ``p``. x: (B, S, C, L)."""
    keep = _rand(x.shape[:2], x, generator) >= p
    return x * keep[:, :, None, None].to(x.dtype)


def augment(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Apply the enabled augmentations in a fixed order: gain, swap, mute, dropout. x: (B, S, C, L)."""
    if config.gain_active:
        x = random_gain(x, generator, config.gain_min, config.gain_max)
    if config.channel_swap and config.channel_swap_p > 0:
        x = channel_swap(x, generator, config.channel_swap_p)
    if config.channel_mute and config.channel_mute_p > 0:
        x = channel_mute(x, generator, config.channel_mute_p)
    if config.source_dropout and config.source_dropout_p > 0:
        x = source_dropout(x, generator, config.source_dropout_p)
    return x


def mixture_db(x: torch.Tensor) -> torch.Tensor:
    """RMS level in dBFS of the mixture of each item: x (B, S, C, L) -> (B,)."""
    mix = x.sum(1)
    power = mix.square().mean(dim=(1, 2))
    return 10.0 * torch.log10(power + 1e-20)

