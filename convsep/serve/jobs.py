"""Background separation jobs for the web app: a bounded queue, worker threads, progress,
expiry and a temporary folder that holds every job's files.

Every path here is built by the server (``ROOT/<job id>/input.<ext>``, the stems that
``separate_file`` wrote); nothing a request sends is ever joined to a path.
"""
from __future__ import annotations

import copy
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from convsep.api import get_separator, separate_file
from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.io.audio import probe
from convsep.io.mixdown import EXPORT_FORMATS, check_format, check_gains, convert, mix_stems
from convsep.io.nistems import NI_STEMS, write_stem_mp4
from convsep.models.modelfile import read_model_file
from convsep.models.registry import DEFAULT_MODEL, list_models
from convsep.separation.separator import Separator
from convsep.separation.stems import plan_outputs

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
STEM_EXT = "wav"


def web_message(message: str) -> str:
    """An error message for the page, which has no command-line options to suggest."""
    return message.replace("pass --allow-truncated to separate what decodes",
                           "re-download or re-export the song; on the command line, "
                           "convsep separate --allow-truncated separates what decodes")


def offline_models() -> list[str | None]:
    """The bundled models the page offers when ``-m`` names none: the default first (None),
    then every other bundled model that separates files offline (not the low-latency
    streaming models, whose metadata has a ``lookahead``)."""
    choices: list[str | None] = [None]
    for name in list_models():
        if name != DEFAULT_MODEL and not read_model_file(name).get("metadata", {}).get("lookahead"):
            choices.append(name)
    return choices


def model_card(model: str | None) -> dict:
    """What the page shows of a model: its quality on the real four-stem validation set (mean
    of the stems' median global SDR, dB, and per stem), its speed (seconds per minute of
    stereo on 2 threads) and whether it is a low-latency streaming model. None where the
    model file does not say."""
    meta = read_model_file(model).get("metadata", {})
    scores = meta.get("scores") if isinstance(meta.get("scores"), dict) else {}
    speed = meta.get("speed") if isinstance(meta.get("speed"), dict) else {}
    quality = scores.get("real_validation_mean")
    stems = scores.get("real_validation_global_sdr_median")
    streaming = bool(meta.get("lookahead"))
    stream = scores.get("stream_real_validation")
    if quality is None and isinstance(stream, dict):       # a streaming model: its streaming path's scores
        quality = stream.get("mean")
        stems = {k: v for k, v in stream.items() if isinstance(v, (int, float)) and k not in ("mean", "seconds")}

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return {"quality_db": number(quality),
            "stems": {str(k): number(v) for k, v in stems.items()} if isinstance(stems, dict) else {},
            "seconds_per_minute": number(speed.get("seconds_per_minute_of_stereo")),
            "real_time_factor_one_thread": number(speed.get("real_time_factor_one_thread")),
            "streaming": streaming}


class Cancelled(Exception):
    """Raised inside a running separation when its job was deleted."""


@dataclass
class Job:
    id: str
    filename: str                    # the upload's display name (never used as a path)
    folder: Path                     # ROOT/<id>
    input: Path                      # ROOT/<id>/input.<ext>
    model: str
    stems_requested: list[str] | None = None
    two_stems: str | None = None
    status: str = "queued"           # queued, running, done, error
    progress: float = 0.0            # in [0, 1]
    error: str | None = None
    seconds: float | None = None     # duration of the song
    created: float = field(default_factory=time.time)
    finished: float | None = None
    stems: dict[str, Path] = field(default_factory=dict)
    cancelled: bool = False
    started: float | None = None
    position: int | None = None      # 1-based place in the queue while waiting
    lock: Any = field(default_factory=threading.RLock, repr=False)   # held while its exports are built

    @property
    def track(self) -> str:
        """The upload's name without its extension, for download file names."""
        stem = self.filename.rsplit(".", 1)[0] or "song"
        return re.sub(r"[^\w\- ]+", "_", stem)[:80].strip() or "song"

    def public(self) -> dict:
        """The job as the JSON API shows it."""
        base = f"/api/jobs/{self.id}"
        data = {"id": self.id, "filename": self.filename, "status": self.status,
                "progress": round(self.progress, 4), "error": self.error, "model": self.model,
                "seconds": self.seconds, "created": self.created, "url": base,
                "position": self.position if self.status == "queued" else None,
                "remaining": self.remaining()}
        if self.status == "done":
            data["stems"] = [{"name": name, "url": f"{base}/stems/{name}"} for name in self.stems]
            data["zip"] = f"{base}/zip"
            data["mix"] = f"{base}/mix"
            data["formats"] = list(EXPORT_FORMATS)
            data["stem_mp4"] = f"{base}/stem.mp4" if all(n in self.stems for n in NI_STEMS) else None
        return data

    def remaining(self) -> float | None:
        """Seconds until a running job is done, from its pace so far (None until it shows)."""
        if self.status != "running" or self.started is None or self.progress < 0.03:
            return None
        elapsed = time.time() - self.started
        return round(elapsed * (1 - self.progress) / self.progress, 1)


