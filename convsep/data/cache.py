"""The prepared cache: every track decoded once into int16 arrays with random access.

On disk::

    CACHE/index.json            format, version, rate, sources, and per track: name, subset,
                                split, num_samples, scale, file
    CACHE/tracks/00000.npy      int16 (4, 2, samples); float value = int16 * scale / 32767

``scale`` is 1 unless the track peaks above 1, in which case it is the peak, so nothing clips.
The cache is written to a temporary folder next to CACHE and renamed into place when complete.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from convsep.constants import SOURCES
from convsep.data.tracks import Track, list_tracks, load_sources
from convsep.errors import ConvSepError
from convsep.io.filesafety import describe_os_error, remove_stale_folders, write_problem

FORMAT = "convsep-cache"
VERSION = 1
INDEX = "index.json"
RATE = 44100
INT16_MAX = 32767


@dataclass
class CachedTrack:
    name: str
    subset: str
    split: str
    num_samples: int
    scale: float
    file: str
    vocals_bandwidth_hz: float | None = None
    bass_in_other: bool = False


@dataclass
class DeviceCache:
    """All tracks of one split concatenated on one device.

    ``audio``: int16 (4, 2, total_samples); track ``i`` is
    ``audio[:, :, offsets[i]:offsets[i] + lengths[i]] * scales[i] / 32767``.
    ``offsets``, ``lengths``: int64 (tracks,); ``scales``: float32 (tracks,), all on the device.
    """

    audio: torch.Tensor
    offsets: torch.Tensor
    lengths: torch.Tensor
    scales: torch.Tensor
    names: list[str]
    rate: int
    vocals_bandwidth_hz: torch.Tensor | None = None   # float32 (tracks,); inf: full band

    @property
    def device(self) -> torch.device:
        return self.audio.device

    @property
    def num_tracks(self) -> int:
        return len(self.names)

    @property
    def num_samples(self) -> int:
        return int(self.audio.shape[-1])

    def track(self, i: int) -> torch.Tensor:
        """float32 (4, 2, samples) of track ``i``, on the device."""
        start, n = int(self.offsets[i]), int(self.lengths[i])
        return self.audio[:, :, start : start + n].float() * (self.scales[i] / INT16_MAX)


class Cache:
    """A prepared cache opened for reading (see ``open_cache``)."""

    def _concatenated(self, idx: list[int], name: str) -> torch.Tensor:
        """The tracks ``idx`` as one memory-mapped int16 (4, 2, total) tensor, kept in the
        cache folder as ``concat-NAME.npy`` (written once). On the CPU this shares the page
        cache between runs and never counts as the process's own memory."""
        path = self.root / f"concat-{name}.npy"
        total = sum(self.tracks[i].num_samples for i in idx)
        if path.is_file():
            try:
                audio = np.load(path, mmap_mode="r")
                if audio.shape == (len(SOURCES), 2, total):
                    return readonly_tensor(audio)
            except (OSError, ValueError):
                pass
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=(len(SOURCES), 2, total))
            start = 0
            for i in idx:
                n = self.tracks[i].num_samples
                out[:, :, start:start + n] = self.array(i)
                start += n
            out.flush()
            del out
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConvSepError(f"{self.root}: cannot write {path.name} ({describe_os_error(exc).split(': ')[-1]})") from None
        return readonly_tensor(np.load(path, mmap_mode="r"))

    def __init__(self, root: Path, index: dict):
        self.root = root
        self.rate: int = int(index["rate"])
        self.sources: tuple[str, ...] = tuple(index["sources"])
        self.subsets: tuple[str, ...] = tuple(index.get("subsets", ()))
        self.tracks: list[CachedTrack] = [CachedTrack(**t) for t in index["tracks"]]

    def __len__(self) -> int:
        return len(self.tracks)

    def array(self, i: int) -> np.ndarray:
        """Memory-mapped int16 (4, 2, samples) of track ``i``."""
        return np.load(self.root / self.tracks[i].file, mmap_mode="r")

    def load(self, i: int) -> np.ndarray:
        """float32 (4, 2, samples) of track ``i``."""
        return self.array(i).astype(np.float32) * np.float32(self.tracks[i].scale / INT16_MAX)

    def select(self, split: str | None = None, subset: str | None = None,
               bass_in_other: bool | None = None) -> list[int]:
        """Indices of the tracks in ``split`` (train, valid, test) and ``subset`` whose bass is
        (or is not) inside ``other``; None means any."""
        return [
            i for i, t in enumerate(self.tracks)
            if (split is None or t.split == split) and (subset is None or t.subset == subset)
            and (bass_in_other is None or t.bass_in_other == bass_in_other)
        ]

    def to_device(
        self, device: str | torch.device = "cpu", split: str | None = "train", subset: str | None = None,
        bass_in_other: bool | None = None,
    ) -> DeviceCache:
        """Concatenate the tracks of ``split`` (and ``subset``, ``bass_in_other``: see ``select``)
        into one int16 tensor on ``device``.

        Tracks are copied one at a time into a preallocated tensor, so host memory holds at
        most one track beyond the memory map.
        """
        idx = self.select(split, subset, bass_in_other)
        if not idx:
            raise ConvSepError(
                f"cache {self.root} has no tracks in split '{split}'"
                + (f" of subset '{subset}'" if subset else "")
                + f"; it holds splits {', '.join(sorted({t.split for t in self.tracks}))}"
            )
        lengths = [self.tracks[i].num_samples for i in idx]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        device = torch.device(device)
        if device.type == "cpu":
            group = "" if bass_in_other is None else ("-grouped" if bass_in_other else "-separable")
            audio = self._concatenated(idx, f"{split or 'all'}-{subset or 'all'}{group}")
        else:
            audio = torch.empty((len(SOURCES), 2, int(sum(lengths))), dtype=torch.int16, device=device)
            for i, start, n in zip(idx, offsets, lengths):
                audio[:, :, start : start + n].copy_(torch.from_numpy(np.array(self.array(i))))
        return DeviceCache(
            audio=audio,
            offsets=torch.as_tensor(offsets, device=device),
            lengths=torch.as_tensor(lengths, dtype=torch.int64, device=device),
            scales=torch.tensor([self.tracks[i].scale for i in idx], dtype=torch.float32, device=device),
            names=[self.tracks[i].name for i in idx],
            rate=self.rate,
            vocals_bandwidth_hz=torch.tensor([self.tracks[i].vocals_bandwidth_hz or float("inf") for i in idx],
                                             dtype=torch.float32, device=device),
        )


