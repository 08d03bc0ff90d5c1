"""The Python API: ``convsep.separate`` for arrays and ``convsep.separate_file`` for files."""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import soxr
import torch
from tqdm import tqdm

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.io.audio import AtomicAudioWriter, AudioReader, track_name
from convsep.io.filesafety import (
    FolderClaim,
    describe_os_error,
    inside,
    inside_real,
    remove_created_folders,
    remove_stale_folders,
    remove_stale_temporaries,
    safe_component,
)
from convsep.io.inputs import as_waveform, check_rate
from convsep.io.nistems import NI_STEMS, STEM_SUFFIX, check_sources, write_stem_mp4
from convsep.separation.separator import Separator
from convsep.separation.stems import plan_outputs

MIN_SAMPLES = 1024  # one STFT window (23 ms at 44.1 kHz): shorter input is refused
STEM_MP4 = STEM_SUFFIX.lstrip(".")    # ext="stem.mp4": OUTDIR/<track>.stem.mp4 (NI Stems, for DJs)
SCRATCH = ".convsep-stems"            # the stems' temporary folder while a .stem.mp4 is built


def get_separator(model: str | os.PathLike | Separator | None = None, device: str | None = "cpu",
                  stems: Sequence[str] | None = None, two_stems: str | None = None,
                  **kwargs) -> Separator:
    """A Separator for a model file, a bundled model name, or None (the default model),
    writing the requested stems."""
    separator = model if isinstance(model, Separator) else Separator.load(model, device=device, **kwargs)
    if stems or two_stems:
        separator = copy.copy(separator)
        separator.outputs = plan_outputs(separator.sources, stems, two_stems)
    return separator


def separate(waveform: np.ndarray | torch.Tensor, rate: int = SAMPLE_RATE,
             model: str | os.PathLike | Separator | None = None, device: str | None = "cpu",
             stems: Sequence[str] | None = None, two_stems: str | None = None) -> dict[str, torch.Tensor]:
    """(channels, samples) or (samples,) at ``rate`` -> {stem: (channels, samples)} at ``rate``.

    Float samples in [-1, 1]; int16/int32/int8 PCM is scaled by its full range and uint8 is
    8-bit PCM; other dtypes, transposed (samples, channels) arrays and non-integer rates are
    refused with ConvSepError (see convsep.io.inputs)."""
    waveform = as_waveform(waveform, "waveform")   # dtype, shape and NaN checks
    rate = check_rate(rate)
    separator = get_separator(model, device, stems, two_stems)
    length = waveform.shape[-1]
    if length < MIN_SAMPLES * rate / SAMPLE_RATE:
        raise ConvSepError(f"waveform too short to separate: {length} samples "
                           f"(needs at least {MIN_SAMPLES} samples at 44.1 kHz, 23 ms)")
    return separator(waveform, rate)


@dataclass
class FileResult:
    input: Path
    stems: dict[str, Path]
    seconds: float           # duration of the input
    elapsed: float           # wall-clock seconds to decode, separate and write
    clipped: dict[str, int] = field(default_factory=dict)


def output_paths(path: Path, outdir: Path, names: Sequence[str], ext: str,
                 track: str | None = None) -> dict[str, Path]:
    """{stem: OUTDIR/<track>/<stem>.<ext>}, each checked to lie inside ``outdir``; for
    ``ext="stem.mp4"`` every stem maps to the one file ``OUTDIR/<track>.stem.mp4``."""
    name = safe_component(track or track_name(Path(path)), "track name")
    if ext == STEM_MP4:
        target = inside(outdir, Path(outdir) / safe_component(name + STEM_SUFFIX, "track name"))
        return {stem: target for stem in names}
    folder = Path(outdir) / name
    return {name: inside(outdir, folder / f"{safe_component(name, 'stem name')}.{ext}") for name in names}


