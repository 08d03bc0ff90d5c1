"""Vocals / accompaniment scores on real karaoke recordings (MIR-1K's held-out singers).

Each clip becomes two mixtures: the voice at ``levels_db`` (0 and -5 dB) of RMS against its
own accompaniment, as real mixes set it. A model's estimates are scored as global SDR
(``convsep.evaluate.sdr``) of the vocals and of the accompaniment (the sum of every other
stem), and summarised by the median over mixtures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from convsep.data.karaoke_bank import KaraokeBank
from convsep.evaluate.sdr import global_sdr

LEVELS_DB = (0.0, -5.0)


@dataclass
class KaraokeMixture:
    name: str
    level_db: float
    vocals: torch.Tensor          # (2, samples)
    accompaniment: torch.Tensor   # (2, samples)


def voice_gain(vocals_rms: float, accompaniment_rms: float, level_db: float) -> float:
    """The gain that puts a voice of RMS ``vocals_rms`` at ``level_db`` against the accompaniment."""
    return accompaniment_rms / vocals_rms * 10 ** (level_db / 20)


def vocals_and_rest(separator, mixture: torch.Tensor, vocals: str = "vocals") -> torch.Tensor:
    """A mixture (C, N) -> (2, C', N) on the CPU: the model's vocals and the sum of its other
    stems (C' = the model's channels; a mono model gets the downmix)."""
    if separator.config.channels == 1:
        mixture = mixture.mean(0, keepdim=True)
    estimates = separator.separate_tensor(mixture).cpu()                   # (S, C', N)
    index = list(separator.config.sources).index(vocals)
    return torch.stack([estimates[index], estimates.sum(0) - estimates[index]])


def karaoke_mixtures(bank: KaraokeBank, clips: int | None = None, levels_db=LEVELS_DB,
                     max_seconds: float | None = None) -> list[KaraokeMixture]:
    """Mixtures of ``clips`` clips spread evenly over the bank (all when None), at each level."""
    count = len(bank.names)
    chosen = range(count) if clips is None or clips >= count else np.linspace(0, count - 1, clips).round().astype(int)
    out = []
    for i in chosen:
        start, n = int(bank.offsets[i]), int(bank.lengths[i])
        if max_seconds:
            n = min(n, int(max_seconds * bank.rate))
        vocals, accomp = bank.audio[:, start:start + n].float().div(32767.0).cpu()
        v_rms, a_rms = bank.rms[i].tolist()
        for level in levels_db:
            gain = voice_gain(v_rms, a_rms, level)
            out.append(KaraokeMixture(bank.names[i], level, (vocals * gain).expand(2, -1).contiguous(),
                                      accomp.expand(2, -1).contiguous()))
    return out


@torch.no_grad()
def score_karaoke(separator, mixtures: list[KaraokeMixture], vocals: str = "vocals") -> dict:
    """{"vocals": median SDR, "accompaniment": median SDR, "per_mixture": [...]} (dB)."""
    rows = []
    for m in mixtures:
        ests = vocals_and_rest(separator, m.vocals + m.accompaniment, vocals)   # (2, C, L)
        channels = ests.shape[1]
        refs = torch.stack([m.vocals[:channels], m.accompaniment[:channels]])
        sdr = global_sdr(refs.transpose(1, 2), ests.transpose(1, 2)).tolist()
        rows.append({"clip": m.name, "level_db": m.level_db, "vocals": sdr[0], "accompaniment": sdr[1]})
    return {
        "vocals": float(np.median([r["vocals"] for r in rows])),
        "accompaniment": float(np.median([r["accompaniment"] for r in rows])),
        "mixtures": len(rows),
        "per_mixture": rows,
    }