class JobManager:
    """Owns the jobs, the queue and the worker threads; ``close()`` removes every file."""

    def __init__(self, models: Sequence[str | None] | None = None, queue_size: int = 16,
                 workers: int = 1, keep_seconds: float = 3600.0, root: Path | None = None,
                 threads: int | None = None):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="convsep-serve-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep_seconds = keep_seconds
        # model choices: display name -> model file or bundled name (None: the default)
        self.models: dict[str, str | None] = {}
        for model in offline_models() if models is None else models:
            self.models[Path(model).stem if model else "default"] = model
        self._separators: dict[str, Separator] = {}
        self._cards: list[dict] | None = None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.queue_size = queue_size
        self._queue: queue.Queue[Job] = queue.Queue()   # bounded by the waiting jobs, see submit
        self._stop = threading.Event()
        if threads:
            torch.set_num_threads(threads)
        self._threads = [threading.Thread(target=self._work, name=f"convsep-worker-{i}", daemon=True)
                         for i in range(workers)]
        self._threads.append(threading.Thread(target=self._expire_loop, name="convsep-janitor", daemon=True))
        for thread in self._threads:
            thread.start()

    # -- models ----------------------------------------------------------------------
    @property
    def default_model(self) -> str:
        return next(iter(self.models))

    def cards(self) -> list[dict]:
        """Each model choice's name, whether it is the default, and its card (read once)."""
        if self._cards is None:       # a race reads the files twice, harmlessly
            self._cards = [{"name": name, "default": name == self.default_model, **model_card(path)}
                           for name, path in self.models.items()]
        return [dict(card) for card in self._cards]

    def separator(self, model: str) -> Separator:
        """The loaded Separator of a model choice (loaded once)."""
        with self._lock:
            if model not in self._separators:
                self._separators[model] = Separator.load(self.models[model])
            return self._separators[model]

    def check_request(self, model: str | None, stems: Sequence[str] | None,
                      two_stems: str | None) -> str:
        """The model's display name, after checking the choices (ConvSepError if bad)."""
        model = model or self.default_model
        if model not in self.models:
            raise ConvSepError(f"unknown model {model[:40]!r}; choose from {', '.join(self.models)}")
        if stems and two_stems:
            raise ConvSepError("use either stems or two_stems, not both")
        plan_outputs(self.separator(model).sources, stems, two_stems)
        return model

    # -- jobs ------------------------------------------------------------------------
    def new_folder(self) -> tuple[str, Path]:
        job_id = secrets.token_hex(16)
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def submit(self, job_id: str, folder: Path, upload: Path, filename: str, model: str,
               stems: Sequence[str] | None = None, two_stems: str | None = None) -> Job:
        """Queues a separation of ``upload`` (already inside ``folder``). ConvSepError when
        the queue is full (the folder is removed)."""
        job = Job(job_id, filename, folder, upload, model, list(stems) if stems else None, two_stems)
        with self._lock:
            # removed jobs leave the table at once, so they never hold a place in the queue
            waiting = sum(1 for other in self._jobs.values() if other.status == "queued")
            if waiting >= self.queue_size:
                shutil.rmtree(folder, ignore_errors=True)
                raise ConvSepError(f"the queue is full ({waiting} songs waiting); try again later")
            self._jobs[job_id] = job
            self._queue.put_nowait(job)
        return job

    def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id or ""):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda job: job.created)
        place = 0
        for job in jobs:
            if job.status == "queued":
                place += 1
                job.position = place
        return jobs

    def delete(self, job_id: str) -> bool:
        """Forgets a job and removes its files; a running job stops at its next chunk."""
        with self._lock:
            job = self._jobs.pop(job_id, None) if JOB_ID.match(job_id or "") else None
        if job is None:
            return False
        job.cancelled = True
        if job.status != "running":
            shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def stem_path(self, job: Job, name: str) -> Path | None:
        """The file of a finished job's stem, or None (``name`` is only a dictionary key)."""
        return job.stems.get(name) if job.status == "done" else None

    def stem_file(self, job: Job, name: str, fmt: str = STEM_EXT) -> Path | None:
        """A finished job's stem in ``fmt`` (wav, flac, mp3; converted once, then kept), or None."""
        source = self.stem_path(job, name)
        if source is None or fmt == STEM_EXT:
            return source
        return self._export(job, f"{name}.{check_format(fmt)}", lambda target: convert(source, target, fmt))

    def zip_path(self, job: Job, fmt: str = STEM_EXT) -> Path:
        """All stems of a finished job in one zip, in ``fmt`` (built once, atomically). Only
        this job's lock is held meanwhile: other requests go on."""
        fmt = check_format(fmt)

        def build(target: Path) -> None:
            files = {name: self.stem_file(job, name, fmt) for name in job.stems}
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for name, path in files.items():
                    if path is not None:
                        archive.write(path, f"{job.track}/{name}.{fmt}")

        return self._export(job, f"stems-{fmt}.zip", build)

    def stem_mp4_path(self, job: Job) -> Path:
        """The job's stems as NI Stems (``.stem.mp4``, for DJ software), built once."""
        if not all(name in job.stems for name in NI_STEMS):
            raise ConvSepError("a .stem.mp4 needs the four stems drums, bass, other and vocals; "
                               "this song was separated into " + ", ".join(job.stems))
        return self._export(job, "stems.stem.mp4",
                            lambda target: write_stem_mp4(target, job.stems, overwrite=True))

    def mix_path(self, job: Job, gains: dict, fmt: str = STEM_EXT) -> Path:
        """A new file (the caller removes it): the job's stems summed at ``gains`` in ``fmt``."""
        fmt = check_format(fmt)
        gains = check_gains(gains, list(job.stems))
        folder = self._exports(job)
        target = folder / f"mix-{secrets.token_hex(8)}.{fmt}"
        mix_stems(job.stems, gains, target, fmt)
        return target

    def _exports(self, job: Job) -> Path:
        if job.status != "done" or job.cancelled:
            raise ConvSepError(f"the job is {job.status}, its stems are not ready")
        folder = job.folder / "exports"
        folder.mkdir(exist_ok=True)
        return folder

    def _export(self, job: Job, name: str, build) -> Path:
        target = self._exports(job) / name
        with job.lock:
            if not target.exists():
                partial = target.with_name(f".{name}.tmp")
                try:
                    build(partial)
                    partial.replace(target)
                finally:
                    partial.unlink(missing_ok=True)
        return target

    # -- work ------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if job.cancelled:
                continue
            job.status, job.started = "running", time.time()
            try:
                self._separate(job)
                job.status = "done"
            except Cancelled:
                pass
            except ConvSepError as exc:
                job.status, job.error = "error", web_message(str(exc).replace(str(job.input), job.filename))
            except Exception as exc:  # a bug must not kill the worker; the page shows it
                job.status, job.error = "error", f"internal error: {type(exc).__name__}: {exc}"[:300]
            finally:
                job.finished = time.time()
                job.input.unlink(missing_ok=True)
                if job.cancelled:
                    shutil.rmtree(job.folder, ignore_errors=True)

    def _separate(self, job: Job) -> None:
        info = probe(job.input)
        job.seconds = info.seconds
        separator = copy.copy(get_separator(self.separator(job.model), stems=job.stems_requested,
                                            two_stems=job.two_stems))
        total = info.seconds * SAMPLE_RATE if info.seconds else None
        stream = separator.stream

        def reporting(chunks: Iterable, input_gain: float = 1.0) -> Iterator[torch.Tensor]:
            done = 0
            for out in stream(chunks, input_gain):
                if job.cancelled:
                    raise Cancelled
                done += out.shape[-1]
                if total:
                    job.progress = min(0.99, done / total)
                yield out

        separator.stream = reporting
        result = separate_file(job.input, job.folder, separator, ext=STEM_EXT, bits="16",
                               progress=False, track="stems", overwrite=True)
        job.seconds = result.seconds
        job.stems = dict(result.stems)
        job.progress = 1.0

    def expire(self, now: float | None = None) -> list[str]:
        """Deletes finished jobs older than ``keep_seconds``; returns their ids."""
        now = time.time() if now is None else now
        old = [job.id for job in self.jobs()
               if job.finished is not None and now - job.finished > self.keep_seconds]
        for job_id in old:
            self.delete(job_id)
        return old

    def _expire_loop(self) -> None:
        while not self._stop.wait(min(30.0, max(1.0, self.keep_seconds / 4))):
            self.expire()

    def close(self) -> None:
        """Stops the workers (a running job is cancelled) and removes the temporary folder."""
        self._stop.set()
        for job in self.jobs():
            job.cancelled = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for thread in self._threads:
            thread.join(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
