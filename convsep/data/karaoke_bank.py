"""Real singing for training: MIR-1K clips (vocals + their karaoke accompaniment) in memory,
drawn as random excerpts.

The clips are decoded and resampled to the training rate once, then kept as int16 in a
cache folder (``pairs.npy``: vocals and accompaniment, ``index.json``) that later runs
memory-map. Everything is mono (the recordings are); callers place it in the stereo field.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from convsep.data import mir1k
from convsep.data.augment import catmull_rom
from convsep.data.cache import readonly_tensor
from convsep.errors import ConvSepError
from convsep.io.filesafety import remove_stale_folders

INDEX = "index.json"
FORMAT = "convsep-karaoke-cache"


class KaraokeBank:
    """Vocals and accompaniment of many clips, concatenated: int16 (2, total) on a device.

    ``offsets``, ``lengths``: int64 (clips,); ``bandwidth_hz``: what the recordings cover.
    """

    def __init__(self, audio: torch.Tensor, offsets: torch.Tensor, lengths: torch.Tensor,
                 rms: torch.Tensor, names: list[str], rate: int, bandwidth_hz: float):
        self.audio, self.offsets, self.lengths, self.rms = audio, offsets, lengths, rms
        self.names, self.rate, self.bandwidth_hz = names, rate, bandwidth_hz

    @property
    def device(self) -> torch.device:
        return self.audio.device

    @classmethod
    def load(cls, root: str | os.PathLike | None, cache_dir: str | os.PathLike, split: str = "train",
             rate: int = 44100, device: str | torch.device = "cpu") -> "KaraokeBank":
        """The MIR-1K clips of ``split`` (by singer, see ``convsep.data.mir1k``), cached."""
        cache_dir = Path(cache_dir)
        index_path = cache_dir / INDEX
        if not index_path.is_file():
            _build(root, cache_dir, split, rate)
        try:
            index = json.loads(index_path.read_text())
            if index.get("format") != FORMAT or index["rate"] != rate or index["split"] != split:
                raise ValueError("made for other settings")
            audio = np.load(cache_dir / "pairs.npy", mmap_mode="r")            # (2, total) int16
        except (OSError, ValueError, KeyError) as exc:
            raise ConvSepError(f"{cache_dir}: not a usable karaoke cache ({exc}); delete it to rebuild") from None
        lengths = np.asarray(index["lengths"], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        device = torch.device(device)
        rms = torch.tensor(index["rms"], dtype=torch.float32, device=device)       # (clips, 2)
        return cls(readonly_tensor(audio).to(device), torch.from_numpy(offsets).to(device),
                   torch.from_numpy(lengths).to(device), rms, index["names"], rate, float(index["bandwidth_hz"]))

    def sample(self, n: int, length: int, generator: torch.Generator, max_speed: float = 1.0,
               max_eq_db: float = 0.0, max_formant: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """n excerpts of ``length`` samples: vocals and the same clip's accompaniment at the
        same place, each float32 (n, length) in [-1, 1], their clips' RMS (n, 2) (whole
        clips, so that a quiet excerpt stays quiet when levels are set), and each excerpt's
        speed (n,).

        ``max_speed`` > 1 plays each excerpt faster or slower, as a tape would, by a factor
        drawn log-uniformly in [1 / max_speed, max_speed]: pitch, formants and tempo move
        together, both stems alike (a new singer and band, still in tune with each other),
        and the recordings' band limit moves with them (``bandwidth_hz * speed``).
        Resampled by cubic (Catmull-Rom) interpolation, exact at speed 1. ``max_formant`` > 1
        then moves each vocals excerpt's formants by its own factor at the same pitch
        (``random_formant_shift``), and ``max_eq_db`` > 0 passes it through its own random
        equaliser (``random_eq``)."""
        if max_speed < 1:
            raise ValueError("max_speed must be at least 1")
        if max_eq_db < 0 or max_formant < 1:
            raise ValueError("max_eq_db must be at least 0 and max_formant at least 1")
        span = int(np.ceil(length * max_speed)) + 3 if max_speed > 1 else length
        usable = (self.lengths - span + 1).clamp_min(0)
        if int(usable.sum()) == 0:
            raise ConvSepError(f"every karaoke clip is shorter than {span} samples")
        clip = torch.multinomial(usable.double() / usable.sum(), n, replacement=True, generator=generator)
        u = torch.rand(n, generator=generator, device=self.device, dtype=torch.float64)
        start = (u * usable[clip]).long().minimum(usable[clip] - 1) + self.offsets[clip]
        if max_speed > 1:
            log_speed = (2 * torch.rand(n, generator=generator, device=self.device, dtype=torch.float64) - 1)
            speed = torch.exp(log_speed * float(np.log(max_speed)))
            excerpts = _resampled(self.audio, start + 1, speed, length)              # (2, n, length)
        else:
            speed = torch.ones(n, dtype=torch.float64, device=self.device)
            rows = self.audio.unfold(1, length, 1)                              # (2, positions, length) view
            excerpts = rows[:, start].to(torch.float32).div_(32767.0)          # (2, n, length)
        vocals = excerpts[0]
        if max_formant > 1:
            vocals = random_formant_shift(vocals, generator, max_formant, self.rate)
        if max_eq_db:
            vocals = random_eq(vocals, generator, max_eq_db, self.rate)
        return vocals, excerpts[1], self.rms[clip], speed.float()


def _resampled(audio: torch.Tensor, start: torch.Tensor, speed: torch.Tensor, length: int) -> torch.Tensor:
    """int16 rows (2, total), excerpt starts (n,), speeds (n,) -> float32 (2, n, length):
    sample i of an excerpt read at ``start + i * speed`` by Catmull-Rom interpolation
    (needs one sample before ``start`` and ``ceil(length * speed) + 2`` from it)."""
    position = start[:, None].double() + torch.arange(length, device=audio.device, dtype=torch.float64) * speed[:, None]
    base = position.floor()
    t = (position - base).float()                                             # (n, length)
    base = base.long()
    p0, p1, p2, p3 = (audio[:, base + k].to(torch.float32) for k in (-1, 0, 1, 2))   # (2, n, length) each
    return catmull_rom(p0, p1, p2, p3, t).div_(32767.0)


def random_eq(x: torch.Tensor, generator: torch.Generator, max_db: float, rate: int) -> torch.Tensor:
    """Each row of ``x`` (n, L) through its own random smooth equaliser, at its own RMS: a
    tilt and three bells on a log-frequency axis (centres 150 Hz-6 kHz, widths 0.3-1.5
    octaves), their sum clipped to +-``max_db``. Another microphone, room or vocal tract:
    the timbre of a new singer with the pitch and timing of the old one. Returns a new tensor."""
    n, length = x.shape
    device = x.device
    u = lambda *shape: torch.rand(*shape, generator=generator, device=device)  # noqa: E731
    octaves = torch.log2(torch.fft.rfftfreq(length, 1 / rate, device=device).clamp_min(20.0) / 1000.0)  # (F,)
    tilt = (u(n, 1) - 0.5) * max_db * octaves / 3                               # +-max_db/2 at 8 kHz
    centre = np.log2(0.15) + u(n, 3) * (np.log2(6.0) - np.log2(0.15))
    width = 0.3 + 1.2 * u(n, 3)
    gain = (2 * u(n, 3) - 1) * max_db
    bells = gain[..., None] * torch.exp(-0.5 * ((octaves - centre[..., None]) / width[..., None]) ** 2)
    curve_db = (tilt + bells.sum(1)).clamp(-max_db, max_db)                    # (n, F)
    y = torch.fft.irfft(torch.fft.rfft(x) * torch.pow(10.0, curve_db / 20), n=length)
    before, after = x.pow(2).mean(1, keepdim=True), y.pow(2).mean(1, keepdim=True)
    return y * torch.sqrt(before / after.clamp_min(1e-20))


def random_formant_shift(x: torch.Tensor, generator: torch.Generator, max_ratio: float, rate: int,
                         max_gain_db: float = 12.0) -> torch.Tensor:
    """Each row of ``x`` (n, L) with its formants moved by its own factor, drawn
    log-uniformly in [1/``max_ratio``, ``max_ratio``], at the same pitch, timing and RMS:
    another vocal tract singing the same notes. Each STFT frame's spectral envelope (its
    cepstrum below 1.2 ms, which keeps the harmonics of voices up to about 800 Hz out) is
    evaluated on a frequency axis stretched by the factor; the frame's magnitudes follow the
    change of envelope (clipped to +-``max_gain_db``), its phases stay. Returns a new tensor."""
    n, length = x.shape
    n_fft = _formant_fft(rate)
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True)      # (n, F, T)
    parts = torch.view_as_real(spec)                                                   # (n, F, T, 2)
    log_mag = 0.5 * torch.log(parts.square().sum(-1).clamp_min(1e-12)).transpose(1, 2)  # (n, T, F)
    ratio = torch.exp((2 * torch.rand(n, generator=generator, device=x.device) - 1) * float(np.log(max_ratio)))
    bins = torch.arange(spec.shape[1], device=x.device, dtype=torch.float32)           # (F,)
    quefrency = torch.arange(max(2, int(0.0012 * rate)), device=x.device, dtype=torch.float32)  # (Q,)
    # The low cepstrum as a cosine series over the bins, analysed at the bins (F, Q) and
    # synthesised at the bins (Q, F) and at the bins divided by each row's factor (n, Q, F).
    phase = 2 * np.pi / n_fft * quefrency[:, None]                                     # (Q, 1)
    fold = torch.full_like(bins, 2.0)
    fold[0] = fold[-1] = 1.0
    coefficients = log_mag @ (torch.cos(phase * bins) * fold / n_fft).T               # (n, T, Q)
    weight = torch.full_like(quefrency, 2.0)[:, None]
    weight[0] = 1.0
    envelope = coefficients @ (weight * torch.cos(phase * bins))                       # (n, T, F)
    moved = coefficients @ (weight * torch.cos(phase * (bins / ratio[:, None])[:, None, :]))
    limit = max_gain_db * float(np.log(10)) / 20
    gain = torch.exp((moved - envelope).clamp_(-limit, limit)).transpose(1, 2)         # (n, F, T)
    spec = torch.view_as_complex(parts * gain[..., None])
    y = torch.istft(spec, n_fft, n_fft // 4, window=window, length=length)
    before, after = x.pow(2).mean(1, keepdim=True), y.pow(2).mean(1, keepdim=True)
    return y * torch.sqrt(before / after.clamp_min(1e-20))


def _formant_fft(rate: int) -> int:
    """The power of two nearest 46 ms at ``rate`` (2048 at 44.1 kHz)."""
    return 1 << round(np.log2(0.046 * rate))


def _build(root, cache_dir: Path, split: str, rate: int) -> None:
    clips = mir1k.list_clips(root, split)
    vocals, accomp, names = [], [], []
    for clip in clips:
        v, a = mir1k.read_clip(clip, rate)
        vocals.append(np.clip(np.round(v * 32767), -32767, 32767).astype(np.int16))
        accomp.append(np.clip(np.round(a * 32767), -32767, 32767).astype(np.int16))
        names.append(clip.name)
    tmp = cache_dir.parent / f".{cache_dir.name}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_folders(cache_dir.parent, f".{cache_dir.name}.tmp")   # of runs killed earlier
        tmp.mkdir()
        np.save(tmp / "pairs.npy", np.stack([np.concatenate(vocals), np.concatenate(accomp)]))
        (tmp / INDEX).write_text(json.dumps({
            "format": FORMAT, "split": split, "rate": rate, "bandwidth_hz": mir1k.BANDWIDTH_HZ,
            "names": names, "lengths": [len(v) for v in vocals],
            "rms": [[_rms(v), _rms(a)] for v, a in zip(vocals, accomp)]}))
        if cache_dir.exists():
            raise ConvSepError(f"{cache_dir} exists but is not a karaoke cache; remove it or choose another path")
        os.replace(tmp, cache_dir)
    except OSError as exc:
        raise ConvSepError(f"{cache_dir}: cannot write the karaoke cache ({exc.strerror})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rms(x: np.ndarray) -> float:
    """RMS of an int16 clip in full-scale units, at least 1e-4."""
    return max(float(np.sqrt(np.mean((x.astype(np.float64) / 32767) ** 2))) if len(x) else 0.0, 1e-4)


def place_vocals(sources: torch.Tensor, vocals: torch.Tensor, clip_rms: torch.Tensor, rows: torch.Tensor,
                 level_db: torch.Tensor) -> None:
    """Puts mono ``vocals`` (k, L) in both channels of source 0 of ``sources`` (B, S, 2, L)
    at ``rows`` (k,): the vocals' clip RMS (k,) set to ``level_db`` (k,) against the RMS of
    the rest of each row's mixture (against 0.1 of full scale where that is silent). In place."""
    accompaniment = sources[rows, 1:].sum(1)                                   # (k, 2, L)
    reference = accompaniment.pow(2).mean((1, 2)).sqrt()
    reference = torch.where(reference > 1e-4, reference, torch.full_like(reference, 0.1))
    gain = reference * torch.pow(10.0, level_db / 20) / clip_rms
    sources[rows, 0] = (vocals * gain[:, None])[:, None, :]


def karaoke_sources(vocals: torch.Tensor, accompaniment: torch.Tensor, clip_rms: torch.Tensor,
                    level_db: torch.Tensor, gain_db: torch.Tensor, sources: int = 4) -> torch.Tensor:
    """Karaoke excerpts as source tensors (n, sources, 2, L): the vocals in slot 0 at
    ``level_db`` of clip RMS against the accompaniment, the accompaniment in slot 1, the
    other slots silent (score them with the groups (vocals), (the rest)); everything scaled by
    ``gain_db``; mono in both channels."""
    n, length = vocals.shape
    gain = torch.pow(10.0, gain_db / 20)
    v_gain = gain * torch.pow(10.0, level_db / 20) * clip_rms[:, 1] / clip_rms[:, 0]
    out = vocals.new_zeros(n, sources, 2, length)
    out[:, 0] = (vocals * v_gain[:, None])[:, None]
    out[:, 1] = (accompaniment * gain[:, None])[:, None]
    return out
