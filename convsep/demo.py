"""The demo: separate the bundled test-split excerpt, write stems and a figure, score them.

The bundled demo (convsep/pretrained/demo/) is an excerpt of a test-split track of the
synthetic corpus, never seen in training: four 16-bit FLAC stems whose sum is the mixture.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.evaluate.bsseval import bss_eval_v4
from convsep.evaluate.sdr import global_sdr
from convsep.io.audio import write_audio
from convsep.io.filesafety import check_replaceable
from convsep.models.registry import load_demo
from convsep.separation.separator import Separator


@dataclass
class DemoResult:
    folder: Path
    figure: Path
    sources: tuple[str, ...]
    sdr: dict[str, float]            # BSSEval v4 median SDR of each estimate
    global_sdr: dict[str, float]     # MDX global SDR of each estimate
    mixture_sdr: dict[str, float]    # BSSEval v4 median SDR of the mixture as the estimate


def _median_sdr(references: torch.Tensor, estimates: torch.Tensor) -> np.ndarray:
    """(S, C, n) x (S, C, n) -> (S,) nanmedian over 1 s frames of BSSEval v4 SDR."""
    sdr = bss_eval_v4(references.transpose(1, 2).double(), estimates.transpose(1, 2).double())["SDR"]
    return np.nanmedian(sdr.numpy(), axis=1)


def spectrogram_figure(path: Path, mixture: torch.Tensor, estimates: torch.Tensor,
                       references: torch.Tensor, sources: tuple[str, ...]) -> None:
    """A PNG: the mixture, then each source's estimate beside its reference (dB, left channel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convsep.dsp.spectral import STFT

    stft = STFT()

    def db(x: torch.Tensor) -> np.ndarray:
        return (20 * torch.log10(stft(x[0]).abs() + 1e-4)).numpy()

    seconds = mixture.shape[-1] / SAMPLE_RATE
    extent = (0, seconds, 0, SAMPLE_RATE / 2000)
    style = dict(origin="lower", aspect="auto", cmap="magma", vmin=-40, vmax=40, extent=extent)
    fig, axes = plt.subplots(len(sources) + 1, 2, figsize=(12, 2.2 * (len(sources) + 1)), sharex=True, sharey=True)
    axes[0, 0].imshow(db(mixture), **style)
    axes[0, 0].set_title("mixture")
    axes[0, 1].axis("off")
    for row, name in enumerate(sources, start=1):
        axes[row, 0].imshow(db(estimates[row - 1]), **style)
        axes[row, 0].set_title(f"{name}: estimate")
        axes[row, 1].imshow(db(references[row - 1]), **style)
        axes[row, 1].set_title(f"{name}: reference")
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    try:
        check_replaceable(path)
    except ConvSepError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def run_demo(outdir: str | os.PathLike = "separated", model: str | os.PathLike | None = None,
             device: str | None = "cpu", overwrite: bool = False) -> DemoResult:
    """Separates the bundled demo into OUTDIR/<track>/ (stems, mixture.wav, spectrograms.png)."""
    meta, references = load_demo()
    separator = Separator.load(model, device=device)
    if separator.config.channels == 1:
        references = references.mean(1, keepdim=True)
    folder = Path(outdir) / meta["track"]
    names = list(separator.sources) + ["mixture"]
    targets = [folder / f"{name}.wav" for name in names] + [folder / "spectrograms.png"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise ConvSepError(f"{existing[0]} exists; pass --overwrite to replace it")
    mixture = references.sum(0)
    estimates = separator.separate_tensor(mixture)
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in zip(names, list(estimates) + [mixture]):
        write_audio(folder / f"{name}.wav", audio.numpy(), SAMPLE_RATE, bits="32f")
    spectrogram_figure(targets[-1], mixture, estimates, references, separator.sources)
    sdr = _median_sdr(references, estimates)
    baseline = _median_sdr(references, mixture.expand_as(references))
    gsdr = global_sdr(references.transpose(1, 2), estimates.transpose(1, 2)).numpy()
    sources = separator.sources
    return DemoResult(folder, targets[-1], sources, dict(zip(sources, map(float, sdr))),
                      dict(zip(sources, map(float, gsdr))), dict(zip(sources, map(float, baseline))))
