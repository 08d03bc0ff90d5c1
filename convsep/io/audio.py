"""Reading and writing audio: formats, resampling to the model rate, channel policy.

Everything returned here is float32 with shape (channels, samples). Files that soundfile
reads (wav, flac, ogg, mp3, aiff) are read in chunks, so a long file never has to be in
memory at once; other containers (m4a, aac, mp4, the mixture stream of a ``.stem.mp4``)
are decoded by ffmpeg through a pipe.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf
import soxr

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.io.filesafety import check_replaceable, commit_file, temporary_path, write_problem

MIN_RATE, MAX_RATE = 8000, 192000
SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}
FFMPEG_SUFFIXES = {".m4a", ".aac", ".mp4", ".m4b", ".opus", ".webm", ".wma", ".mkv", ".mka", ".ac3"}
AUDIO_SUFFIXES = SOUNDFILE_SUFFIXES | FFMPEG_SUFFIXES
WRITE_FORMATS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}
BIT_DEPTHS = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
# Decoded length may fall short of the declared one by encoder padding; more is truncation.
TRUNCATION_SLACK = 8192


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    rate: int
    channels: int
    frames: int | None  # None when the container does not say (some ffmpeg streams)
    decoder: str = "soundfile"   # or "ffmpeg"

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.rate


def is_audio_path(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def track_name(path: Path) -> str:
    """``song.stem.mp4`` -> ``song``; ``song.wav`` -> ``song``."""
    name = path.name
    for suffix in (".stem.mp4", ".stem.m4a"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ConvSepError(f"{path}: no such file")
    if path.is_dir():
        raise ConvSepError(f"{path}: is a directory, expected an audio file")
    if path.stat().st_size == 0:
        raise ConvSepError(f"{path}: file is empty (0 bytes)")


def _ffmpeg_tools() -> tuple[str, str]:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        raise ConvSepError("reading this format needs ffmpeg, which is not installed "
                           "(Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)")
    return ffmpeg, ffprobe


def _probe_ffmpeg(path: Path) -> AudioInfo:
    _, ffprobe = _ffmpeg_tools()
    cmd = [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,duration", "-of", "json", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    streams = json.loads(proc.stdout or "{}").get("streams", []) if proc.returncode == 0 else []
    if not streams:
        raise ConvSepError(f"{path}: not a readable audio file (ffmpeg found no audio stream)")
    stream = streams[0]
    rate, channels = int(stream.get("sample_rate", 0)), int(stream.get("channels", 0))
    duration = stream.get("duration")
    frames = int(round(float(duration) * rate)) if duration not in (None, "N/A") else None
    return AudioInfo(path, rate, channels, frames, decoder="ffmpeg")


def probe(path: str | os.PathLike) -> AudioInfo:
    """Rate, channels and length of an audio file, without decoding it."""
    path = Path(path)
    _check_file(path)
    try:
        with _quiet_decoder(path):
            info = sf.info(os.fsencode(path))    # bytes: any file name, UTF-8 or not
        result = AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if path.suffix.lower() in SOUNDFILE_SUFFIXES and path.suffix.lower() != ".mp3":
            raise ConvSepError(f"{path}: not a readable audio file ({_short(exc)})") from None
        result = _probe_ffmpeg(path)
    if result.decoder == "soundfile" and path.suffix.lower() == ".mp3":
        result = _mp3_decoder(result)
    if not MIN_RATE <= result.rate <= MAX_RATE:
        raise ConvSepError(f"{path}: sample rate {result.rate} Hz is outside the supported "
                           f"{MIN_RATE}-{MAX_RATE} Hz")
    if result.channels < 1:
        raise ConvSepError(f"{path}: the file has no audio channels")
    return result


def _mp3_decoder(info: AudioInfo) -> AudioInfo:
    """libsndfile takes the length of a VBR MP3 without a Xing header from its first frame
    and stops decoding there (a 20 s file reads as 3 s): when ffmpeg declares another
    length, ffmpeg decodes the file."""
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        return info
    try:
        other = _probe_ffmpeg(info.path)
    except ConvSepError:
        return info
    if other.frames and other.rate == info.rate and abs(other.frames - info.frames) > 0.02 * other.frames:
        return other
    return info


_MP3_BITRATES = {  # kbit/s by (MPEG-1?, layer)
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame_length(header: bytes) -> int | None:
    """The length in bytes of the MPEG audio frame this 4-byte header starts, or None."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    rate_index, bitrate_index = (header[2] >> 2) & 3, header[2] >> 4
    if version == 1 or layer_bits == 0 or rate_index == 3 or bitrate_index in (0, 15):
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrate = _MP3_BITRATES[mpeg1, layer][bitrate_index] * 1000
    rate = _MP3_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    return (144 if mpeg1 or layer == 2 else 72) * bitrate // rate + padding


