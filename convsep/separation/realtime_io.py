"""Where real-time stems come from and go to: files, raw PCM pipes and sound devices.

Raw PCM is interleaved little-endian ``f32`` (float32) or ``s16`` (16-bit integer) frames.
Stems on a pipe are interleaved as stem 0 channel 0, stem 0 channel 1, stem 1 channel 0, ...
(outputs x channels values per frame), in the input's format and rate.
"""
from __future__ import annotations

import os
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np
import soxr

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.io.audio import MAX_RATE, MIN_RATE, AtomicAudioWriter, AudioReader, adapt_channels, probe
from convsep.io.filesafety import FolderClaim, inside, inside_real, remove_stale_temporaries, safe_component
from convsep.separation.realtime import RealtimeSeparator

PCM_FORMATS: dict[str, np.dtype] = {"f32": np.dtype("<f4"), "s16": np.dtype("<i2")}


def check_pcm(fmt: str, rate: int, channels: int) -> None:
    if fmt not in PCM_FORMATS:
        raise ConvSepError(f"--format must be one of {', '.join(PCM_FORMATS)}, got {fmt!r}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ConvSepError(f"--rate {rate} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz")
    if channels not in (1, 2):
        raise ConvSepError(f"--channels must be 1 or 2, got {channels}")


def decode_pcm(data: bytes, fmt: str, channels: int) -> np.ndarray:
    """Whole frames of raw PCM -> float32 (channels, n)."""
    values = np.frombuffer(data, PCM_FORMATS[fmt]).reshape(-1, channels).T
    if fmt == "s16":
        return values.astype(np.float32) / 32768.0
    return np.ascontiguousarray(values, dtype=np.float32)


def encode_pcm(audio: np.ndarray, fmt: str) -> bytes:
    """(channels, n) float -> interleaved raw PCM (s16 clips at full scale)."""
    frames = np.ascontiguousarray(audio.T)
    if fmt == "s16":
        return np.clip(np.round(frames * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return frames.astype("<f4").tobytes()


def read_pcm(stream: BinaryIO, fmt: str, channels: int, frames_per_read: int = 256) -> Iterator[np.ndarray]:
    """Raw PCM from a binary stream (a pipe: whatever has arrived, up to ``frames_per_read``
    frames per read) -> float32 (channels, n) chunks; a trailing partial frame is an error."""
    frame_bytes = PCM_FORMATS[fmt].itemsize * channels
    fileno = stream.fileno() if hasattr(stream, "fileno") else None
    carry = b""
    while True:
        try:
            data = os.read(fileno, frames_per_read * frame_bytes) if fileno is not None \
                else stream.read(frames_per_read * frame_bytes)
        except (OSError, ValueError):
            data = stream.read(frames_per_read * frame_bytes)
        if not data:
            break
        data = carry + data
        whole = len(data) - len(data) % frame_bytes
        carry = data[whole:]
        if whole:
            audio = decode_pcm(data[:whole], fmt, channels)
            if not np.isfinite(audio).all():
                raise ConvSepError("standard input contains NaN or infinite samples")
            yield audio
    if carry:
        raise ConvSepError(f"standard input ended inside a frame ({len(carry)} stray bytes); "
                           f"check --format and --channels")


class _Resampled:
    """A soxr stream over chunks (channels, n) -> (channels, m), flushed at the end."""

    def __init__(self, rate_in: int, rate_out: int, channels: int):
        self.stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality="HQ") \
            if rate_in != rate_out else None
        self.channels = channels

    def __call__(self, chunk: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return chunk
        return np.ascontiguousarray(self.stream.resample_chunk(np.ascontiguousarray(chunk.T), last=last).T)

    def chunks(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for chunk in chunks:
            out = self(chunk)
            if out.shape[1]:
                yield out
        if self.stream is not None:
            tail = self(np.zeros((self.channels, 0), np.float32), last=True)
            if tail.shape[1]:
                yield tail


@dataclass
class StreamResult:
    samples: int              # input samples (at the input's rate)
    rate: int
    elapsed: float
    outputs: dict[str, Path] | None = None
    clipped: dict[str, int] | None = None


def _exact_length(chunks: Iterable[np.ndarray], length: Callable[[], int]) -> Iterator[np.ndarray]:
    """(outputs, channels, m) chunks trimmed or zero-padded to ``length()`` samples (known
    once the chunks end): resampling there and back may be off by a sample."""
    written = 0
    pending = None
    for chunk in chunks:
        if pending is not None:
            written += pending.shape[-1]
            yield pending
        pending = chunk
    total = length()
    if pending is not None:
        pending = pending[..., :max(0, total - written)]
        written += pending.shape[-1]
        yield pending
    if written < total and pending is not None:
        yield np.zeros((*pending.shape[:-1], total - written), np.float32)


def separate_stream(separator: RealtimeSeparator, chunks: Iterable[np.ndarray], rate: int,
                    channels: int) -> tuple[Iterator[np.ndarray], Callable[[], int]]:
    """Input chunks (channels, n) at ``rate`` -> aligned stem chunks (outputs, model
    channels, m) at ``rate`` with as many samples as the input, and a function giving the
    input's length once the chunks are consumed."""
    count = [0]

    def counted() -> Iterator[np.ndarray]:
        for chunk in chunks:
            count[0] += chunk.shape[1]
            yield adapt_channels(chunk, separator.channels)

    into = _Resampled(rate, SAMPLE_RATE, separator.channels)
    back = [_Resampled(SAMPLE_RATE, rate, separator.channels) for _ in separator.outputs]

    def stems() -> Iterator[np.ndarray]:
        for out in separator.aligned(into.chunks(counted())):
            yield np.stack([b(o) for b, o in zip(back, out.numpy())]) if rate != SAMPLE_RATE else out.numpy()
        if rate != SAMPLE_RATE:
            yield np.stack([b(np.zeros((separator.channels, 0), np.float32), last=True) for b in back])

    return _exact_length(stems(), lambda: count[0]), lambda: count[0]


def stream_to_files(separator: RealtimeSeparator, chunks: Iterable[np.ndarray], rate: int, channels: int,
                    outdir: Path, track: str, ext: str = "wav", bits: str = "16",
                    overwrite: bool = False) -> StreamResult:
    """Writes ``outdir/<track>/<stem>.<ext>`` aligned with the input (same rate and length);
    files appear only when complete. As ``separate_file``: the track name is one file name,
    the folder is claimed for the run, and without ``overwrite`` nothing existing is replaced."""
    started = time.perf_counter()
    outdir = Path(outdir)
    folder = outdir / safe_component(track, "track name")
    targets = {name: inside(outdir, folder / f"{safe_component(name, 'stem name')}.{ext}")
               for name in separator.output_names}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not overwrite:
        raise ConvSepError(f"{existing[0]} exists; pass --overwrite to replace it")
    created = [p for p in (folder, *folder.parents) if not p.exists()]   # removed again on failure
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvSepError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    writers: dict[str, AtomicAudioWriter] = {}
    committed: list[Path] = []
    claim = FolderClaim(folder)
    try:
        inside_real(outdir, folder)
        claim.acquire()
        remove_stale_temporaries(folder)
        existing = [str(t) for t in targets.values() if t.exists()]   # again, now that the folder is ours
        if existing and not overwrite:
            raise ConvSepError(f"{existing[0]} exists; pass --overwrite to replace it")
        for name, target in targets.items():
            writers[name] = AtomicAudioWriter(target, rate, separator.channels, ext, bits)
        stems, length = separate_stream(separator, chunks, rate, channels)
        for out in stems:
            for writer, stem in zip(writers.values(), out):
                writer.write(stem)
        if length() == 0:
            raise ConvSepError("the input has no samples")
        for writer in writers.values():
            writer.commit(overwrite)
            committed.append(writer.path)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        if not overwrite:   # files this run created: nothing existed under these names
            for done in committed:
                done.unlink(missing_ok=True)
        claim.release()
        for made in created:                  # innermost first; only if still empty
            try:
                made.rmdir()
            except OSError:
                break
        raise
    claim.release()
    return StreamResult(length(), rate, time.perf_counter() - started, targets,
                        {name: w.clipped for name, w in writers.items()})


def stream_to_pipe(separator: RealtimeSeparator, chunks: Iterable[np.ndarray], rate: int, channels: int,
                   out: BinaryIO, fmt: str) -> StreamResult:
    """Writes interleaved raw PCM stems (see the module docstring) as they are ready."""
    started = time.perf_counter()
    stems, length = separate_stream(separator, chunks, rate, channels)
    try:
        for chunk in stems:
            out.write(encode_pcm(chunk.reshape(-1, chunk.shape[-1]), fmt))
            out.flush()
    except BrokenPipeError:
        raise ConvSepError("standard output was closed before the end of the stream") from None
    return StreamResult(length(), rate, time.perf_counter() - started)


def file_chunks(path: Path, channels: int, block: int = 1 << 14) -> tuple[Iterator[np.ndarray], int]:
    """A file's chunks (channels, n) at its own rate (stems are written at the input's rate,
    so they have its length), and that rate."""
    rate = int(probe(path).rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ConvSepError(f"{path}: sample rate {rate} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz")
    return AudioReader(path, rate, channels).chunks(block), rate


# -- live audio ---------------------------------------------------------------------------
def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise ConvSepError("live audio needs the sounddevice package: pip install sounddevice") from None
    except OSError:
        raise ConvSepError("live audio needs the PortAudio library, which is not installed "
                           "(Debian/Ubuntu: apt-get install libportaudio2)") from None
    return sounddevice


def _device(sd, spec: str | None, kind: str):
    """A device index or name -> what sounddevice takes; checks that one exists."""
    try:
        devices = sd.query_devices()
    except Exception as exc:  # PortAudio errors have no common base class
        raise ConvSepError(f"no sound device is usable: PortAudio cannot list them ({exc})") from None
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [d for d in devices if d[key] > 0]
    if not usable:
        raise ConvSepError(f"no sound {kind} device exists on this machine (see `python -m sounddevice`)")
    if spec in (None, "", "default"):
        return None
    choice = int(spec) if spec.isdigit() else spec
    try:
        sd.query_devices(choice, kind)
    except (ValueError, sd.PortAudioError) as exc:
        raise ConvSepError(f"--{kind}-device {spec}: {exc}") from None
    return choice


def run_live(separator: RealtimeSeparator, input_device: str | None, output_device: str | None,
             play: str, blocksize: int = 256, seconds: float | None = None,
             report: Callable[[str], None] = print) -> dict:
    """Separates the input device's audio and plays the stem ``play`` (or ``mix``: all stems)
    on the output device, ``blocksize`` samples per callback, until ``seconds`` pass or
    Ctrl-C. Returns callbacks, underruns (PortAudio's flags) and the slowest callback."""
    sd = _sounddevice()
    names = separator.output_names
    if play != "mix" and play not in names:
        raise ConvSepError(f"--play must be one of {', '.join(names + ['mix'])}, got {play!r}")
    index = None if play == "mix" else names.index(play)
    devices = (_device(sd, input_device, "input"), _device(sd, output_device, "output"))
    channels = separator.channels
    stats = {"callbacks": 0, "underruns": 0, "slowest_ms": 0.0}
    events: queue.Queue = queue.Queue()

    def callback(indata, outdata, frames, _time, status):
        started = time.perf_counter()
        if status.input_underflow or status.output_underflow or status.input_overflow:
            stats["underruns"] += 1
        try:
            stems = separator.process(np.ascontiguousarray(indata.T)).numpy()
        except ConvSepError as exc:
            events.put(exc)
            raise sd.CallbackAbort from None
        out = stems.sum(0) if index is None else stems[index]
        outdata[:] = out.T
        stats["callbacks"] += 1
        stats["slowest_ms"] = max(stats["slowest_ms"], 1000 * (time.perf_counter() - started))

    try:
        with sd.Stream(device=devices, samplerate=SAMPLE_RATE, blocksize=blocksize,
                       channels=channels, dtype="float32", latency="low", callback=callback) as stream:
            report(f"live: device latency in {stream.latency[0] * 1000:.1f} ms, out "
                   f"{stream.latency[1] * 1000:.1f} ms; playing {play}; Ctrl-C stops")
            deadline = None if seconds is None else time.monotonic() + seconds
            while stream.active and (deadline is None or time.monotonic() < deadline):
                try:
                    raise events.get(timeout=0.1)
                except queue.Empty:
                    pass
    except KeyboardInterrupt:
        pass
    except sd.PortAudioError as exc:
        raise ConvSepError(f"sound device error: {exc}") from None
    return stats


def stdin_chunks(fmt: str, rate: int, channels: int, frames_per_read: int = 256) -> Iterator[np.ndarray]:
    check_pcm(fmt, rate, channels)
    return read_pcm(sys.stdin.buffer, fmt, channels, frames_per_read)
