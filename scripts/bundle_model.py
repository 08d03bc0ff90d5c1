"""Bundles a trained model into the package with its model card in the file's metadata.

    python scripts/bundle_model.py RUN_DIR EVAL_DIR [--name default]

RUN_DIR is a `convsep train` output (best.pt, history.json, config.json); EVAL_DIR a
`convsep evaluate` output holding a method named after the run folder. The test-split scores
(BSSEval v4 median of medians, MDX global SDR) and the training time, hardware and recipe go
into the metadata, so `convsep info` prints the card.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import cpu_model  # noqa: E402  (the benchmarks' machine description)

from convsep.evaluate.report import global_summary, load_results, median_of_medians
from convsep.models.modelfile import load_model, save_model
from convsep.models.registry import PRETRAINED_DIR


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("evaluation")
    parser.add_argument("--method", default=None, help="method name in the evaluation (default: the run folder name)")
    parser.add_argument("--name", default="default")
    args = parser.parse_args()
    run = Path(args.run)
    model, meta = load_model(run / "best.pt")
    history = json.loads((run / "history.json").read_text())
    config = json.loads((run / "config.json").read_text())
    results = load_results([args.evaluation])
    method = args.method or run.name
    mom = median_of_medians(results.frames).loc[method]
    glob = global_summary(results.global_sdr).loc[method]
    scores = {
        "test_split": f"synthetic corpus test split, first 30 s of {results.global_sdr[results.global_sdr.method == method].track.nunique()} tracks, convsep evaluate, BSSEval v4 (fast backend)",
        "sdr_median_of_medians": {t: round(float(mom.loc[t, "SDR"]), 2) for t in mom.index},
        "sir_median_of_medians": {t: round(float(mom.loc[t, "SIR"]), 2) for t in mom.index},
        "sar_median_of_medians": {t: round(float(mom.loc[t, "SAR"]), 2) for t in mom.index},
        "global_sdr_mean": {t: round(float(glob.loc[t, "mean"]), 2) for t in glob.index},
    }
    # The run's own paths mean nothing elsewhere: record them as the recipe names them.
    train_config = dict(meta.get("train_config", {}))
    train_config.update(root="work/cache-synth-100", outdir=f"work/runs/{run.name}", cache=None)
    meta.update({
        "train_config": train_config,
        "name": args.name,
        "preset": config["train"]["model"],
        "trained_on": "convsep synthetic corpus: convsep synth --tracks-train 100 --tracks-test 50 "
                      "--seconds 60 --seed 0 (86 training, 14 validation tracks; MUSDB18-HQ layout)",
        "recipe": f"scripts/train_models.sh ({config['train']['model']}); train settings in train_config",
        "hardware": f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, device {config['train']['device']}",
        "training_minutes": round(sum(h["seconds"] or 0 for h in history) / 60, 1),
        "epochs": len([h for h in history if h["epoch"] > 0]),
        "scores": scores,
    })
    target = PRETRAINED_DIR / f"{args.name}.pt"
    save_model(target, model, meta)
    print(f"bundled {run / 'best.pt'} as {target} ({target.stat().st_size / 2 ** 20:.1f} MB)")


if __name__ == "__main__":
    main()
