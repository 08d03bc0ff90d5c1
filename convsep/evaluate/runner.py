"""``evaluate``: separate a test set with models and oracles, score it with BSSEval v4.

For every track and method the estimates are scored and written as museval JSON (see
``convsep.evaluate.store``); tracks whose JSON exists are skipped, so an interrupted run
resumes. Tracks run in parallel processes (one track at a time per process, torch threads
split between them). A track that fails is recorded with a one-line reason and the others go
on. At the end the per-method CSV tables, ``evaluation.json`` and the report are written.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from convsep.constants import SAMPLE_RATE, SOURCES
from convsep.data import Track, list_tracks
from convsep.data.real_songs import FOLDERS as REAL_FOLDERS
from convsep.data.real_songs import is_real_root
from convsep.errors import ConvSepError
from convsep.evaluate.oracles import ORACLE_HOP, ORACLE_N_FFT, oracle_chunks, parse_oracles
from convsep.evaluate.sdr import global_sdr
from convsep.evaluate.spill import SpilledSignal, load_references
from convsep.evaluate.store import (
    METRICS,
    method_dirs,
    read_meta,
    track_json_path,
    write_meta,
    write_method_tables,
    write_track,
)
from convsep.io.audio import rms
from convsep.io.filesafety import safe_component
from convsep.models.modelfile import read_model_file
from convsep.models.registry import resolve_model_path
from convsep.runtime.allocator import keep_freed_memory
from convsep.runtime.os_signals import stop_with_parent
from convsep.separation.speed_ensemble import check_speeds, speeds_label

BACKENDS = ("fast", "museval")
WINDOW = SAMPLE_RATE  # BSSEval v4 windows and hops of one second


@dataclass(frozen=True)
class Method:
    """A way to get estimates: a model file (``spec`` = its path) or an oracle (its name)."""
    name: str
    kind: str  # "model" or "oracle"
    spec: str
    speeds: tuple[float, ...] | None = None   # a model's speed ensemble (None: its file's)


@dataclass(frozen=True)
class Failure:
    track: str
    method: str
    message: str

    def __str__(self) -> str:
        return f"{self.track} [{self.method}]: {self.message}"


@dataclass
class EvaluationResult:
    """What ``evaluate`` did; ``ok`` is False when some track failed."""
    outdir: Path
    methods: list[str]
    tracks: list[str]
    evaluated: list[tuple[str, str]] = field(default_factory=list)  # (track, method)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


def model_methods(models: Sequence[str | os.PathLike], speeds: Sequence[float] | None = None) -> list[Method]:
    """Model files or bundled names -> methods named by the file's stem (checked readable);
    with ``speeds``, separated by that speed ensemble and named ``<stem>-speeds-1-1.12-...``."""
    methods = []
    suffix = "-speeds-" + speeds_label(speeds, "-") if speeds else ""
    for model in models:
        path = resolve_model_path(model)
        read_model_file(path)
        try:     # the name is a folder of OUTDIR: a file named "...pt" must not give ".."
            safe_component(path.stem + suffix, "method name")
        except ConvSepError as exc:
            raise ConvSepError(f"{path}: {exc}; rename the model file") from None
        methods.append(Method(path.stem + suffix, "model", str(path), tuple(speeds) if speeds else None))
    return methods


def plan_methods(models: Sequence[str | os.PathLike], oracles: str | Sequence[str] | None,
                 speeds: Sequence[float] | None = None) -> list[Method]:
    methods = model_methods(models, speeds)
    methods += [Method("mixture" if o == "mixture" else f"oracle-{o}", "oracle", o)
                for o in parse_oracles(oracles)]
    if not methods:
        raise ConvSepError("nothing to evaluate; pass a model (-m MODEL) or oracles (--oracle irm1,mixture)")
    names = [m.name for m in methods]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash:
        raise ConvSepError(f"two methods would both be named {clash!r}; rename one of the model files")
    return methods


# ----------------------------------------------------------------------------- one track
_separators: dict[str, object] = {}


def _init_worker(threads: int) -> None:
    keep_freed_memory()                       # spawned: the parent's setting is not inherited
    stop_with_parent()                        # no orphan if the parent is killed
    warnings.formatwarning = (lambda message, *rest, **kw:   # one line, as in the parent
                              f"convsep evaluate: warning: {' '.join(str(message).split())}\n")
    torch.set_num_threads(threads)


def _separator(method: Method, device: str):
    from convsep.separation.separator import Separator

    key = f"{method.spec} {method.speeds}"
    if key not in _separators:
        _separators[key] = Separator.load(method.spec, device=device, speeds=method.speeds)
    return _separators[key]


def model_estimates(separator, sources: torch.Tensor) -> torch.Tensor:
    """Separate the mixture (the sum of ``sources`` (S, C, N)) -> (S, C, N) in SOURCES order.
    A mono model separates each channel on its own."""
    mixture = sources.sum(0).float().cpu()
    if separator.config.channels == 1:
        estimates = torch.cat([separator.separate_tensor(mixture[c:c + 1])
                               for c in range(mixture.shape[0])], dim=1)
    else:
        estimates = separator.separate_tensor(mixture)
    index = {name: i for i, name in enumerate(separator.output_names)}
    missing = [s for s in SOURCES if s not in index]
    if missing:
        raise ConvSepError(f"the model has no output for {', '.join(missing)}")
    return estimates[[index[s] for s in SOURCES]]


def write_model_estimates(separator, references: SpilledSignal, out: SpilledSignal) -> None:
    """``model_estimates`` from and into signals on disk: the mixture is summed and separated
    piece by piece (the pieces ``Separator.separate_tensor`` uses) and the stems are written
    as they come, so neither the mixture nor the stems are ever whole in memory."""
    index = {name: i for i, name in enumerate(separator.output_names)}
    missing = [s for s in SOURCES if s not in index]
    if missing:
        raise ConvSepError(f"the model has no output for {', '.join(missing)}")
    order = [index[s] for s in SOURCES]
    step = separator.core_frames * separator.config.hop
    n_samples, n_ch = references.shape[1:]
    groups = [slice(c, c + 1) for c in range(n_ch)] if separator.config.channels == 1 else [slice(None)]

    def pieces(channels):
        return (references.read(i, i + step).permute(0, 2, 1).sum(0)[channels].float().cpu()
                for i in range(0, n_samples, step))

    for channels in groups:
        gain = separator.gain_for_rms(rms(pieces(channels))) if separator.input_level_db is not None else 1.0
        start = 0
        for piece in separator.stream(pieces(channels), gain):
            out.write(start, piece[order], channels=channels)
            start += piece.shape[-1]


def score(references: torch.Tensor | SpilledSignal, estimates: torch.Tensor | SpilledSignal,
          backend: str = "fast") -> dict[str, np.ndarray]:
    """(S, C, N) references and estimates -> {metric: (S, frames)} BSSEval v4 images scores.
    Signals on disk are read range by range (the fast backend) or whole (museval)."""
    if isinstance(references, SpilledSignal):
        if backend == "museval":
            return score(references.to_tensor(), estimates.to_tensor(), backend)
        from convsep.evaluate.bsseval import bss_eval_v4

        result = bss_eval_v4(references, estimates, window=WINDOW, hop=WINDOW)
        return {m: result[m].cpu().numpy() for m in METRICS}
    if estimates.shape != references.shape:
        raise ConvSepError(f"estimates have shape {tuple(estimates.shape)} but the references have "
                           f"{tuple(references.shape)} (sources, channels, samples)")
    refs = references.transpose(1, 2)
    ests = estimates.to(references.device, references.dtype).transpose(1, 2)
    if backend == "museval":
        import museval

        try:
            sdr, isr, sir, sar = museval.evaluate(refs.cpu().numpy(), ests.cpu().numpy(),
                                                  win=WINDOW, hop=WINDOW)
        except ValueError as exc:
            raise ConvSepError(str(exc).strip().splitlines()[0]) from None
        return {"SDR": sdr, "ISR": isr, "SIR": sir, "SAR": sar}
    from convsep.evaluate.bsseval import bss_eval_v4

    result = bss_eval_v4(refs, ests, window=WINDOW, hop=WINDOW)
    return {m: result[m].cpu().numpy() for m in METRICS}


GROUPED_TARGETS = ("vocals", "drums", "bass+other")


def score_grouped(references: torch.Tensor, estimates: torch.Tensor,
                  backend: str = "fast") -> tuple[tuple[str, ...], dict[str, np.ndarray], list[float]]:
    """A song whose bass plays inside ``other``: (4, C, N) references and estimates in
    ``SOURCES`` order -> the targets vocals, drums, bass+other, their BSSEval v4 scores
    {metric: (3, frames)} and global SDRs (bass and other are not separable targets there)."""
    def group(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[0], x[1], x[2] + x[3]])

    refs, ests = group(references), group(estimates.to(references.device, references.dtype))
    scores = score(refs, ests, backend)
    gsdr = [float(v) for v in global_sdr(refs.transpose(1, 2), ests.transpose(1, 2))]
    return GROUPED_TARGETS, scores, gsdr


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(exc, ConvSepError) else f"{type(exc).__name__}: {message}"


def _silent_sources(refs: SpilledSignal) -> list[int]:
    """The reference sources whose channels sum to zero over the whole track: BSSEval is
    undefined for them (museval gives NaN)."""
    ever = torch.zeros(refs.shape[0], dtype=torch.bool)
    for _, piece in refs.chunks():                      # (sources, channels, n)
        ever |= (piece.sum(1) != 0).any(dim=1).cpu()
    return [j for j, active in enumerate(ever.tolist()) if not active]


def _score_defined(refs: SpilledSignal, estimates: SpilledSignal, backend: str,
                   silent: Sequence[int]) -> dict[str, np.ndarray]:
    """``score`` of the sources that are not silent; NaN rows for those that are."""
    if not silent:
        return score(refs, estimates, backend)
    keep = [j for j in range(refs.shape[0]) if j not in silent]
    part = score(refs.to_tensor()[keep], estimates.to_tensor()[keep], backend)
    full = {}
    for metric, values in part.items():
        full[metric] = np.full((refs.shape[0], values.shape[1]), np.nan)
        full[metric][keep] = values
    return full


def evaluate_track(track: Track, methods: Sequence[Method], outdir: str, backend: str = "fast",
                   device: str = "cpu", max_seconds: float | None = None) -> tuple[list[Failure], float]:
    """Scores ``track`` with every method and writes the track JSON files.

    Returns (failures, seconds of audio evaluated).
    """
    # The references and each method's estimates live in temporary files in ``outdir`` and
    # are read range by range (convsep.evaluate.spill): memory stays bounded on long tracks.
    try:
        max_samples = None if max_seconds is None else max(1, int(round(max_seconds * SAMPLE_RATE)))
        refs = load_references(track, SAMPLE_RATE, max_samples, directory=outdir, device=device)
    except Exception as exc:  # any reading problem fails this track only
        return [Failure(track.name, m.name, _one_line(exc)) for m in methods], 0.0
    failures = []
    with refs:
        # bass and other of a bass-in-other song are scored as one group: a silent bass is expected
        silent = [] if track.bass_in_other else _silent_sources(refs)
        if len(silent) == len(SOURCES):
            return [Failure(track.name, m.name, "every reference source is silent; nothing to score")
                    for m in methods], 0.0
        if silent:
            warnings.warn(f"{track.name}: {', '.join(SOURCES[j] for j in silent)} silent over the whole track: "
                          "undefined (NaN) and left out of the medians; the other sources are scored without it",
                          stacklevel=2)
        for method in methods:
            try:
                with SpilledSignal(*refs.shape, directory=outdir, device=device) as estimates:
                    if method.kind == "model":
                        write_model_estimates(_separator(method, device), refs, estimates)
                    else:
                        for start, piece in oracle_chunks(refs, method.spec, ORACLE_N_FFT, ORACLE_HOP):
                            estimates.write(start, piece)
                    if track.bass_in_other:
                        targets, scores, gsdr = score_grouped(refs.to_tensor(), estimates.to_tensor(), backend)
                    else:
                        targets = SOURCES
                        scores = _score_defined(refs, estimates, backend, silent)
                        gsdr = [math.nan if j in silent else float(global_sdr(refs.source(j), estimates.source(j)))
                                for j in range(len(SOURCES))]
                write_track(track_json_path(outdir, method.name, track.name), targets, scores, gsdr)
            except Exception as exc:  # report the track, go on with the others
                failures.append(Failure(track.name, method.name, _one_line(exc)))
    return failures, refs.shape[1] / SAMPLE_RATE


# ----------------------------------------------------------------------------------- run
def _select(tracks: list[Track], names: Sequence[str] | None) -> list[Track]:
    if not names:
        return tracks
    by_name = {t.name: t for t in tracks}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConvSepError(f"no track named {unknown[0]!r} in the dataset; "
                           f"it has e.g. {', '.join(list(by_name)[:3])}")
    return [by_name[n] for n in dict.fromkeys(names)]


def _default_subset(root: Path, layout: str) -> str | list[str]:
    """"test", except for a folder of stems without a manifest and for real four-stem songs:
    all their tracks."""
    if layout == "real" or (layout == "auto" and is_real_root(root)):
        return list(REAL_FOLDERS)
    if layout == "auto":
        layout = "musdb" if any((root / s).is_dir() for s in ("train", "test")) else "folder"
    if layout == "folder" and not (root / "manifest.json").is_file():
        return ["train", "test"]
    return "test"


def _is_musdb(root: Path, tracks: list[Track]) -> bool:
    return tracks[0].layout in ("musdb", "musdb-hq") and not (root / "manifest.json").is_file()


def evaluate(
    root: str | os.PathLike,
    models: Sequence[str | os.PathLike] = (),
    oracles: str | Sequence[str] | None = None,
    outdir: str | os.PathLike = "evaluation",
    subset: str | Sequence[str] | None = None,
    layout: str = "auto",
    is_wav: bool = False,
    tracks: Sequence[str] | None = None,
    backend: str = "fast",
    device: str = "cpu",
    jobs: int = 1,
    max_seconds: float | None = None,
    progress: bool = True,
    report: bool = True,
    speeds: Sequence[float] | None = None,
    split: str | None = None,
) -> EvaluationResult:
    """Evaluate models and oracles on the ``subset`` tracks under ``root``.

    ``subset`` None means "test", or every track of a folder of stems that has no manifest, or
    every real four-stem song (``split="valid"``: the fixed real validation set). Songs whose
    bass plays inside ``other`` are scored as vocals, drums and bass+other.

    Writes ``outdir/<method>/test/<track>.json``, ``frames.csv``, ``global_sdr.csv`` per
    method, ``outdir/evaluation.json`` and (``report=True``) ``outdir/report.md`` with PNG
    boxplots. Method names: the model file's stem, ``oracle-irm1``, ``oracle-irm2``,
    ``oracle-ibm``, ``mixture``. ``speeds``: every model separates with that speed ensemble
    (``convsep.separation.speed_ensemble``), and its name says so.
    """
    started = time.perf_counter()
    if backend not in BACKENDS:
        raise ConvSepError(f"unknown backend {backend!r}; choose fast or museval")
    if backend == "museval":
        try:
            import museval  # noqa: F401
        except ImportError:
            raise ConvSepError("--backend museval needs the museval package: pip install museval") from None
    if jobs < 1:
        raise ConvSepError("--jobs must be at least 1")
    if max_seconds is not None and not max_seconds > 0:
        raise ConvSepError("--max-seconds must be positive")
    if device != "cpu":
        from convsep.runtime.device import resolve_device

        device = str(resolve_device(device))
    methods = plan_methods(models, oracles, check_speeds(speeds))
    root = Path(root).expanduser()
    if subset is None:
        subset = _default_subset(root, layout)
    selected = _select(list_tracks(root, subset=subset, split=split, layout=layout, is_wav=is_wav), tracks)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    result = EvaluationResult(outdir, [m.name for m in methods], [t.name for t in selected])
    work: list[tuple[Track, list[Method]]] = []
    for track in selected:
        todo = [m for m in methods if not track_json_path(outdir, m.name, track.name).is_file()]
        result.skipped += [(track.name, m.name) for m in methods if m not in todo]
        if todo:
            work.append((track, todo))

    jobs = min(jobs, max(1, len(work)))
    bar = tqdm(total=len(work), unit="track", desc="evaluate", disable=not progress or not work)

    def collect(track: Track, todo: list[Method], outcome: tuple[list[Failure], float]) -> None:
        failures, seconds = outcome
        failed = {f.method for f in failures}
        result.failures += failures
        result.evaluated += [(track.name, m.name) for m in todo if m.name not in failed]
        result.audio_seconds += seconds
        if not bar.disable:
            for failure in failures:
                bar.write(f"failed: {failure}", file=sys.stderr)
        bar.update()

    args = dict(outdir=str(outdir), backend=backend, device=device, max_seconds=max_seconds)
    try:
        if jobs == 1:
            for track, todo in work:
                collect(track, todo, evaluate_track(track, todo, **args))
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                     initargs=(threads,)) as pool:
                futures = {pool.submit(evaluate_track, track, todo, **args): (track, todo)
                           for track, todo in work}
                for future in as_completed(futures):
                    collect(*futures[future], future.result())
    finally:
        bar.close()

    for method in methods:
        if (outdir / method.name).is_dir():
            write_method_tables(outdir / method.name)
    meta = read_meta(outdir)
    meta.update(
        dataset={"layout": selected[0].layout, "musdb": _is_musdb(root, selected),
                 "subset": subset if isinstance(subset, str) else "+".join(subset), "name": root.name},
        backend=backend, max_seconds=max_seconds,
        oracle_stft={"n_fft": ORACLE_N_FFT, "hop": ORACLE_HOP, "window": "hann"},
    )
    known = meta.get("methods", {})
    known.update({m.name: {"kind": m.kind, "source": Path(m.spec).name if m.kind == "model" else m.spec,
                           **({"speeds": list(m.speeds)} if m.speeds else {})}
                  for m in methods})
    meta["methods"] = known
    write_meta(outdir, meta)
    if report and method_dirs(outdir):
        from convsep.evaluate.report import render_report

        result.report = render_report([outdir], out=outdir / "report.md", plots=outdir).markdown_path
    result.elapsed = time.perf_counter() - started
    return result
