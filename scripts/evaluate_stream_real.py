"""The streaming path on the real four-stem validation set, beside offline models.

    python scripts/evaluate_stream_real.py ../shared/data/real [--stream realtime RUN/best.pt]
        [--offline default] [--lookahead 1] [--chunk 256] [--seconds 30] [--threads 1]
        [--out benchmarks/results/realtime_quality_real.json]

Songs: the fixed real validation set (convsep/data/real_validation.json), the middle
``--seconds`` of each (the whole 7 s MUSDB18 previews); the mixture is the sum of the stems.
Each ``--stream`` model runs through ``RealtimeSeparator.process`` itself, ``--chunk``
samples at a time as a live input would deliver them, and its output is compared with the
references after removing its exact latency (``RealtimeSeparator.aligned``). Each
``--offline`` model runs through the file path's ``Separator``. Score: global SDR (MDX) per
stem, median over songs, and the mean of the four medians, as the training validation.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from evaluate_realtime import label  # scripts/ is on the path of a script run from it

from convsep.constants import SAMPLE_RATE, SOURCES
from convsep.data.tracks import list_tracks, load_sources
from convsep.evaluate.sdr import global_sdr
from convsep.separation.realtime import RealtimeSeparator
from convsep.separation.separator import Separator


def validation_songs(root: Path, seconds: float):
    """(name, stems float32 (4, 2, n)) of the real validation songs, the middle ``seconds``."""
    limit = int(seconds * SAMPLE_RATE)
    for track in list_tracks(root, layout="real", split="valid"):
        stems = load_sources(track, SAMPLE_RATE)
        start = max(0, (stems.shape[-1] - limit) // 2)
        yield track.name, torch.from_numpy(np.ascontiguousarray(stems[..., start:start + limit]))


def streamed(separator: RealtimeSeparator, mixture: torch.Tensor, chunk: int) -> torch.Tensor:
    """(2, n) -> (4, 2, n) through ``process`` chunk by chunk, the latency removed."""
    pieces = (mixture[:, i:i + chunk] for i in range(0, mixture.shape[-1], chunk))
    return torch.cat(list(separator.aligned(pieces)), dim=-1)


def summary(per_song: list[list[float]]) -> dict:
    med = np.median(np.array(per_song), axis=0)
    return {**{s: round(float(v), 2) for s, v in zip(SOURCES, med)}, "mean": round(float(med.mean()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--stream", nargs="*", default=["realtime"])
    parser.add_argument("--offline", nargs="*", default=["default"])
    parser.add_argument("--lookahead", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a live stream)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/realtime_quality_real.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    songs = list(validation_songs(args.root, args.seconds))
    results = {}
    for model in args.offline:
        separator = Separator.load(model)
        started = time.perf_counter()
        scores = [global_sdr(stems.transpose(1, 2), separator.separate_tensor(stems.sum(0)).transpose(1, 2)).tolist()
                  for _, stems in songs]
        results[f"{label(model)} (offline)"] = {**summary(scores), "seconds": round(time.perf_counter() - started, 1)}
        print(label(model), results[f"{label(model)} (offline)"], flush=True)
    for model in args.stream:
        separator = RealtimeSeparator.load(model, lookahead=args.lookahead)
        started = time.perf_counter()
        scores = [global_sdr(stems.transpose(1, 2), streamed(separator, stems.sum(0), args.chunk).transpose(1, 2)).tolist()
                  for _, stems in songs]
        key = f"{label(model)} (stream, look-ahead {args.lookahead}, {1000 * separator.latency_seconds:.1f} ms)"
        results[key] = {**summary(scores), "seconds": round(time.perf_counter() - started, 1)}
        print(key, results[key], flush=True)
    args.out.write_text(json.dumps({"songs": [name for name, _ in songs], "chunk": args.chunk,
                                    "seconds": args.seconds, "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
