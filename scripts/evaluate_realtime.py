"""Quality of causal (real-time) separation against the offline default model.

    python scripts/evaluate_realtime.py work/synth-100 [--tracks 20] [--seconds 30]
        [--models default realtime] [--lookaheads 0 1 3 7 14 29] [--out benchmarks/results/realtime_quality.json]

The first ``--tracks`` tracks of the test split (sorted by name) whose four sources are all
audible in their first ``--seconds`` (BSSEval is undefined for a silent source; the skipped
ones are listed), the first ``--seconds`` of each; the mixture is the sum of the stems. Methods: the offline ``Separator`` of the default
model (all frames, overlapping blocks), and every model at every look-ahead through
``convsep.separation.realtime.causal_separate`` (the real-time separator's output with its delay
removed, computed in one batch; tests/separation/test_realtime.py checks it equals the stream).
Metrics: BSSEval v4 SDR with convsep's fast backend (1 s windows, median over windows, then
median over tracks) and the MDX global SDR (mean over tracks).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from convsep.errors import ConvSepError
from convsep.evaluate.bsseval import bss_eval_v4
from convsep.evaluate.sdr import global_sdr
from convsep.models.modelfile import load_model
from convsep.separation.realtime import causal_separate, latency_samples
from convsep.separation.separator import Separator

SOURCES = ("vocals", "drums", "bass", "other")


def test_tracks(root: Path, seconds: float):
    """(name, stems (S, C, n)) of the test split's tracks, sorted by name."""
    for folder in sorted(p for p in (root / "test").iterdir() if p.is_dir()):
        stems = []
        for source in SOURCES:
            info = sf.info(folder / f"{source}.wav")
            frames = min(info.frames, int(seconds * info.samplerate))
            audio, rate = sf.read(folder / f"{source}.wav", frames=frames, dtype="float32", always_2d=True)
            assert rate == 44100, f"{folder}: {rate} Hz"
            stems.append(audio.T)
        yield folder.name, np.stack(stems)                           # (S, C, n)


def label(model: str) -> str:
    """A model's name in the results: a bundled name, a run folder for RUN/best.pt, else the file's stem."""
    path = Path(model)
    if "/" not in model and path.suffix != ".pt":
        return model
    return path.parent.name if path.name == "best.pt" else path.stem


def scores(references: np.ndarray, estimates: torch.Tensor) -> dict:
    refs = torch.from_numpy(references).transpose(1, 2).double()      # (S, n, C)
    ests = estimates.transpose(1, 2).double()
    frames = bss_eval_v4(refs, ests)["SDR"].numpy()                    # (S, windows)
    medians = [float(np.nanmedian(f)) if np.isfinite(f).any() else float("nan") for f in frames]
    glob = global_sdr(refs, ests).numpy()
    return {"sdr_median": dict(zip(SOURCES, medians)), "global_sdr": dict(zip(SOURCES, map(float, glob)))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--tracks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--models", nargs="+", default=["default", "realtime"])
    parser.add_argument("--lookaheads", type=int, nargs="+", default=[0, 1, 3, 7, 14, 29])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/realtime_quality.json"))
    parser.add_argument("--skip-offline", action="store_true", help="do not score the offline default model")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other methods of an existing --out (same tracks), replacing those computed now")
    args = parser.parse_args()
    torch.set_num_threads(1)
    offline = Separator.load("default")
    models = {label(name): load_model(name)[0] for name in args.models}
    methods = {} if args.skip_offline else {"offline default": lambda mix: offline.separate_tensor(mix)}
    for name, model in models.items():
        for L in args.lookaheads:
            methods[f"{name} L={L}"] = (lambda m, L: lambda mix: causal_separate(m, mix, L))(model, L)
    per_track: dict[str, dict] = {m: {} for m in methods}
    started = time.perf_counter()
    tracks, skipped = [], []
    for track, stems in test_tracks(args.root, args.seconds):
        if len(tracks) == args.tracks:
            break
        mix = torch.from_numpy(stems.sum(0))
        try:
            results = {method: scores(stems, fn(mix)) for method, fn in methods.items()}
        except ConvSepError as exc:        # BSSEval is undefined for a silent source
            skipped.append(f"{track}: {exc}")
            continue
        tracks.append(track)
        for method, result in results.items():
            per_track[method][track] = result
        print(f"[{len(tracks)}/{args.tracks}] {track} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.merge and args.out.exists():
        previous = json.loads(args.out.read_text())
        if previous["tracks"] != tracks:
            raise SystemExit(f"{args.out} was computed on other tracks; drop --merge or use another --out")
        per_track = {**{m: r for m, r in previous["per_track"].items() if m not in per_track}, **per_track}
    summary = {}
    for method, results in per_track.items():
        summary[method] = {
            "sdr_median_of_medians": {s: round(float(np.nanmedian([r["sdr_median"][s] for r in results.values()])), 2)
                                      for s in SOURCES},
            "global_sdr_mean": {s: round(float(np.mean([r["global_sdr"][s] for r in results.values()])), 2)
                                for s in SOURCES},
        }
        if " L=" in method:
            L = int(method.split("=")[1])
            summary[method]["latency_ms"] = round(latency_samples(1024, 256, L) / 44.1, 1)
    data = {
        "test_split": f"{args.root.name} test split: the first {len(tracks)} tracks by name with every source audible, first {args.seconds:g} s, "
                      "mixture = sum of the stems",
        "metrics": "BSSEval v4 SDR (convsep fast backend, 1 s windows; median over windows, median over tracks), "
                   "MDX global SDR (mean over tracks)",
        "tracks": tracks,
        "skipped": skipped,
        "summary": summary,
        "per_track": per_track,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    width = max(map(len, summary))
    print(f"{'method':{width}}  latency  " + "  ".join(f"{s:>7}" for s in SOURCES) + "   (SDR median of medians; global SDR mean)")
    for method, s in summary.items():
        lat = f"{s['latency_ms']:5.1f} ms" if "latency_ms" in s else "offline "
        print(f"{method:{width}}  {lat}  " + "  ".join(f"{s['sdr_median_of_medians'][x]:7.2f}" for x in SOURCES)
              + "   " + " ".join(f"{s['global_sdr_mean'][x]:.2f}" for x in SOURCES))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
