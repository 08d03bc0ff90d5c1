"""Bundles a model trained on the real four-stem songs (step 6 of scripts/train_models.sh) with
its card: data sources and licences, recipe, time, hardware, and its scores on the real
validation set.

    python scripts/bundle_real_songs_model.py RUN [RUN ...] --evaluation EVAL [--method NAME]
        [--stream-quality benchmarks/results/realtime_quality_real.json] [--name default]
        [--input-level-db -16]

The runs are `convsep train` outputs, each started from the one before (the first from
``--base``, a bundled model whose card counts its own training time); the last one's
``best.pt`` is bundled. EVAL is a `convsep evaluate --root ../shared/data/real --split valid`
output holding METHOD (default: the last run's folder name). A ``--lookahead`` run is bundled
as a low-latency model: its card gives the streaming path's scores from
scripts/evaluate_stream_real.py (``--stream-quality``, the entry named after the run's
folder) and its latency.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import cpu_model  # noqa: E402

from convsep.evaluate.report import global_summary, load_results  # noqa: E402
from convsep.models.modelfile import load_model, save_model  # noqa: E402
from convsep.models.registry import PRETRAINED_DIR  # noqa: E402
from convsep.separation.realtime import latency_samples  # noqa: E402

REAL = [
    "MUSDB18 training previews (Rafii et al., 2017), 7 s of each of the 93 training songs, four stems: "
    "73 songs trained on, 20 held out for validation (convsep/data/real_validation.json); the DSD songs "
    "are academic use only, the MedleyDB songs CC BY-NC-SA 4.0: research use only. No MUSDB18 test song.",
    "Software-Entwicklungskit, 'Everything is Free' (7 songs, 33 minutes, CC0 1.0): 6 songs trained on "
    "(5 of them with the bass inside 'other', trained with bass + other as one group), 3.Sodium held out "
    "for validation",
]

FREE = [
    "Software-Entwicklungskit, 'Everything is Free' (7 songs, 33 minutes, CC0 1.0): 6 songs trained on "
    "(5 of them with the bass inside 'other', trained with bass + other as one group), 3.Sodium held out "
    "for validation (the only song that chose the best epoch)",
]
FREE_LICENSE = ("trained only on freely licensed material (a CC0 album, General MIDI renderings with the MIT "
                "FluidR3_GM SoundFont, convsep's own formant singer); MUSDB18 songs only scored it (docs/results.md), "
                "they neither trained it nor chose its epoch. No research-only data: usable for commercial work, "
                "under the licences listed")

MIR1K = ("MIR-1K (Hsu and Jang, 2010): singing of the 15 training singers mixed into a fifth of the excerpts "
         "and their karaoke mixes as a quarter-batch scored as vocals / accompaniment; free for research: "
         "research use only")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--evaluation", type=Path, default=None,
                        help="convsep evaluate output (needed for an offline model; a low-latency model is scored "
                             "by its stream)")
    parser.add_argument("--method", default=None)
    parser.add_argument("--base", default="default",
                        help="the bundled model the first run started from (or a copy of its file, named as it)")
    parser.add_argument("--stream-quality", type=Path, default=Path("benchmarks/results/realtime_quality_real.json"))
    parser.add_argument("--name", default="default")
    parser.add_argument("--free", nargs="*", metavar="CORPUS", default=None,
                        help="a model trained only on freely licensed data: the CC0 album and these corpora "
                             "(their descriptions with licences), no MUSDB18, no MIR-1K")
    parser.add_argument("--seconds-per-minute", type=float, default=None,
                        help="its separation time per minute of stereo on 2 threads, as scripts/quality_speed.py "
                             "measured it (the web app's model menu shows it)")
    parser.add_argument("--input-level-db", type=float, default=None,
                        help="bring songs to this RMS level (dBFS) before the model, when the validation "
                             "set says it helps (the evaluation must then have scored it so)")
    args = parser.parse_args()
    last = args.runs[-1]
    method = args.method or last.name
    _, base_meta = load_model(args.base)
    base = Path(args.base).stem        # a copy of a bundled model's file may stand for it
    model, meta = load_model(last / "best.pt")
    minutes = {f"{base} (bundled, before)": base_meta.get("training_minutes")}
    steps = 0
    for run in args.runs:
        history = json.loads((run / "history.json").read_text())
        minutes[run.name] = round(sum(h["seconds"] or 0 for h in history) / 60, 1)
        steps += max(h["step"] for h in history)
    scores: dict = {}
    if args.evaluation is not None:
        results = load_results([args.evaluation])
        summary = global_summary(results.global_sdr).loc[method]
        songs = results.global_sdr[results.global_sdr.method == method].track.nunique()
        medians = {t: round(float(summary.loc[t, "median"]), 2) for t in ("vocals", "drums", "bass", "other")}
        scores = {"real_validation": f"real four-stem validation set, {songs} songs (convsep evaluate --root "
                                     "../shared/data/real --split valid), global SDR, median over songs",
                  "real_validation_global_sdr_median": medians,
                  "real_validation_mean": round(sum(medians.values()) / 4, 2)}
    train_config = dict(meta.get("train_config", {}))
    lookahead = train_config.get("lookahead")
    train_config.update(root=f"work/{Path(train_config.get('root', 'cache-real')).name}",
                        extra_roots=[f"work/{Path(r).name}" for r in train_config.get("extra_roots", [])],
                        outdir=f"work/runs/{last.name}", cache=None,
                        init=f"work/runs/{args.runs[-2].name}/best.pt" if len(args.runs) > 1 else base,
                        **({"mir1k": "../shared/data/real/mir1k", "karaoke_cache": "work"}
                           if train_config.get("mir1k") else {}))
    previous_data = base_meta.get("trained_on", [])
    mir1k = ([MIR1K] if any(json.loads((r / "config.json").read_text())["train"].get("mir1k") for r in args.runs)
             else [])
    if args.free is not None and mir1k:
        raise SystemExit("--free: a run trained with MIR-1K (research use only)")
    sources = REAL + mir1k if args.free is None else FREE + list(args.free)
    meta.update({
        "name": args.name,
        "trained_on": sources + [f"before: the bundled '{base}' model, trained on: "
                                 + (" | ".join(previous_data) if isinstance(previous_data, list) else str(previous_data))],
        "train_config": train_config,
        "recipe": f"scripts/train_models.sh step {8 if args.free is not None else 6 if lookahead is None else 7} ("
                  + ", then ".join(r.name for r in args.runs) + ")",
        "hardware": f"{cpu_model()}, {os.cpu_count()} cores shared with other jobs, torch {torch.__version__}, device cpu",
        "training_minutes": round(sum(v or 0 for v in minutes.values()), 1),
        "training_minutes_by_stage": minutes,
        "steps": steps,
        "license_note": FREE_LICENSE if args.free is not None else
                        "trained on MUSDB18 training songs (non-commercial research) and on MIR-1K (research): "
                        "use this model for research only",
        "scores": scores,
    })
    meta.pop("input_level_db", None)             # validated during training without level matching
    if args.input_level_db is not None:
        meta["input_level_db"] = args.input_level_db
    if args.seconds_per_minute is not None:
        meta["speed"] = {"seconds_per_minute_of_stereo": args.seconds_per_minute, "threads": 2,
                         "measured": f"scripts/quality_speed.py on an idle {cpu_model()} ({os.cpu_count()} cores), "
                                     "60 s of stereo, minimum of 3 runs"}
    if lookahead is not None:
        if args.evaluation is None and not args.stream_quality.is_file():
            raise SystemExit(f"{args.stream_quality}: run scripts/evaluate_stream_real.py first")
        stream = json.loads(args.stream_quality.read_text())
        quality = stream["results"]
        key = next(k for k in quality if k.startswith(f"{last.name} (stream"))
        cfg = model.config
        meta.update({"lookahead": lookahead, "latency_samples": latency_samples(cfg.n_fft, cfg.hop, lookahead),
                     "latency_ms": round(1000 * latency_samples(cfg.n_fft, cfg.hop, lookahead) / 44100, 1)})
        meta["scores"]["stream_real_validation"] = {
            "what": f"the streaming path (RealtimeSeparator.process, {stream['chunk']}-sample chunks) on the "
                    f"real validation set, the middle {stream['seconds']:g} s of each song, global SDR, "
                    "median over songs", **quality[key]}
    target = PRETRAINED_DIR / f"{args.name}.pt"
    save_model(target, model, meta)
    print(f"bundled {last / 'best.pt'} as {target} ({target.stat().st_size / 2 ** 20:.1f} MB)")


if __name__ == "__main__":
    main()