def readonly_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor over a read-only memory map (never written: the sampler only gathers)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)       # "the given NumPy array is not writable"
        return torch.from_numpy(array)


def _damaged(root: Path, why: str) -> ConvSepError:
    return ConvSepError(f"cache {root} is damaged ({why}); rebuild it with: convsep prepare ROOT {root} --overwrite")


def _read_index(root: Path) -> dict:
    path = root / INDEX
    if not path.is_file():
        raise ConvSepError(f"{root} is not a prepared cache (no {INDEX}); create it with: convsep prepare ROOT {root}")
    try:
        index = json.loads(path.read_text())
        if index.get("format") != FORMAT:
            raise ValueError("not a convsep cache index")
        if index.get("version") != VERSION:
            raise ValueError(f"format version {index.get('version')}, expected {VERSION}")
        if tuple(index["sources"]) != SOURCES:
            raise ValueError(f"sources {index['sources']}")
        int(index["rate"])
        for t in index["tracks"]:
            CachedTrack(**t)
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(root, f"bad {INDEX}: {exc}") from None
    return index


def open_cache(cache_dir: str | os.PathLike) -> Cache:
    """Open a prepared cache, checking its index and that every track array is present and whole."""
    root = Path(cache_dir).expanduser()
    if not root.is_dir():
        raise ConvSepError(f"cache folder {root} does not exist; create it with: convsep prepare ROOT {root}")
    cache = Cache(root, _read_index(root))
    if not cache.tracks:
        raise _damaged(root, "no tracks")
    for i, t in enumerate(cache.tracks):
        try:
            a = cache.array(i)
        except (OSError, ValueError) as exc:
            raise _damaged(root, f"cannot read {t.file}: {exc}") from None
        if a.dtype != np.int16 or a.shape != (len(SOURCES), 2, t.num_samples):
            raise _damaged(root, f"{t.file} holds {a.dtype} {a.shape}, expected int16 {(len(SOURCES), 2, t.num_samples)}")
    return cache


def merge_caches(caches: Sequence[Cache], folder: str | os.PathLike) -> Cache:
    """Several prepared caches as one (training on several datasets at once).

    Track files stay where they are (the merged tracks name them by absolute path); ``folder``
    receives the merged cache's concatenated arrays. Track names get their cache's folder name
    as a prefix when two caches share a name.
    """
    if len(caches) == 1:
        return caches[0]
    rates = {c.rate for c in caches}
    if len(rates) > 1:
        raise ConvSepError(f"the datasets have different sample rates ({', '.join(map(str, sorted(rates)))} Hz)")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvSepError(describe_os_error(exc)) from None
    names = [t.name for c in caches for t in c.tracks]
    clash = len(set(names)) < len(names)
    tracks = []
    for c in caches:
        for t in c.tracks:
            merged = dict(asdict(t), file=str((c.root / t.file).resolve()))
            if clash:
                merged["name"] = f"{c.root.name}/{t.name}"
            tracks.append(merged)
    subsets = sorted({s for c in caches for s in c.subsets})
    return Cache(folder, {"rate": caches[0].rate, "sources": list(SOURCES), "subsets": subsets, "tracks": tracks})


