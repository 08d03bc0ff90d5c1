"""Moves a trained model to another STFT frame length (convsep.models.reframe), fitting its
first layer on excerpts of training mixtures, and saves it as a model file to fine-tune with
``convsep train --init OUT --model-config '{"n_fft": N, ...}'``.

    python scripts/reframe_model.py MODEL OUT --n-fft 2048 --corpus work/synth-100 \
        --corpus work/synth-varied-100 --mir1k ../shared/data/real/mir1k

Only training material is used: the corpora's train splits and MIR-1K's training singers.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import torch

from convsep.data import mir1k
from convsep.errors import ConvSepError
from convsep.io.audio import read_audio
from convsep.models.modelfile import load_model, save_model
from convsep.models.reframe import reframe


def _excerpt(audio: np.ndarray, samples: int, rng: random.Random) -> torch.Tensor:
    start = rng.randrange(max(1, audio.shape[1] - samples))
    return torch.from_numpy(np.ascontiguousarray(audio[:, start:start + samples]))


def fit_mixtures(corpora: list[str], mir1k_root: str | None, per_corpus: int, seconds: float,
                 seed: int) -> list[torch.Tensor]:
    """Excerpts (2, samples) of train mixtures and of MIR-1K training singers' karaoke mixes."""
    rng = random.Random(seed)
    samples = int(seconds * 44100)
    out = []
    for corpus in corpora:
        tracks = sorted(p for p in (Path(corpus) / "train").iterdir() if (p / "mixture.wav").exists())
        for track in rng.sample(tracks, min(per_corpus, len(tracks))):
            out.append(_excerpt(read_audio(track / "mixture.wav"), samples, rng))
    if mir1k_root:
        clips = mir1k.list_clips(mir1k_root, split="train")
        for clip in rng.sample(clips, min(per_corpus, len(clips))):
            vocals, accompaniment = mir1k.read_clip(clip)
            mix = np.stack([vocals + accompaniment] * 2)
            out.append(_excerpt(mix, samples, rng))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--n-fft", type=int, required=True)
    p.add_argument("--corpus", action="append", default=[], help="a synthetic corpus folder (its train split)")
    p.add_argument("--mir1k", help="MIR-1K root (its training singers)")
    p.add_argument("--per-corpus", type=int, default=24, help="excerpts drawn from each source of material")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--ridge", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        model, meta = load_model(args.model)
        mixtures = fit_mixtures(args.corpus, args.mir1k, args.per_corpus, args.seconds, args.seed)
        new, error = reframe(model, args.n_fft, mixtures, args.ridge)
        meta = dict(meta, reframed_from={"n_fft": model.config.n_fft, "conv1_fit_relative_error": round(error, 4),
                                         "excerpts": len(mixtures)})
        save_model(args.out, new, meta)
    except ConvSepError as exc:
        print(f"reframe: {exc}", file=sys.stderr)
        return 2
    print(f"reframe: n_fft {model.config.n_fft} -> {args.n_fft}, conv1 fitted on {len(mixtures)} excerpts, "
          f"relative feature error {error:.4f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