def _mp3_cut_mid_frame(path: Path) -> bool:
    """Whether an MP3's last frame runs past the end of the file: the sign of a cut-off file
    that declares no length of its own (a CBR MP3 without a Xing header). Tags at the end
    and anything not understood count as not cut."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(10)
        pos = 0
        if head[:3] == b"ID3" and len(head) == 10:
            pos = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F)
            pos += 10 if head[5] & 0x10 else 0
        handle.seek(pos)
        window = handle.read(1 << 16)
        for offset in range(len(window) - 4):        # the first frame whose successor is a frame too
            length = _mp3_frame_length(window[offset:offset + 4])
            if length and _mp3_frame_length(window[offset + length:offset + length + 4]):
                pos += offset
                break
        else:
            return False
        while True:
            handle.seek(pos)
            header = handle.read(4)
            if not header:
                return False                           # ends on a frame boundary
            length = _mp3_frame_length(header)
            if length is None:
                return len(header) < 4 and header[:1] == b"\xff"   # cut inside a header; else tags
            if pos + length > size:
                return True
            pos += length


OGG_SUFFIXES = (".ogg", ".oga", ".opus")      # Ogg Vorbis, Ogg FLAC, Ogg Opus


def _ogg_ends_cleanly(path: Path) -> bool:
    """An Ogg stream's last page carries the end-of-stream flag; a cut-off file's does not."""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        tail = handle.read()
    last = tail.rfind(b"OggS")
    return last < 0 or last + 5 >= len(tail) or bool(tail[last + 5] & 0x04)


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


def _wav_shortfall(path: Path) -> str | None:
    """libsndfile silently reads a cut-off WAV as a shorter one: compare the size its
    ``data`` chunk declares with what the file holds; the problem in words, if any."""
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            return None
        size = path.stat().st_size
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            length = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                if header[:4] == b"RIFF" and length != 0xFFFFFFFF and handle.tell() + length > size:
                    return (f"truncated WAV file (declares {length} bytes of audio, "
                            f"holds {size - handle.tell()})")
                return None
            handle.seek(length + (length & 1), 1)


def _soundfile_chunks(path: Path, block: int, problem=None) -> Iterator[np.ndarray]:
    """``problem(message)`` hears of a truncated or damaged file (it may raise; decoding then
    stops where the damage starts); without it such a file is a ConvSepError."""
    def report(message: str) -> None:
        if problem is None:
            raise ConvSepError(f"{path}: {message}")
        problem(message)

    if path.suffix.lower() == ".wav":
        shortfall = _wav_shortfall(path)
        if shortfall:
            report(shortfall)
    done = 0
    try:
        with _quiet_decoder(path):
            handle = sf.SoundFile(os.fsencode(path))
        with handle:
            while True:
                with _quiet_decoder(path):
                    data = handle.read(block, dtype="float32", always_2d=True)
                if len(data) == 0:
                    return
                done += len(data)
                yield data.T
    except (sf.LibsndfileError, RuntimeError) as exc:
        report(f"corrupt or truncated audio ({_short(exc)})")
    # Going on (--allow-truncated): the block that failed, again in small pieces up to the damage.
    try:
        with _quiet_decoder(path):
            handle = sf.SoundFile(os.fsencode(path))
            handle.seek(done)
        with handle:
            while True:
                with _quiet_decoder(path):
                    data = handle.read(4096, dtype="float32", always_2d=True)
                if len(data) == 0:
                    return
                yield data.T
    except (sf.LibsndfileError, RuntimeError):
        return


@contextlib.contextmanager
def _quiet_decoder(path: Path):
    """libsndfile's MP3 decoder (mpg123) prints notes such as "Illegal Audio-MPEG-Header" or
    "Xing stream size off" straight to file descriptor 2, around our one-line errors: while
    it decodes an MP3, that descriptor points to /dev/null (damage is detected otherwise)."""
    if path.suffix.lower() != ".mp3":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        yield
        return
    try:
        os.dup2(null, 2)
        os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _ffmpeg_chunks(path: Path, info: AudioInfo, block: int,
                   problems: list[str] | None = None) -> Iterator[np.ndarray]:
    """Decodes with ffmpeg; decoder errors of a stream that still ends are appended to
    ``problems`` (a damaged or cut-off file), a failed decode raises ConvSepError."""
    ffmpeg, _ = _ffmpeg_tools()
    cmd = [ffmpeg, "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0",
           "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    errors = tempfile.TemporaryFile()     # a file, not a pipe: a chatty decoder cannot block
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
    frame_bytes = 4 * info.channels
    try:
        while True:
            raw = proc.stdout.read(block * frame_bytes)
            if not raw:
                break
            usable = len(raw) - len(raw) % frame_bytes
            yield np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, info.channels).T.copy()
        code = proc.wait()
        errors.seek(0)
        err = errors.read().decode(errors="replace").strip()
        if code != 0:
            raise ConvSepError(f"{path}: ffmpeg could not decode it ({err.splitlines()[-1] if err else 'error'})")
        if err and problems is not None:
            problems.append(f"decoder errors ({err.splitlines()[-1][:100]})")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        errors.close()


def rms(chunks: Iterable) -> float:
    """The RMS of every sample of ``chunks`` (numpy arrays or CPU tensors) taken together; 0
    when there are none or they are not finite."""
    total, count = 0.0, 0
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float64)
        total += float(np.square(chunk).sum())
        count += chunk.size
    return math.sqrt(total / count) if count and math.isfinite(total) else 0.0


def adapt_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Channel policy: (c, n) -> (channels, n). Mono is duplicated, stereo to mono is the
    mean, more than two channels keep the first two (the caller is warned once)."""
    have = audio.shape[0]
    if have == channels:
        return audio
    if channels == 1:
        return audio[:2].mean(axis=0, keepdims=True)
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    return audio[:channels]