def _encode(track: Track, path: str, rate: int) -> tuple[int, float]:
    """Decode ``track`` and save it as int16; returns (num_samples, scale)."""
    audio = load_sources(track, rate)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    scale = max(1.0, peak)
    audio *= np.float32(INT16_MAX / scale)
    np.rint(audio, out=audio)
    np.clip(audio, -INT16_MAX, INT16_MAX, out=audio)
    try:
        np.save(path, audio.astype(np.int16))
    except OSError as exc:
        raise ConvSepError(f"{path}: cannot write ({write_problem(path, exc)})") from None
    return int(audio.shape[-1]), scale


def _is_complete(root: Path) -> bool:
    try:
        open_cache(root)
    except ConvSepError:
        return False
    return True


def prepare_cache(
    root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    subsets: Sequence[str] = ("train",),
    is_wav: bool = False,
    layout: str = "auto",
    rate: int = RATE,
    jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Cache:
    """Decode every track of ``subsets`` under ``root`` once into a cache at ``cache_dir``.

    Audio is resampled to ``rate`` and made stereo. An existing complete cache of the same
    subsets and rate is kept as it is (a no-op) unless ``overwrite``; anything else already at
    ``cache_dir`` is refused unless ``overwrite``. Returns the opened cache.
    """
    from tqdm import tqdm

    cache_dir = Path(cache_dir).expanduser()
    subsets = [subsets] if isinstance(subsets, str) else list(subsets)
    if jobs < 1:
        raise ConvSepError(f"--jobs must be at least 1, got {jobs}")
    if cache_dir.exists() and not overwrite:
        if not cache_dir.is_dir():
            raise ConvSepError(f"{cache_dir} exists and is not a folder; choose another cache path")
        if _is_complete(cache_dir):
            cache = open_cache(cache_dir)
            if sorted(cache.subsets) == sorted(subsets) and cache.rate == rate:
                return cache
            raise ConvSepError(
                f"cache {cache_dir} holds subsets {','.join(cache.subsets)} at {cache.rate} Hz, not "
                f"{','.join(subsets)} at {rate} Hz; pass --overwrite to rebuild it or choose another path"
            )
        if any(cache_dir.iterdir()):
            raise ConvSepError(
                f"{cache_dir} exists and is not a complete cache; pass --overwrite to replace it or choose another path"
            )

    tracks = list_tracks(root, subsets, None, layout, is_wav)
    tmp = cache_dir.parent / f".{cache_dir.name}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_folders(cache_dir.parent, f".{cache_dir.name}.tmp")   # of runs killed earlier
        (tmp / "tracks").mkdir(parents=True)
    except OSError as exc:
        raise ConvSepError(f"{cache_dir}: cannot create the cache ({describe_os_error(exc).split(': ')[-1]})") from None
    try:
        files = [f"tracks/{i:05d}.npy" for i in range(len(tracks))]
        bar = tqdm(total=len(tracks), desc="prepare", unit="track", disable=not progress)
        if jobs == 1:
            results = []
            for t, f in zip(tracks, files):
                results.append(_encode(t, str(tmp / f), rate))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_encode, t, str(tmp / f), rate) for t, f in zip(tracks, files)]
                for fut in futures:
                    fut.add_done_callback(lambda _: bar.update())
                results = [fut.result() for fut in futures]
        bar.close()
        index = {
            "format": FORMAT,
            "version": VERSION,
            "rate": rate,
            "sources": list(SOURCES),
            "channels": 2,
            "dtype": "int16",
            "subsets": subsets,
            "tracks": [
                asdict(CachedTrack(t.name, t.subset, t.split, n, s, f, t.vocals_bandwidth_hz, t.bass_in_other))
                for t, f, (n, s) in zip(tracks, files, results)
            ],
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=1))
        _replace(tmp, cache_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_cache(cache_dir)


def _replace(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``, replacing what is there only once ``tmp`` is complete."""
    if not target.exists():
        os.replace(tmp, target)
        return
    trash = target.parent / f".{target.name}.old-{os.getpid()}-{time.time_ns()}"
    os.replace(target, trash)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(trash, target)
        raise
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)
