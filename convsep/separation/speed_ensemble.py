"""Speed ensemble: a song separated as recorded and played at other speeds, the stems averaged.

Each pass at a speed other than 1 plays the mixture faster or slower (resampled: pitch and
tempo together, as a tape would), separates it, and plays its stems back at the original
speed; the passes' stems are averaged. The model hears each voice and instrument at several
pitches, and the errors that depend on the pitch partly cancel (test-time augmentation).

Played faster, a signal loses what lies above 22.05 kHz / speed; that part of the mixture
(and the resamplers' rounding) is shared equally among the model's sources, so the stems
still add up to the mixture. soxr's streaming resamplers compensate their own delay and do
not depend on the chunking, so streamed input gives the same stems as a whole signal.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import soxr
import torch

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.io.inputs import as_waveform

MIN_SPEED, MAX_SPEED = 0.5, 2.0


def check_speeds(speeds: Sequence[float] | str | None) -> tuple[float, ...] | None:
    """Distinct playback speeds in [0.5, 2] (a string: comma-separated) -> a tuple; None
    (not asked for) stays None."""
    if speeds is None:
        return None
    try:
        values = tuple(float(s) for s in (speeds.split(",") if isinstance(speeds, str) else speeds))
    except (TypeError, ValueError):
        values = ()
    if not values or len(set(values)) != len(values) or \
            not all(MIN_SPEED <= s <= MAX_SPEED for s in values):
        raise ConvSepError(f"speeds must be distinct numbers from {MIN_SPEED} to {MAX_SPEED}, "
                           f"e.g. 1,1.12,1.19; got {speeds!r}")
    return values


def speeds_label(speeds: Sequence[float], separator: str = ",") -> str:
    """(1.0, 1.12) -> "1,1.12": how results name a speed ensemble."""
    return separator.join(f"{s:g}" for s in speeds)


class _Pass:
    """One speed: the original chunks in, its separation's stems out on the original time axis.

    ``inbox`` holds the resampled chunks its separator has not read yet; ``stems`` (O, C, n)
    and ``mixture`` (C, n) hold pieces not yet handed on: its stems, and the mixture as the
    pass heard it, both played back at the original speed."""

    def __init__(self, speed: float, channels: int, outputs: int):
        self.speed, self.channels = speed, channels
        self.inbox: deque[np.ndarray] = deque()
        self.closed = False            # no more input will come
        self.finished = False          # the separator has produced everything
        self.stems: list[torch.Tensor] = []
        self.mixture: list[torch.Tensor] = []
        if speed != 1.0:
            def stream(rate_in: float, rate_out: float) -> soxr.ResampleStream:
                return soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality="HQ")

            self.down = stream(SAMPLE_RATE * speed, SAMPLE_RATE)
            self.mixture_up = stream(SAMPLE_RATE, SAMPLE_RATE * speed)
            self.stems_up = [stream(SAMPLE_RATE, SAMPLE_RATE * speed) for _ in range(outputs)]

    def _resample(self, stream: soxr.ResampleStream, x: np.ndarray | None) -> np.ndarray:
        """(C, n) through ``stream`` -> (C, m); None flushes it."""
        last = x is None
        data = np.zeros((self.channels, 0), np.float32) if x is None else x
        return np.ascontiguousarray(stream.resample_chunk(np.ascontiguousarray(data.T), last=last).T)

    def feed(self, chunk: np.ndarray | None) -> None:
        """An original chunk (C, n) float32, or None at the end of the input."""
        self.closed = chunk is None
        if self.speed != 1.0:
            chunk = self._resample(self.down, chunk)
            self.mixture.append(torch.from_numpy(self._resample(self.mixture_up, chunk)))
            if self.closed:
                self.mixture.append(torch.from_numpy(self._resample(self.mixture_up, None)))
        elif chunk is not None:
            self.mixture.append(torch.from_numpy(chunk))
        if chunk is not None:
            self.inbox.append(chunk)

    def take(self, piece: torch.Tensor | None) -> None:
        """The separator's next output (O, C, m), or None when it has ended."""
        self.finished = piece is None
        if self.speed != 1.0:
            stems = piece.numpy() if piece is not None else [None] * len(self.stems_up)
            piece = torch.from_numpy(np.stack([self._resample(up, x) for up, x in zip(self.stems_up, stems)]))
        if piece is not None:
            self.stems.append(piece)


def _length(pieces: list[torch.Tensor]) -> int:
    return sum(piece.shape[-1] for piece in pieces)


def _take(pieces: list[torch.Tensor], n: int) -> torch.Tensor:
    """The first ``n`` samples of the concatenated ``pieces`` (last axis), removed from them."""
    whole = torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]
    pieces[:] = [whole[..., n:]]
    return whole[..., :n]


def _fit(pieces: list[torch.Tensor], n: int) -> None:
    """Pads with zeros or cuts the concatenated ``pieces`` to ``n`` samples."""
    if not pieces or n == 0:
        pieces[:] = [piece[..., :0] for piece in pieces[:1]]
        return
    whole = torch.cat(pieces, dim=-1)
    if whole.shape[-1] < n:
        whole = torch.cat([whole, whole.new_zeros(*whole.shape[:-1], n - whole.shape[-1])], dim=-1)
    pieces[:] = [whole[..., :n]]


def ensemble_stream(separate: Callable[[Iterable[np.ndarray]], Iterator[torch.Tensor]],
                    chunks: Iterable[np.ndarray | torch.Tensor], speeds: Sequence[float], channels: int,
                    shares: Sequence[float]) -> Iterator[torch.Tensor]:
    """The stems of ``separate`` (chunks (C, n) -> stems (O, C, m), as many samples as it
    read) averaged over ``speeds``, as (O, C, m) float32 pieces that together have as many
    samples as ``chunks``. ``shares`` (O,): each output's part of the residual that
    resampling leaves (its number of sources over the model's)."""
    source = iter(chunks)
    passes = [_Pass(s, channels, len(shares)) for s in speeds]
    original: list[torch.Tensor] = []
    total = 0

    def pull() -> None:
        nonlocal total
        chunk = next(source, None)
        if chunk is not None:
            chunk = np.ascontiguousarray(as_waveform(chunk, "chunk", channels), dtype=np.float32)
            total += chunk.shape[1]
            original.append(torch.from_numpy(chunk))
        for p in passes:
            p.feed(chunk)

    def inputs(p: _Pass) -> Iterator[np.ndarray]:
        while True:
            if p.inbox:
                yield p.inbox.popleft()
            elif p.closed:
                return
            else:
                pull()

    outputs = [separate(inputs(p)) for p in passes]
    share = torch.tensor(shares, dtype=torch.float32)[:, None, None]
    emitted = 0
    while True:
        running = [p for p in passes if not p.finished]
        if running:
            slowest = min(running, key=lambda p: _length(p.stems))
            slowest.take(next(outputs[passes.index(slowest)], None))
        else:                                 # resampled lengths may differ from the input's by a sample
            for p in passes:
                _fit(p.stems, total - emitted)
                _fit(p.mixture, total - emitted)
        ready = min([total - emitted] + [min(_length(p.stems), _length(p.mixture)) for p in passes])
        if ready > 0:
            stems = sum(_take(p.stems, ready) for p in passes) / len(passes)
            heard = sum(_take(p.mixture, ready) for p in passes) / len(passes)
            residual = _take(original, ready) - heard
            emitted += ready
            yield stems + share * residual
        if not running:
            return
