"""Live separation off the audio thread: a late block is covered, never a dropout.

A sound card's callback must return in time, whatever the model does. ``LiveSeparation``
splits the work in two:

- ``block(indata)`` runs in the audio callback. It hands the block to a worker thread and
  returns the stems of the block ``deadline_blocks`` earlier from a small ring of finished
  results. It never waits on the model: where that block's stems are not ready, it returns
  the *fallback* for it and counts the block as late.
- The worker thread runs ``RealtimeSeparator.process`` on every block in order (the
  separator's state stays continuous, so a late block does not disturb later ones) and
  publishes each result in the ring.

The fallback is the mixture itself, delayed by the separator's latency so that it stays
aligned with the stems, shared among the stems in the proportions of the last block that was
on time (each stem's least-squares share of the mixture, clipped to [0, 1] and normalised;
an even split before the first one or after silence). The stems of a late block therefore
still add up to the mixture: ``mix`` plays the delayed input exactly, one stem plays the
input scaled by that stem's recent share. Blocks that are on time are exactly
``process``'s output.

The price of never waiting is ``deadline_blocks x blocksize`` samples of added delay (5.8 ms
at the default 1 x 256): a block's compute has that long before its stems are played.

If the worker falls more than ``resync_blocks`` behind (a model slower than real time, a
long stall), it drops the backlog and restarts the separator at the newest block; the
blocks until the restarted separator's latency has passed are covered by the fallback.
The backlog, and so memory, stays bounded.
"""
from __future__ import annotations

import math
import queue
import threading

import numpy as np

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.separation.realtime import RealtimeSeparator


class LiveSeparation:
    """Block-wise separation with a deadline: ``block((channels, blocksize)) -> (outputs,
    channels, blocksize)``, the stems of the block ``deadline_blocks`` earlier (silence at
    first). ``start()`` / ``stop()`` run the worker thread; ``late`` counts covered blocks."""

    def __init__(self, separator: RealtimeSeparator, blocksize: int = 256, deadline_blocks: int = 1,
                 resync_blocks: int | None = None):
        if blocksize < 1:
            raise ConvSepError(f"--blocksize must be at least 1, got {blocksize}")
        if deadline_blocks < 1:
            raise ConvSepError(f"--deadline-blocks must be at least 1, got {deadline_blocks}")
        self.separator = separator
        self.blocksize = blocksize
        self.deadline_blocks = deadline_blocks
        # about a quarter of a second behind (and never less than the deadline plus a few)
        self.resync_blocks = resync_blocks if resync_blocks is not None else \
            max(deadline_blocks + 4, math.ceil(0.25 * SAMPLE_RATE / blocksize))
        outputs, channels = len(separator.outputs), separator.channels
        self._shape = (outputs, channels, blocksize)
        self._silence = np.zeros(self._shape, np.float32)
        self._even = np.full(outputs, 1.0 / outputs, np.float32)
        # the input of the last latency + (deadline + 1) blocks: the fallback's delayed mixture
        self._delay = separator.latency_samples + deadline_blocks * blocksize
        self._history = np.zeros((channels, self._delay + blocksize), np.float32)
        self._ring_size = deadline_blocks + 2
        self._reset_counts()

    def _reset_counts(self) -> None:
        self._ring: list[tuple[int, np.ndarray, np.ndarray] | None] = [None] * self._ring_size
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._gains = self._even
        self.blocks = 0            # blocks played (callbacks)
        self.late = 0              # of which covered by the fallback
        self.finished = 0          # blocks the worker has processed (or dropped)
        self.working = -1          # the block the worker is on
        self.resyncs = 0
        self._valid_from = 0       # the first block the (restarted) separator gives in full
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def added_latency_samples(self) -> int:
        return self.deadline_blocks * self.blocksize

    @property
    def latency_samples(self) -> int:
        """From an input sample to its stems in ``block``'s output."""
        return self.separator.latency_samples + self.added_latency_samples

    # -- the audio thread --------------------------------------------------------------
    def block(self, indata: np.ndarray) -> np.ndarray:
        """One callback: (channels, blocksize) float32 in -> (outputs, channels, blocksize)
        stems out. Never blocks on the worker."""
        if indata.shape != self._shape[1:]:
            raise ConvSepError(f"expected a block of shape {self._shape[1:]}, got {tuple(indata.shape)}")
        n = self.blocks
        block = np.array(indata, np.float32)                     # a copy the worker owns
        self._inbox.put((n, block))
        hist, b = self._history, self.blocksize
        hist[:, :-b] = hist[:, b:]
        hist[:, -b:] = block
        self.blocks = n + 1
        m = n - self.deadline_blocks                              # the block due now
        if m < 0:
            return self._silence
        entry = self._ring[m % self._ring_size]
        if entry is not None and entry[0] == m:
            self._gains = entry[2]
            return entry[1]
        self.late += 1
        mixture = hist[:, hist.shape[1] - b - self._delay:hist.shape[1] - self._delay]
        return self._gains[:, None, None] * mixture[None]

    # -- the worker thread -------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="convsep-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the worker (the blocks still queued are dropped); re-raises its error."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join()
            self._thread = None
        if self.error is not None:
            raise self.error

    def _work(self) -> None:
        try:
            while (item := self._inbox.get()) is not None:
                self.step(*item)
        except BaseException as exc:  # reported by stop(); late blocks cover the rest
            self.error = exc

    def step(self, k: int, block: np.ndarray) -> None:
        """Processes block k (the worker's loop body)."""
        if self.blocks - 1 - k > self.resync_blocks:
            k, block = self._resync(k, block)
        self.working = k
        stems = self.separator.process(block).numpy()
        if k >= self._valid_from:
            total = stems.sum(0)
            energy = float(np.vdot(total, total))
            shares = np.clip([np.vdot(s, total) / energy for s in stems], 0.0, 1.0).astype(np.float32) \
                if energy > 1e-12 else self._even
            gains = shares / shares.sum() if shares.sum() > 0 else self._even
            self._ring[k % self._ring_size] = (k, stems, gains)
        self.finished = k + 1

    def _resync(self, k: int, block: np.ndarray) -> tuple[int, np.ndarray]:
        """Drops the queued blocks but the newest and restarts the separator there."""
        try:
            while (queued := self._inbox.get_nowait()) is not None:
                k, block = queued
            self._inbox.put(None)             # stop() was called: keep its sentinel
        except queue.Empty:
            pass
        self.resyncs += 1
        self.separator.reset()
        self._valid_from = k + math.ceil(self.separator.latency_samples / self.blocksize)
        return k, block

    def summary(self) -> str:
        """One line for the end of a stream."""
        line = (f"live: {self.late} late blocks of {self.blocks} ({self.blocksize} samples each), "
                f"covered by the delayed mixture")
        if self.resyncs:
            line += f"; the separator restarted {self.resyncs} times after falling behind"
        return line
