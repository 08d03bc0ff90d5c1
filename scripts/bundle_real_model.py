"""Bundles the real-music default model (step 5 of scripts/train_models.sh) with its card.

    python scripts/bundle_real_model.py BASE_MODEL SYNTH_EVAL MIR1K_EVAL --stages RUN [RUN ...]
        [--method NAME] [--name default] [--input-level-db -16]

BASE_MODEL is the model the first stage started from (its training time counts too); the
stages are `convsep train` outputs, each started from the one before, the last one's
``best.pt`` is bundled; SYNTH_EVAL a `convsep evaluate` output on the original corpus's test
split holding METHOD (default: the last stage's folder name); MIR1K_EVAL a `convsep evaluate
--two-stems` output holding METHOD's file. Scores, data sources with their licences, time,
hardware and the input level the Separator brings songs to go into the metadata, so
`convsep info` prints the card.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import cpu_model  # noqa: E402

from convsep.evaluate.report import global_summary, load_results, median_of_medians  # noqa: E402
from convsep.models import preset  # noqa: E402
from convsep.models.modelfile import load_model, save_model  # noqa: E402
from convsep.models.registry import PRETRAINED_DIR  # noqa: E402
from convsep.models.widen import WIDTHS  # noqa: E402

DATA = [
    "convsep synthetic corpus (original): convsep synth --tracks-train 100 --tracks-test 50 --seconds 60 --seed 0 "
    "--banks fluid --voices synthetic --production classic (FluidR3_GM, MIT; a formant singer)",
    "convsep synthetic corpus (varied): convsep synth --tracks-train 100 --tracks-test 20 --seconds 30 --seed 0 "
    "(FluidR3_GM MIT, MuseScore General MIT, TimGM6mb GPL-2, csound sf_GMbank public domain, AVL Drumkits GPL-2+, "
    "Hydrogen drum kits GPL / CC0 / CC BY-SA 3.0 / CC BY 3.0 per kit; Berklee OLPC sound library CC BY 3.0; "
    "sms-tools sounds CC BY 4.0; MIR-1K voices of the training singers; see docs/data.md)",
    "MIR-1K (Hsu and Jang, 2010): singing of 15 training singers with its karaoke accompaniment, 16 kHz; "
    "distributed free of charge for research: research use only; the 4 singers abjones, annar, heycat, khair "
    "are held out for validation",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("synth_eval")
    parser.add_argument("mir1k_eval")
    parser.add_argument("--stages", nargs="+", required=True)
    parser.add_argument("--method", default=None)
    parser.add_argument("--name", default="default")
    parser.add_argument("--input-level-db", type=float, default=-16.0,
                        help="RMS level (dBFS) songs are brought to before the model (the training mixtures')")
    args = parser.parse_args()
    args.method = args.method or Path(args.stages[-1]).name
    _, base_meta = load_model(args.base)
    model, meta = load_model(Path(args.stages[-1]) / "best.pt")
    minutes = {"base model": base_meta.get("training_minutes")}
    for stage in args.stages:
        history = json.loads((Path(stage) / "history.json").read_text())
        minutes[Path(stage).name] = round(sum(h["seconds"] or 0 for h in history) / 60, 1)
    results = load_results([args.synth_eval])
    mom = median_of_medians(results.frames).loc[args.method]
    glob = global_summary(results.global_sdr).loc[args.method]
    tracks = results.global_sdr[results.global_sdr.method == args.method].track.nunique()
    real = json.loads((Path(args.mir1k_eval) / "two_stems.json").read_text())
    real_row = next(v for k, v in real["median"].items() if Path(k).stem == args.method)
    stereo = preset("convsep-stereo")
    widths = {n: getattr(model.config, n) for n in WIDTHS if getattr(model.config, n) != getattr(stereo, n)}
    train_config = dict(meta.get("train_config", {}))
    previous = Path(args.stages[-2]).name if len(args.stages) > 1 else None
    # a stage at another frame length starts from its reframed file (scripts/reframe_model.py)
    reframed = previous and load_model(Path(args.stages[-2]) / "best.pt")[0].config.n_fft != model.config.n_fft
    train_config.update(outdir=f"work/runs/{Path(args.stages[-1]).name}", cache=None,
                        mir1k="../shared/data/real/mir1k", karaoke_cache="work",
                        init=f"work/runs/{previous}/best.pt" if previous and not reframed else train_config.get("init"))
    frames = f" at n_fft {model.config.n_fft}" if model.config.n_fft != stereo.n_fft else ""
    meta.update({
        "name": args.name,
        "preset": "convsep-stereo" + (" widened: " + ", ".join(f"{n} {v}" for n, v in widths.items()) if widths else "")
                  + frames,
        "trained_on": DATA,
        "train_config": train_config,
        "recipe": "scripts/train_models.sh step 5 (step 2's model, then " + ", then ".join(
            Path(s).name for s in args.stages) + ", with MIR-1K singing mixed in)",
        "input_level_db": args.input_level_db,
        "hardware": f"{cpu_model()}, {os.cpu_count()} cores shared with other jobs, torch {torch.__version__}, device cpu",
        "training_minutes": round(sum(v or 0 for v in minutes.values()), 1),
        "training_minutes_by_stage": minutes,
        "license_note": "trained in part on MIR-1K, which its authors distribute for research: use this model "
                        "for research only",
        "scores": {
            "test_split": f"original synthetic corpus test split, first 30 s of {tracks} tracks, convsep evaluate, "
                          "BSSEval v4 (fast backend)",
            "sdr_median_of_medians": {t: round(float(mom.loc[t, "SDR"]), 2) for t in mom.index},
            "global_sdr_mean": {t: round(float(glob.loc[t, "mean"]), 2) for t in glob.index},
            "real_validation": f"MIR-1K held-out singers, {real_row['mixtures']} real karaoke mixes (voice at 0 and "
                               "-5 dB), median global SDR",
            "real_vocals": round(real_row["vocals_global_sdr"], 2),
            "real_accompaniment": round(real_row["accompaniment_global_sdr"], 2),
        },
    })
    target = PRETRAINED_DIR / f"{args.name}.pt"
    save_model(target, model, meta)
    print(f"bundled {Path(args.stages[-1]) / 'best.pt'} as {target} ({target.stat().st_size / 2 ** 20:.1f} MB)")


if __name__ == "__main__":
    main()