class _Samples:
    """A stream of (channels, n) chunks read by sample counts: the input at its own rate,
    beside the stems resampled to it."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = np.zeros((0, 0), np.float32)

    def take(self, n: int) -> np.ndarray:
        parts, have = [self._buffer], self._buffer.shape[-1]
        while have < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += chunk.shape[-1]
        joined = np.concatenate([p for p in parts if p.size], axis=-1) if have else self._buffer
        self._buffer = joined[:, n:]
        return joined[:, :n]

    def correct(self, stems: np.ndarray, shares: np.ndarray) -> None:
        """Adds each stem its share of (input - sum of the stems), in place, as far as the
        input goes: the stems then add up to the input."""
        x = self.take(stems.shape[-1])
        n = x.shape[-1]
        if n:
            stems[..., :n] += shares[:, None, None] * (x - stems[..., :n].sum(0))


def separate_file(path: str | os.PathLike, outdir: str | os.PathLike = "separated",
                  model: str | os.PathLike | Separator | None = None, device: str | None = "cpu",
                  stems: Sequence[str] | None = None, two_stems: str | None = None,
                  ext: str = "wav", bits: str = "16", keep_rate: bool = False,
                  overwrite: bool = False, progress: bool = True,
                  track: str | None = None, allow_truncated: bool = False) -> FileResult:
    """Separates one file into ``outdir/<track>/<stem>.<ext>``.

    ``track`` names the output folder (default: the file name without its extension).
    Decoding, separation and writing are streamed, so memory does not grow with the file's
    length. Stems are written under temporary names and renamed at the end: an error leaves
    no partial output and never touches existing files unless ``overwrite``. The track folder
    is claimed for the run (another run writing it at the same time is refused), and stale
    temporaries of dead runs in it are removed. A truncated compressed input is refused unless
    ``allow_truncated`` (then it is separated as far as it decodes, with a warning).

    ``ext="stem.mp4"`` writes ``outdir/<track>.stem.mp4`` instead, NI's Stems format for DJ
    software (the mixture and drums, bass, other, vocals as AAC; see convsep.io.nistems).
    """
    started = time.perf_counter()
    path = Path(path)
    separator = get_separator(model, device, stems, two_stems)
    reader = AudioReader(path, SAMPLE_RATE, separator.config.channels, allow_truncated=allow_truncated)
    stem_mp4 = ext == STEM_MP4
    if stem_mp4:
        check_sources(separator.output_names)
    targets = output_paths(path, Path(outdir), separator.output_names, ext, track)
    folder = next(iter(targets.values())).parent
    if any(t.resolve() == path.resolve() for t in targets.values()):
        raise ConvSepError(f"{path}: output would overwrite the input; choose another -o")
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not overwrite:
        raise ConvSepError(f"{existing[0]} exists; pass --overwrite to replace it")
    out_rate = reader.info.rate if keep_rate and not stem_mp4 else SAMPLE_RATE
    created = [p for p in (folder, *folder.parents) if not p.exists()]   # removed again on failure
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvSepError(f"{folder}: cannot create the output folder ({describe_os_error(exc).split(': ')[-1]})") from None
    channels = separator.config.channels
    writers: dict[str, AtomicAudioWriter] = {}
    committed: list[Path] = []
    # A .stem.mp4 is one file in OUTDIR, shared by every track: runs (and --jobs workers) do
    # not claim OUTDIR; the file itself is committed without replacing anything.
    claim = FolderClaim(folder)
    scratch: Path | None = None
    try:
        if not stem_mp4:
            inside_real(outdir, folder)          # not a link planted at OUTDIR/<track>
            claim.acquire()
        remove_stale_temporaries(folder)
        existing = [str(t) for t in targets.values() if t.exists()]   # again, now that the folder is ours
        if existing and not overwrite:
            raise ConvSepError(f"{existing[0]} exists; pass --overwrite to replace it")
        if stem_mp4:   # float stems in a scratch folder, encoded into the one file at the end
            remove_stale_folders(folder, SCRATCH)
            scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH}-{os.getpid()}-", dir=folder))
        for name, target in targets.items():
            if scratch is not None:
                writers[name] = AtomicAudioWriter(scratch / f"{name}.wav", out_rate, channels, "wav", "32f")
            else:
                writers[name] = AtomicAudioWriter(target, out_rate, channels, ext, bits)
        resamplers = {name: soxr.ResampleStream(SAMPLE_RATE, out_rate, channels, dtype="float32", quality="HQ")
                      for name in targets} if out_rate != SAMPLE_RATE else None
        # --keep-rate: stems resampled one by one add up to the input resampled twice, not to
        # the input; the input as decoded at its own rate corrects them (by the outputs' shares
        # of the sources, when the outputs cover every source)
        native = None
        if resamplers and sorted(i for o in separator.outputs for i in o.sources) == list(range(len(separator.sources))):
            native = _Samples(AudioReader(path, out_rate, channels, allow_truncated=allow_truncated).chunks())
            shares = np.array([len(o.sources) / len(separator.sources) for o in separator.outputs], np.float32)
        total = 0
        bar = tqdm(total=reader.info.seconds, unit="s", disable=not progress, leave=False,
                   desc=track_name(path)[:30], bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")
        with bar:
            gain = separator.gain_for_rms(reader.rms()) if separator.input_level_db is not None else 1.0
            for chunk in separator.stream(reader.chunks(), gain):
                total += chunk.shape[-1]
                pieces = chunk.numpy()
                if resamplers:
                    pieces = np.stack([resamplers[name].resample_chunk(np.ascontiguousarray(piece.T)).T
                                       for name, piece in zip(writers, pieces)])
                    if native is not None:
                        native.correct(pieces, shares)
                for writer, piece in zip(writers.values(), pieces):
                    writer.write(piece)
                bar.update(chunk.shape[-1] / SAMPLE_RATE)
        if total < MIN_SAMPLES:
            raise ConvSepError(f"{path}: too short to separate: {total} samples at 44.1 kHz "
                               f"(needs at least {MIN_SAMPLES}, 23 ms)")
        if resamplers:
            tails = np.stack([resamplers[name].resample_chunk(np.zeros((0, channels), "float32"), last=True).T
                              for name in writers])
            if native is not None:
                native.correct(tails, shares)
            for writer, tail in zip(writers.values(), tails):
                writer.write(tail)
        for writer in writers.values():
            writer.commit(overwrite if scratch is None else True)
            committed.append(writer.path)
        if scratch is not None:
            target = next(iter(targets.values()))
            write_stem_mp4(target, {name: scratch / f"{name}.wav" for name in NI_STEMS}, overwrite=overwrite)
            committed = [target]
    except BaseException:
        for writer in writers.values():
            writer.discard()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        if not overwrite:   # files this run created: nothing existed under these names
            for done in committed:
                done.unlink(missing_ok=True)
        claim.release()
        remove_created_folders(created)
        raise
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    claim.release()
    return FileResult(path, targets, total / SAMPLE_RATE, time.perf_counter() - started,
                      {name: w.clipped for name, w in writers.items()})
