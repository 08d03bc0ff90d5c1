"""Bundles a low-latency (``--lookahead``) training run as convsep/pretrained/<name>.pt with
its model card in the metadata: the causal test-split scores from
scripts/evaluate_realtime.py, the offline default model's beside them, training time,
hardware and recipe.

    python scripts/bundle_realtime.py RUN_DIR [--quality benchmarks/results/realtime_quality.json] [--name realtime]
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import cpu_model  # noqa: E402

from convsep.models.modelfile import load_model, save_model  # noqa: E402
from convsep.models.registry import PRETRAINED_DIR  # noqa: E402
from convsep.separation.realtime import latency_samples  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--quality", type=Path, default=Path("benchmarks/results/realtime_quality.json"))
    parser.add_argument("--method", default=None, help="model name in the quality results (default: the run folder)")
    parser.add_argument("--name", default="realtime")
    args = parser.parse_args()
    model, meta = load_model(args.run / "best.pt")
    history = json.loads((args.run / "history.json").read_text())
    train = json.loads((args.run / "config.json").read_text())["train"]
    quality = json.loads(args.quality.read_text())
    method = args.method or args.run.name
    lookahead = train["lookahead"]
    causal = {m.split("L=")[1]: s for m, s in quality["summary"].items() if m.startswith(f"{method} L=")}
    if not causal:
        raise SystemExit(f"{args.quality} has no results for {method}")
    cfg = model.config
    train_config = dict(meta.get("train_config", {}))
    train_config.update(root="work/cache-synth-100", outdir=f"work/realtime/{args.run.name}", cache=None)
    meta.update({
        "train_config": train_config,
        "name": args.name,
        "preset": train["model"],
        "lookahead": lookahead,
        "latency_samples": latency_samples(cfg.n_fft, cfg.hop, lookahead),
        "latency_ms": round(1000 * latency_samples(cfg.n_fft, cfg.hop, lookahead) / 44100, 1),
        "trained_on": "convsep synthetic corpus, the default model's data (scripts/train_models.sh: convsep synth "
                      "--tracks-train 100 --tracks-test 50 --seconds 60 --seed 0; 86 training, 14 validation tracks)",
        "initialised_from": "the bundled default model (convsep/pretrained/default.pt)",
        "recipe": f"scripts/train_models.sh step 4 (--lookahead {lookahead}); train settings in train_config",
        "hardware": f"{cpu_model()}, {os.cpu_count()} cores shared with other jobs, 1 torch thread, "
                    f"torch {torch.__version__}, device {train['device']}",
        "training_minutes": round(sum(h["seconds"] or 0 for h in history) / 60, 1),
        "run_epochs": len([h for h in history if h["epoch"] > 0]),   # "epochs": the best model's
        "scores": {
            "test_split": quality["test_split"],
            "metrics": quality["metrics"],
            "causal_by_lookahead": causal,
            "offline_default_model": quality["summary"].get("offline default"),
        },
    })
    target = PRETRAINED_DIR / f"{args.name}.pt"
    save_model(target, model, meta)
    print(f"bundled {args.run / 'best.pt'} as {target} ({target.stat().st_size / 2 ** 20:.1f} MB)")


if __name__ == "__main__":
    main()
