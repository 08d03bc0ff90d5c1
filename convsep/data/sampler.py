"""Random excerpts from a DeviceCache, drawn and augmented as whole batches on its device.

Tracks are picked with probability proportional to their number of excerpt start positions
(``length - excerpt + 1``), then the start is uniform within the track: every excerpt of the
split is equally likely. With ``track_cap`` a track counts as at most that many start
positions, so a few long songs do not outweigh many short ones (a whole album beside 7 s
previews). Tracks shorter than one excerpt are never picked.
"""
from __future__ import annotations

import math

import torch

from convsep.data.augment import AugmentConfig, draw, mixture_db, resample_rows
from convsep.data.cache import INT16_MAX, DeviceCache
from convsep.errors import ConvSepError


class ExcerptSampler:
    """Batches of augmented source excerpts: ``sample()`` -> float32 (B, 4, 2, excerpt_samples).

    The mixture of a batch is ``sources.sum(1)``. ``gather``: "index" reads a batch in one
    indexing op (the CUDA way), "rows" with one copy per excerpt row (about 1.6x faster on
    the CPU), "auto" picks by device; both give the same batches. ``generator`` (a torch.Generator on the
    cache's device, or an int seed) supplies every random draw, so equal seeds give equal
    batches and ``state_dict()``/``load_state_dict()`` resume a sequence exactly.
    """

    def __init__(
        self,
        cache: DeviceCache,
        excerpt_samples: int,
        batch_size: int,
        augment: AugmentConfig | None = None,
        generator: torch.Generator | int | None = None,
        gather: str = "auto",
        track_cap: int | None = None,
    ):
        if excerpt_samples < 1 or batch_size < 1:
            raise ConvSepError(
                f"excerpt length and batch size must be positive, got {excerpt_samples} and {batch_size}"
            )
        if track_cap is not None and track_cap < 1:
            raise ConvSepError(f"the track cap must be at least one start position, got {track_cap}")
        self.cache = cache
        self.excerpt_samples = int(excerpt_samples)
        self.batch_size = int(batch_size)
        self.augment = augment if augment is not None else AugmentConfig()
        device = cache.device
        if gather not in ("auto", "rows", "index"):
            raise ConvSepError(f"gather must be auto, rows or index, got {gather!r}")
        self._copy_rows_on_cpu = gather == "rows" or (gather == "auto" and device.type == "cpu")
        if generator is None or isinstance(generator, int):
            seed = generator
            generator = torch.Generator(device=device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        if generator.device.type != device.type:
            raise ConvSepError(f"the sampler's generator is on {generator.device}, its data on {device}; use one device")
        self.generator = generator

        # With speed changes each excerpt is read long enough for the fastest speed.
        self._span = self.excerpt_samples
        if self.augment.speed_active:
            self._span = math.ceil(self.excerpt_samples * self.augment.speed_max) + 3
        starts = (cache.lengths - self._span + 1).clamp_min(0)
        if int(starts.sum()) == 0:
            longest = int(cache.lengths.max()) / cache.rate
            raise ConvSepError(
                f"excerpts of {self.excerpt_samples / cache.rate:.2f} s are longer than every track "
                f"(longest {longest:.2f} s); use shorter excerpts"
            )
        self._starts = starts
        weights = starts if track_cap is None else starts.clamp_max(track_cap)
        self._weights = weights.double() / weights.sum()
        self._offsets = cache.offsets
        self._scales = cache.scales / INT16_MAX
        self._num_sources = cache.audio.shape[0]
        # Every excerpt as a row of a strided view (S, C, positions, L): the gather copies
        # whole contiguous rows instead of indexing each sample.
        self._windows = cache.audio.unfold(2, self._span, 1)
        self._source_index = torch.arange(self._num_sources, device=device)[None, :, None]
        self._last_tracks: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.cache.device

    @property
    def track_probabilities(self) -> torch.Tensor:
        """How likely each track is to be drawn: float64 (tracks,), summing to 1."""
        return self._weights

    def _positions(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Track index and start within the track, both int64 (n, S)."""
        S, g = self._num_sources, self.generator
        track = torch.multinomial(self._weights, n * S, replacement=True, generator=g).view(n, S)
        u = torch.rand((n, S), generator=g, device=self.device, dtype=torch.float64)
        count = self._starts[track]
        start = (u * count).long().minimum(count - 1)
        cfg = self.augment
        if cfg.cross_song and cfg.cross_song_p > 0:
            cross = (torch.rand((n,), generator=g, device=self.device) < cfg.cross_song_p)[:, None]
            track = torch.where(cross, track, track[:, :1])
            start = torch.where(cross, start, start[:, :1])
            self._cross = cross[:, 0]
        else:
            track = track[:, :1].expand(n, S)
            start = start[:, :1].expand(n, S)
            self._cross = torch.zeros(n, dtype=torch.bool, device=self.device)
        return track, start

    def excerpts(
        self, track: torch.Tensor, start: torch.Tensor,
        channels: torch.Tensor | None = None, factor: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Gather float32 (n, S, C, L) excerpts (on CUDA in one indexing op of whole rows);
        L is the read length (longer than ``excerpt_samples`` with speed changes).

        Source s of item i comes from track ``track[i, s]`` at ``start[i, s]`` (int64 (n, S));
        its output channel c reads input channel ``channels[i, s, c]`` and is scaled by
        ``factor[i, s, c]`` (both (n, S, C); identity by default).
        """
        n, S = track.shape
        C = self.cache.audio.shape[1]
        if channels is None:
            channels = torch.arange(C, device=self.device).expand(n, S, C)
        scale = self._scales[track][:, :, None]
        factor = scale if factor is None else factor * scale
        position = (self._offsets[track] + start)[..., None]                       # (n, S, 1)
        if self._copy_rows_on_cpu:
            out = self._copy_rows(channels, position)
        else:
            out = self._windows[self._source_index, channels, position].to(torch.float32)  # (n, S, C, L)
        return out.mul_(factor[..., None])

    def _copy_rows(self, channels: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """One contiguous int16 -> float32 copy per excerpt row (float32 (n, S, C, L))."""
        n, S, C = channels.shape
        L, audio = self._span, self.cache.audio
        out = torch.empty((n, S, C, L), dtype=torch.float32, device=self.device)
        starts = position[..., 0].tolist()
        for i, row in enumerate(channels.tolist()):
            for s, chans in enumerate(row):
                p = starts[i][s]
                for c, ch in enumerate(chans):
                    out[i, s, c].copy_(audio[s, ch, p:p + L])
        return out

    def vocals_bandwidth_hz(self) -> torch.Tensor:
        """float32 (B,): the band limit of each vocals excerpt of the last ``sample()``
        (inf: full band), from the tracks' ``vocals_bandwidth_hz``."""
        bands = self.cache.vocals_bandwidth_hz
        if bands is None or self._last_tracks is None:
            return torch.full((self.batch_size,), float("inf"), device=self.device)
        return bands[self._last_tracks]

    def _draw(self, n: int) -> torch.Tensor:
        track, start = self._positions(n)
        self._drawn_tracks = track[:, 0].clone()        # the vocals' tracks (n,)
        C = self.cache.audio.shape[1]
        channels, factor = draw((n, self._num_sources, C), self.augment, self.generator, self.device)
        x = self.excerpts(track, start, channels, factor)
        return self._change_speed(x) if self.augment.speed_active else x

    def _change_speed(self, x: torch.Tensor) -> torch.Tensor:
        """(n, S, C, span) read excerpts -> (n, S, C, excerpt_samples), some items played
        faster or slower (one speed per source of a cross-song item, one per aligned item)."""
        cfg, g = self.augment, self.generator
        n, S, C, span = x.shape
        L = self.excerpt_samples
        hit = (torch.rand(n, generator=g, device=self.device) < cfg.speed_p).nonzero().squeeze(1)
        log_speed = (2 * torch.rand((n, S), generator=g, device=self.device, dtype=torch.float64) - 1)
        speed = torch.exp(log_speed * math.log(cfg.speed_max))
        speed = torch.where(self._cross[:, None], speed, speed[:, :1])
        out = x[..., 1:1 + L].clone()
        if hit.numel():
            rows = x[hit].reshape(-1, C, span)
            out[hit] = resample_rows(rows, speed[hit].reshape(-1), L).view(hit.numel(), S, C, L)
        return out

    def sample(self) -> torch.Tensor:
        """One batch of augmented sources, float32 (B, S, 2, L) on the cache's device."""
        x = self._draw(self.batch_size)
        tracks = self._drawn_tracks
        cfg = self.augment
        if cfg.silence_rejection:
            for _ in range(cfg.max_redraws):
                silent = mixture_db(x) < cfg.silence_threshold_db
                if not bool(silent.any()):
                    break
                rows = silent.nonzero().squeeze(1)
                x[rows] = self._draw(rows.numel())
                tracks[rows] = self._drawn_tracks
        self._last_tracks = tracks
        return x

    def __iter__(self):
        while True:
            yield self.sample()

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "excerpt_samples": self.excerpt_samples,
            "batch_size": self.batch_size,
            "augment": self.augment.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
