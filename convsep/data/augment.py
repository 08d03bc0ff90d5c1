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
    speed_max, speed_p: with probability ``speed_p`` per item, each source is played faster or
        slower, as a tape would (pitch and tempo together), by a factor drawn log-uniformly in
        [1 / speed_max, speed_max]; sources of one song (aligned items) share one factor,
        sources drawn from different songs each get their own (off while speed_max is 1).
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
    speed: bool = True
    speed_max: float = 1.0
    speed_p: float = 0.5

    def __post_init__(self) -> None:
        if not 1.0 <= self.speed_max <= 2.0:
            raise ConvSepError(f"augmentation speed_max must be within [1, 2], got {self.speed_max}")
        for name in ("cross_song_p", "channel_swap_p", "channel_mute_p", "source_dropout_p", "speed_p"):
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
                   source_dropout=False, silence_rejection=False, speed=False)

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

    @property
    def speed_active(self) -> bool:
        return self.speed and self.speed_max > 1.0 and self.speed_p > 0.0


def catmull_rom(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
    """The Catmull-Rom cubic through p1 (t = 0) and p2 (t = 1), with neighbours p0 and p3."""
    return p1 + 0.5 * t * (p2 - p0 + t * (2 * p0 - 5 * p1 + 4 * p2 - p3 + t * (3 * (p1 - p2) + p3 - p0)))


def resample_rows(rows: torch.Tensor, speed: torch.Tensor, length: int) -> torch.Tensor:
    """Rows played at other speeds, as a tape would: float32 (n, C, span) and speeds (n,) ->
    (n, C, length), sample i read at ``1 + i * speed`` by Catmull-Rom interpolation (exact
    at speed 1). ``span`` must be at least ``ceil(length * speed) + 3``."""
    n, C, span = rows.shape
    position = 1.0 + torch.arange(length, device=rows.device, dtype=torch.float64) * speed.double()[:, None]
    base = position.floor()
    t = (position - base).float()[:, None, :]                                  # (n, 1, length)
    base = base.long().clamp_(1, span - 3)[:, None, :].expand(n, C, length)
    p0, p1, p2, p3 = (rows.gather(2, base + k) for k in (-1, 0, 1, 2))         # (n, C, length) each
    return catmull_rom(p0, p1, p2, p3, t)


def _rand(shape: tuple[int, ...], device: torch.device, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


def draw_gain(B: int, S: int, generator: torch.Generator, device: torch.device,
              low: float, high: float) -> torch.Tensor:
    """float32 (B, S) gains uniform in [low, high]."""
    return low + (high - low) * _rand((B, S), device, generator)


def draw_swap(B: int, S: int, generator: torch.Generator, device: torch.device, p: float) -> torch.Tensor:
    """bool (B, S): which sources get their channels reversed."""
    return _rand((B, S), device, generator) < p


def draw_mute(B: int, S: int, C: int, generator: torch.Generator, device: torch.device, p: float) -> torch.Tensor:
    """bool (B, S, C): the channels to zero (at most one per source)."""
    mute = _rand((B, S), device, generator) < p
    channel = (_rand((B, S), device, generator) * C).long().clamp_max(C - 1)
    return mute[:, :, None] & (torch.arange(C, device=device) == channel[:, :, None])


def draw_keep(B: int, S: int, generator: torch.Generator, device: torch.device, p: float) -> torch.Tensor:
    """bool (B, S): the sources that survive dropout."""
    return _rand((B, S), device, generator) >= p


def random_gain(x: torch.Tensor, generator: torch.Generator, low: float = 0.25, high: float = 1.25) -> torch.Tensor:
    """Scale each source of each item by a gain uniform in [low, high]. x: (B, S, C, L)."""
    g = draw_gain(x.shape[0], x.shape[1], generator, x.device, low, high)
    return x * g[:, :, None, None].to(x.dtype)


def channel_swap(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Reverse the channel order of each source with probability ``p``. x: (B, S, C, L)."""
    swap = draw_swap(x.shape[0], x.shape[1], generator, x.device, p)
    return torch.where(swap[:, :, None, None], x.flip(2), x)


def channel_mute(x: torch.Tensor, generator: torch.Generator, p: float = 0.05) -> torch.Tensor:
    """With probability ``p`` per source, zero one of its channels chosen uniformly. x: (B, S, C, L)."""
    hit = draw_mute(*x.shape[:3], generator, x.device, p)
    return x * (~hit)[..., None].to(x.dtype)


def source_dropout(x: torch.Tensor, generator: torch.Generator, p: float = 0.05) -> torch.Tensor:
    """Silence each source of each item with probability ``p``. x: (B, S, C, L)."""
    keep = draw_keep(x.shape[0], x.shape[1], generator, x.device, p)
    return x * keep[:, :, None, None].to(x.dtype)


def draw(
    shape: tuple[int, int, int], config: AugmentConfig, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """All enabled augmentations of a (B, S, C, ...) batch as one channel map and one factor.

    Returns ``channels`` int64 (B, S, C), the input channel each output channel reads, and
    ``factor`` float32 (B, S, C). ``x.gather(2, channels) * factor`` equals applying gain, swap,
    mute and dropout in that order with the same generator state (see ``apply``).
    """
    B, S, C = shape
    channels = torch.arange(C, device=device).expand(B, S, C)
    factor = torch.ones((B, S, C), device=device)
    if config.gain_active:
        factor = factor * draw_gain(B, S, generator, device, config.gain_min, config.gain_max)[:, :, None]
    if config.channel_swap and config.channel_swap_p > 0:
        swap = draw_swap(B, S, generator, device, config.channel_swap_p)
        channels = torch.where(swap[:, :, None], channels.flip(-1), channels)
    if config.channel_mute and config.channel_mute_p > 0:
        factor = factor * ~draw_mute(B, S, C, generator, device, config.channel_mute_p)
    if config.source_dropout and config.source_dropout_p > 0:
        factor = factor * draw_keep(B, S, generator, device, config.source_dropout_p)[:, :, None]
    return channels, factor


def apply(x: torch.Tensor, channels: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x (B, S, C, L), channels int64 (B, S, C), factor (B, S, C) -> (B, S, C, L)."""
    index = channels[..., None].expand(*channels.shape, x.shape[-1])
    return x.gather(2, index) * factor[..., None].to(x.dtype)


def augment(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Apply the enabled augmentations (gain, swap, mute, dropout, in that order). x: (B, S, C, L)."""
    return apply(x, *draw(tuple(x.shape[:3]), config, generator, x.device))


def mixture_db(x: torch.Tensor) -> torch.Tensor:
    """RMS level in dBFS of the mixture of each item: x (B, S, C, L) -> (B,)."""
    B, S = x.shape[:2]
    mix = torch.ones((1, S), dtype=x.dtype, device=x.device) @ x.reshape(B, S, -1)  # (B, 1, C * L)
    rms = torch.linalg.vector_norm(mix, dim=(1, 2)) / mix.shape[-1] ** 0.5
    return 20.0 * torch.log10(rms + 1e-10)