class AudioReader:
    """Streams a file as float32 (channels, n) chunks at ``rate`` with the channel policy
    applied, refusing NaN/Inf samples. ``info`` describes the file as stored.

    A truncated file (fewer samples decode than the container declares, an Ogg stream
    without its end, decoder errors) is refused with ConvSepError once detected, or with
    ``allow_truncated`` read as far as it decodes with a warning."""

    def __init__(self, path: str | os.PathLike, rate: int = SAMPLE_RATE, channels: int = 2,
                 allow_truncated: bool = False):
        self.path = Path(path)
        self.info = probe(self.path)
        self.rate = rate
        self.channels = channels
        self.allow_truncated = allow_truncated
        if self.info.frames == 0:
            raise ConvSepError(f"{self.path}: the audio has no samples (zero length)")
        if self.info.channels > 2 and channels >= 2:
            warnings.warn(f"{self.path}: {self.info.channels} channels, using the first two", stacklevel=2)

    def _truncated(self, problem: str) -> None:
        if not self.allow_truncated:
            raise ConvSepError(f"{self.path}: truncated or damaged file: {problem}; "
                               "pass --allow-truncated to separate what decodes")
        warnings.warn(f"{self.path}: TRUNCATED OR DAMAGED: {problem}; using what decodes "
                      "(--allow-truncated)", stacklevel=3)

    def _sink(self, problems: list[str]):
        """Where the decoders report damage: refused at once, or (``allow_truncated``) kept
        for the warning at the end."""
        def problem(message: str) -> None:
            if not self.allow_truncated:
                self._truncated(message)
            problems.append(message)
        return problem

    def rms(self, block: int = 1 << 18) -> float:
        """The RMS of the whole file as the model gets it (the channel policy applied, at the
        file's rate), by one decoding pass."""
        problems: list[str] = []
        source = (_soundfile_chunks(self.path, block, self._sink(problems)) if self.info.decoder == "soundfile"
                  else _ffmpeg_chunks(self.path, self.info, block, problems))
        decoded = 0

        def counted() -> Iterator[np.ndarray]:
            nonlocal decoded
            for chunk in source:
                decoded += chunk.shape[1]
                yield adapt_channels(chunk, self.channels)

        value = rms(counted())
        # A cut-off file is refused here, before the separation starts, rather than at its end.
        declared = self.info.frames
        if declared and decoded < declared - max(TRUNCATION_SLACK, declared // 200):
            problems.append(f"{declared / self.info.rate:.1f} s declared, {decoded / self.info.rate:.1f} s decoded")
        if problems and not self.allow_truncated:
            self._truncated("; ".join(problems))
        return value

    def chunks(self, block: int = 1 << 18) -> Iterator[np.ndarray]:
        problems: list[str] = []
        if self.path.suffix.lower() in OGG_SUFFIXES and not _ogg_ends_cleanly(self.path):
            self._truncated("the Ogg stream stops before its end")
        source = (_soundfile_chunks(self.path, block, self._sink(problems)) if self.info.decoder == "soundfile"
                  else _ffmpeg_chunks(self.path, self.info, block, problems))
        decoded = 0
        resampler = None
        if self.info.rate != self.rate:
            resampler = soxr.ResampleStream(self.info.rate, self.rate, min(self.info.channels, 2),
                                            dtype="float32", quality="HQ")
        for chunk in source:
            chunk = chunk[:2]
            decoded += chunk.shape[1]
            if not np.isfinite(chunk).all():
                raise ConvSepError(f"{self.path}: the audio contains NaN or infinite samples")
            if resampler is not None:
                chunk = resampler.resample_chunk(np.ascontiguousarray(chunk.T)).T
            if chunk.shape[1]:
                yield adapt_channels(np.ascontiguousarray(chunk), self.channels)
        declared = self.info.frames
        if declared and decoded < declared - max(TRUNCATION_SLACK, declared // 200):
            problems.append(f"{declared / self.info.rate:.1f} s declared, {decoded / self.info.rate:.1f} s decoded")
        if not problems and self.path.suffix.lower() == ".mp3" and _mp3_cut_mid_frame(self.path):
            problems.append("the last MPEG frame is cut off")
        if problems:
            self._truncated("; ".join(problems))
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros((0, min(self.info.channels, 2)), "float32"), last=True).T
            if tail.shape[1]:
                yield adapt_channels(np.ascontiguousarray(tail), self.channels)


def read_audio(path: str | os.PathLike, rate: int = SAMPLE_RATE, channels: int = 2) -> np.ndarray:
    """The whole file as float32 (channels, samples) at ``rate``."""
    reader = AudioReader(path, rate, channels)
    parts = list(reader.chunks())
    if not parts:
        raise ConvSepError(f"{path}: the audio has no samples (zero length)")
    return np.concatenate(parts, axis=1)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """(channels, n) at rate_in -> (channels, m) at rate_out (soxr, high quality)."""
    if rate_in == rate_out:
        return audio
    if not MIN_RATE <= rate_in <= MAX_RATE:
        raise ConvSepError(f"sample rate {rate_in} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz")
    out = soxr.resample(np.ascontiguousarray(audio.T, dtype=np.float32), rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out.T)


def check_waveform(audio: np.ndarray, name: str = "input") -> None:
    """Refuses empty audio and NaN/Inf samples with a one-line message."""
    if audio.ndim != 2:
        raise ConvSepError(f"{name}: expected a (channels, samples) array, got shape {tuple(audio.shape)}")
    if audio.shape[1] == 0:
        raise ConvSepError(f"{name}: the audio has no samples (zero length)")
    if not np.isfinite(audio).all():
        raise ConvSepError(f"{name}: the audio contains NaN or infinite samples")


def to_pcm(audio: np.ndarray, bits: str) -> np.ndarray:
    """(channels, n) float -> the samples a file of ``bits`` stores, rounded to the nearest
    step and clipped: int16 for 16 bits, int32 (the top 24 bits) for 24, float32 for 32f.
    libsndfile's own conversion floors (every sample half a step low on average)."""
    if bits == "16":
        return np.clip(np.rint(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    if bits == "24":
        steps = np.clip(np.rint(np.asarray(audio, np.float64) * 8388608.0), -8388608, 8388607)
        return (steps.astype(np.int32) << 8)
    return np.asarray(audio, dtype=np.float32)


class AtomicAudioWriter:
    """Writes a file in chunks under a temporary name; ``commit()`` renames it into place,
    ``discard()`` removes it. Counts samples that clip in integer formats."""

    def __init__(self, path: Path, rate: int, channels: int, ext: str = "wav", bits: str = "16"):
        if ext not in WRITE_FORMATS:
            raise ConvSepError(f"unsupported output format {ext!r}; use one of {', '.join(WRITE_FORMATS)}")
        if bits not in BIT_DEPTHS:
            raise ConvSepError(f"unsupported bit depth {bits!r}; use one of {', '.join(BIT_DEPTHS)}")
        if ext == "flac" and bits == "32f":
            raise ConvSepError("flac cannot store float samples; use --bits 16 or 24, or --ext wav")
        self.path = Path(path)
        check_replaceable(self.path)
        self.tmp = temporary_path(self.path)
        self.float_output = bits == "32f" and ext != "mp3"
        self.bits = "32f" if ext == "mp3" else bits     # an MP3 encoder takes float samples
        self.clipped = 0
        subtype = "MPEG_LAYER_III" if ext == "mp3" else BIT_DEPTHS[bits]
        try:
            self._file = sf.SoundFile(os.fsencode(self.tmp), "w", samplerate=rate, channels=channels,
                                      format=WRITE_FORMATS[ext], subtype=subtype)
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            self.tmp.unlink(missing_ok=True)
            raise ConvSepError(f"{self.path}: cannot write ({write_problem(self.tmp, exc)})") from None

    def write(self, audio: np.ndarray) -> None:
        """audio: (channels, n) float."""
        if not self.float_output:
            self.clipped += int(np.count_nonzero(np.abs(audio) > 1.0))
        try:
            self._file.write(np.ascontiguousarray(to_pcm(audio, self.bits).T))
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            raise ConvSepError(f"{self.path}: cannot write ({write_problem(self.tmp, exc)})") from None

    def commit(self, overwrite: bool = True) -> None:
        """Moves the file into place; without ``overwrite`` an existing file is never replaced."""
        try:
            self._file.close()
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            raise ConvSepError(f"{self.path}: cannot write ({write_problem(self.tmp, exc)})") from None
        commit_file(self.tmp, self.path, overwrite)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.tmp.unlink(missing_ok=True)


def write_audio(path: str | os.PathLike, audio: np.ndarray, rate: int = SAMPLE_RATE,
                bits: str = "16", ext: str | None = None) -> int:
    """Writes (channels, samples) atomically; returns the number of clipped samples."""
    path = Path(path)
    writer = AtomicAudioWriter(path, rate, audio.shape[0], ext or path.suffix.lstrip(".").lower(), bits)
    try:
        writer.write(audio)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return writer.clipped
