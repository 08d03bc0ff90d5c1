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
from convsep.io.filesafety import (
    FolderClaim,
    inside,
    inside_real,
    remove_created_folders,
    remove_stale_temporaries,
    safe_component,
)
from convsep.separation.live import LiveSeparation
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
        remove_created_folders(created)
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


def _devices(sd) -> list[dict]:
    try:
        return [dict(d) for d in sd.query_devices()]
    except Exception as exc:  # PortAudio errors have no common base class
        raise ConvSepError(f"no sound device is usable: PortAudio cannot list them ({exc})") from None


def is_monitor(name: str) -> bool:
    """A PulseAudio / PipeWire monitor source ("Monitor of ..."): what an output plays."""
    return "monitor" in name.lower()


def match_device(devices: list[dict], spec: str | None, kind: str) -> int | None:
    """``--input-device`` / ``--output-device`` -> a device index (None: the default one).

    ``spec`` is an index, ``default``, or a name: an exact name (case aside) wins, else the
    one device whose name contains ``spec`` (case aside) and that has ``kind`` channels.
    Anything else is a one-line error that names the candidates."""
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [(i, d) for i, d in enumerate(devices) if d.get(key, 0) > 0]
    if not usable:
        raise ConvSepError(f"no sound {kind} device exists on this machine (see convsep stream --list-devices)")
    if spec is None or spec.strip().lower() in ("", "default"):
        return None
    spec = spec.strip()
    if spec.isdigit():
        index = int(spec)
        if index not in dict(usable):
            raise ConvSepError(f"--{kind}-device {index}: no {kind} device has that index "
                               f"(see convsep stream --list-devices)")
        return index
    want = spec.lower()
    exact = [i for i, d in usable if str(d["name"]).lower() == want]
    found = exact or [i for i, d in usable if want in str(d["name"]).lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConvSepError(f"--{kind}-device {spec!r}: no {kind} device's name contains it "
                           f"(see convsep stream --list-devices)")
    names = "; ".join(f"{i}: {devices[i]['name']}" for i in found)
    raise ConvSepError(f"--{kind}-device {spec!r} matches {len(found)} {kind} devices ({names}); "
                       f"give more of the name or the index")


def live_devices(input_device: str | None, output_device: str | None) -> tuple[int | None, int | None]:
    """Checks that live audio can run (sounddevice, PortAudio, matching devices) before a
    model is loaded: the (input, output) device indices, None for the defaults."""
    devices = _devices(_sounddevice())
    return match_device(devices, input_device, "input"), match_device(devices, output_device, "output")


def list_devices(report: Callable[[str], None] = print) -> int:
    """Prints the sound devices (index, channels in/out, host API, name), marking the
    defaults and the monitor sources; returns how many there are."""
    sd = _sounddevice()
    devices = _devices(sd)
    try:
        apis = [a["name"] for a in sd.query_hostapis()]
    except Exception:  # PortAudio errors have no common base class
        apis = []
    try:
        default_in, default_out = (int(x) for x in sd.default.device)
    except Exception:
        default_in = default_out = -1
    if not devices:
        report("no sound devices (PortAudio lists none)")
        return 0
    report("index  in  out  host API     name")
    for i, d in enumerate(devices):
        api = d.get("hostapi")
        marks = [m for m, on in (("default input", i == default_in), ("default output", i == default_out),
                                 ("monitor: what an output plays", is_monitor(str(d["name"])))) if on]
        api_name = apis[api] if isinstance(api, int) and 0 <= api < len(apis) else ""
        report(f"{i:>5}  {d.get('max_input_channels', 0):>2}  {d.get('max_output_channels', 0):>3}  "
               f"{api_name[:11]:<11}  {d['name']}" + (f"  [{', '.join(marks)}]" if marks else ""))
    return len(devices)


def run_live(separator: RealtimeSeparator, input_device: str | None, output_device: str | None,
             play: str, blocksize: int = 256, seconds: float | None = None,
             report: Callable[[str], None] = print, deadline_blocks: int = 1) -> dict:
    """Separates the input device's audio and plays the stem ``play`` (or ``mix``: all stems)
    on the output device, ``blocksize`` samples per callback, until ``seconds`` pass or
    Ctrl-C. The model runs on a worker thread (``LiveSeparation``): a block whose stems are
    not ready ``deadline_blocks`` callbacks later is covered by the delayed mixture and
    counted. Returns callbacks, late blocks, underruns (PortAudio's flags), the slowest
    callback and the ``LiveSeparation`` summary line."""
    sd = _sounddevice()
    names = separator.output_names
    if play != "mix" and play not in names:
        raise ConvSepError(f"--play must be one of {', '.join(names + ['mix'])}, got {play!r}")
    index = None if play == "mix" else names.index(play)
    chosen = live_devices(input_device, output_device)
    live = LiveSeparation(separator, blocksize, deadline_blocks)
    stats: dict = {"callbacks": 0, "late": 0, "underruns": 0, "slowest_ms": 0.0}
    events: queue.Queue = queue.Queue()

    def callback(indata, outdata, frames, _time, status):
        started = time.perf_counter()
        if status.input_underflow or status.output_underflow or status.input_overflow:
            stats["underruns"] += 1
        try:
            stems = live.block(indata.T)
        except ConvSepError as exc:
            events.put(exc)
            raise sd.CallbackAbort from None
        outdata[:] = (stems.sum(0) if index is None else stems[index]).T
        stats["callbacks"] += 1
        stats["slowest_ms"] = max(stats["slowest_ms"], 1000 * (time.perf_counter() - started))

    separator.reset()
    live.start()
    try:
        with sd.Stream(device=chosen, samplerate=SAMPLE_RATE, blocksize=blocksize,
                       channels=separator.channels, dtype="float32", latency="low", callback=callback) as stream:
            report(f"live: stems {live.latency_samples / SAMPLE_RATE * 1000:.1f} ms after their input "
                   f"(model {separator.latency_seconds * 1000:.1f} ms + compute deadline "
                   f"{live.added_latency_samples / SAMPLE_RATE * 1000:.1f} ms), device latency in "
                   f"{stream.latency[0] * 1000:.1f} ms, out {stream.latency[1] * 1000:.1f} ms; "
                   f"playing {play}; Ctrl-C stops")
            deadline = None if seconds is None else time.monotonic() + seconds
            while stream.active and live.error is None and (deadline is None or time.monotonic() < deadline):
                try:
                    raise events.get(timeout=0.1)
                except queue.Empty:
                    pass
    except KeyboardInterrupt:
        pass
    except sd.PortAudioError as exc:
        raise ConvSepError(f"sound device error: {exc}") from None
    finally:
        try:
            live.stop()
        finally:
            stats["late"] = live.late
            stats["summary"] = live.summary()
    return stats


def stdin_chunks(fmt: str, rate: int, channels: int, frames_per_read: int = 256) -> Iterator[np.ndarray]:
    check_pcm(fmt, rate, channels)
    return read_pcm(sys.stdin.buffer, fmt, channels, frames_per_read)
