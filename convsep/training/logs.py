"""TensorBoard logging of a run: scalars, example audio, spectrogram and mask images."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch


class TensorBoardLog:
    """A thin wrapper that does nothing when TensorBoard is not installed or turned off."""

    def __init__(self, folder: Path | None):
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("train: note: tensorboard is not installed; no TensorBoard logs (pip install tensorboard)")
            return
        self.writer = SummaryWriter(str(folder))

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for key, value in values.items():
                if value is not None and np.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def example(self, name: str, mixture: torch.Tensor, stems: torch.Tensor, masks: torch.Tensor,
                sources: Sequence[str], rate: int, step: int) -> None:
        """mixture (C, n), stems (S, C, n), masks (S, C, bins, frames) of one excerpt."""
        if not self.writer:
            return
        for i, source in enumerate(sources):
            self.writer.add_audio(f"{name}/{source}", stems[i].mean(0).clamp(-1, 1), step, sample_rate=rate)
        self.writer.add_audio(f"{name}/mixture", mixture.mean(0).clamp(-1, 1), step, sample_rate=rate)
        self.writer.add_figure(f"{name}/masks", mask_figure(mixture, masks, sources), step)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def mask_figure(mixture: torch.Tensor, masks: torch.Tensor, sources: Sequence[str]):
    """The mixture's log spectrogram above each source's mask (first channel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convsep.dsp.spectral import STFT

    spec = STFT()(mixture[:1].float()).abs()[0]
    fig, axes = plt.subplots(len(sources) + 1, 1, figsize=(8, 2 * (len(sources) + 1)), sharex=True)
    axes[0].imshow(20 * torch.log10(spec + 1e-5).numpy(), origin="lower", aspect="auto", cmap="magma")
    axes[0].set_title("mixture (dB)")
    for ax, source, mask in zip(axes[1:], sources, masks[:, 0]):
        ax.imshow(mask.numpy(), origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"{source} mask")
    fig.tight_layout()
    return fig
