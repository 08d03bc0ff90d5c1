"""Track-length signals kept on disk while a track is evaluated, read back in time ranges.

A 10-minute track of four stereo sources is 0.85 GB of float32 for the references and as
much again for each method's estimates. ``evaluate`` therefore writes the references and the
estimates, as they are decoded or produced, to unnamed temporary files in the output folder
(``O_TMPFILE``: nothing to clean up, even after a crash) and BSSEval, the oracles, the models
and the global SDR read them back range by range (``convsep.evaluate.bsseval.SignalReader``).
The values are the same float32 samples, so every score is the same as from arrays in memory.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import torch

from convsep.constants import SOURCES
from convsep.data import Track, load_sources
from convsep.data.tracks import check_lengths, to_stereo
from convsep.errors import ConvSepError

_ITEM = 4  # bytes per float32 sample
_READ_FRAMES = 1 << 18
CHUNK = 1 << 20  # samples per range when a whole signal is streamed


class SpilledSignal:
    """A float32 signal of shape (sources, samples, channels) in a temporary file.

    The file holds one row per (source, channel), each ``samples`` long, zero until written.
    ``write`` fills any time range; ``read`` returns (sources, n, channels) float32 on
    ``device``: a view of a (sources, channels, n) buffer, the layout of a (S, C, N) array.
    """

    def __init__(self, sources: int, samples: int, channels: int, directory: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu"):
        self.shape = (int(sources), int(samples), int(channels))
        self.device = torch.device(device)
        self.dtype = torch.float32
        try:
            self._file = tempfile.TemporaryFile(dir=directory)
            os.ftruncate(self._file.fileno(), sources * channels * samples * _ITEM)
        except OSError as exc:
            raise ConvSepError(f"cannot create a temporary file in {directory or tempfile.gettempdir()}: "
                               f"{exc.strerror or exc}") from None
        self._fd = self._file.fileno()

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SpilledSignal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- access -------------------------------------------------------------------------
    def _offset(self, source: int, channel: int, start: int) -> int:
        n_src, n, n_ch = self.shape
        return ((source * n_ch + channel) * n + start) * _ITEM

    def write(self, start: int, data: torch.Tensor | np.ndarray, sources: slice = slice(None),
              channels: slice = slice(None)) -> None:
        """Write (sources, channels, n) samples at ``[start, start + n)``; ``sources`` and
        ``channels`` pick the rows written (all by default)."""
        data = data.detach().cpu().numpy() if torch.is_tensor(data) else np.asarray(data)
        rows = range(*sources.indices(self.shape[0]))
        chans = range(*channels.indices(self.shape[2]))
        if data.ndim != 3 or data.shape[:2] != (len(rows), len(chans)):
            raise ValueError(f"expected ({len(rows)}, {len(chans)}, n) samples, got {data.shape}")
        if start < 0 or start + data.shape[2] > self.shape[1]:
            raise ValueError(f"samples [{start}, {start + data.shape[2]}) outside [0, {self.shape[1]})")
        for i, source in enumerate(rows):
            for j, channel in enumerate(chans):
                row = np.ascontiguousarray(data[i, j], dtype=np.float32)
                _write_all(self._fd, memoryview(row).cast("B"), self._offset(source, channel, start))

    def read(self, start: int, stop: int, sources: slice = slice(None)) -> torch.Tensor:
        """Samples ``[start, stop)`` -> (sources, stop - start, channels) float32."""
        rows = range(*sources.indices(self.shape[0]))
        n_ch = self.shape[2]
        start, stop = max(0, start), min(stop, self.shape[1])
        buffer = np.empty((len(rows), n_ch, max(0, stop - start)), dtype=np.float32)
        if stop > start:
            for i, source in enumerate(rows):
                for channel in range(n_ch):
                    _read_all(self._fd, memoryview(buffer[i, channel]).cast("B"),
                              self._offset(source, channel, start))
        return torch.from_numpy(buffer).to(self.device).permute(0, 2, 1)

    def source(self, index: int) -> "_SourceView":
        """The (1, samples, channels) signal of one source."""
        return _SourceView(self, index)

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, (sources, channels, n))`` over the whole signal, in order."""
        for start in range(0, self.shape[1], size):
            yield start, self.read(start, start + size).permute(0, 2, 1)

    def to_tensor(self) -> torch.Tensor:
        """The whole signal in memory: (sources, channels, samples) float32."""
        return self.read(0, self.shape[1]).permute(0, 2, 1)


class _SourceView:
    def __init__(self, signal: SpilledSignal, index: int):
        self._signal, self._index = signal, index
        self.shape = (1, *signal.shape[1:])
        self.device = signal.device

    def read(self, start: int, stop: int) -> torch.Tensor:
        return self._signal.read(start, stop, slice(self._index, self._index + 1))


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    try:
        while len(data):
            done = os.pwrite(fd, data, offset)
            data, offset = data[done:], offset + done
    except OSError as exc:
        raise ConvSepError(f"cannot write the evaluation's temporary file: {exc.strerror or exc}; "
                           "free space in the output folder") from None


def _read_all(fd: int, buffer: memoryview, offset: int) -> None:
    while len(buffer):
        done = os.preadv(fd, [buffer], offset)
        if done == 0:
            raise OSError("unexpected end of a temporary file")
        buffer, offset = buffer[done:], offset + done


# ------------------------------------------------------------------------------- loading
def _streamable(track: Track, rate: int) -> bool:
    """Files soundfile decodes, at ``rate``: read block by block without resampling."""
    if track.stem_ids or track.rate != rate:
        return False
    try:
        return all(sf.info(path).samplerate == rate for path in track.files.values())
    except RuntimeError:
        return False


def load_references(track: Track, rate: int, max_samples: int | None = None,
                    directory: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu") -> SpilledSignal:
    """The track's sources as ``load_sources(track, rate)`` decodes them (float32, stereo,
    ``SOURCES`` order, missing sources silent), cut to ``max_samples``, in a ``SpilledSignal``.

    Files that soundfile reads at ``rate`` are decoded block by block straight into the file;
    others (MUSDB18 STEMS, other rates) go through ``load_sources`` and memory once.
    """
    if not _streamable(track, rate):
        sources = load_sources(track, rate=rate)[..., :max_samples]
        spilled = SpilledSignal(sources.shape[0], sources.shape[2], sources.shape[1], directory, device)
        spilled.write(0, sources)
        return spilled
    lengths = {s: sf.info(path).frames for s, path in track.files.items()}
    check_lengths(track.name, lengths.values(), rate)
    length = max(lengths.values())
    if max_samples is not None:
        length = min(length, max_samples)
    spilled = SpilledSignal(len(SOURCES), length, 2, directory, device)
    try:
        for index, source in enumerate(SOURCES):
            if source not in track.files:
                continue
            path = track.files[source]
            try:
                with sf.SoundFile(path) as audio:
                    start = 0
                    while start < length:
                        block = audio.read(min(_READ_FRAMES, length - start), dtype="float32",
                                           always_2d=True)
                        if not len(block):
                            break
                        spilled.write(start, to_stereo(block.T)[None], slice(index, index + 1))
                        start += len(block)
            except RuntimeError as exc:
                raise ConvSepError(f"cannot read {path}: {exc}; check that it is an audio file") from None
    except BaseException:
        spilled.close()
        raise
    return spilled
