"""Models x Wiener post-filter settings on the held-out MIR-1K singers (real karaoke mixes,
voice at 0 and -5 dB): median global SDR of vocals and accompaniment.

    python scripts/compare_real.py MODEL [MODEL ...] [--wiener 0 1 2] [--clips 24] [--mir1k ROOT]
        [--karaoke-cache work/karaoke-valid] [--json OUT.json]

MODEL is a model file or a bundled model's name ("default").
"""
from __future__ import annotations

import argparse
import json
import time

from convsep.data.karaoke_bank import KaraokeBank
from convsep.evaluate.karaoke_scores import karaoke_mixtures, score_karaoke
from convsep.separation.separator import Separator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--wiener", type=int, nargs="+", default=[0])
    parser.add_argument("--clips", type=int, default=None, help="clips spread over the held-out singers (default all)")
    parser.add_argument("--mir1k", default=None)
    parser.add_argument("--karaoke-cache", default="work/karaoke-valid")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    mixtures = karaoke_mixtures(KaraokeBank.load(args.mir1k, args.karaoke_cache, "valid"), args.clips)
    rows = []
    print(f"{len(mixtures)} mixtures")
    print("| model | Wiener iterations | vocals | accompaniment | seconds |")
    print("|---|---|---|---|---|")
    for model in args.models:
        for iterations in args.wiener:
            started = time.perf_counter()
            result = score_karaoke(Separator.load(model, wiener_iterations=iterations), mixtures)
            seconds = time.perf_counter() - started
            rows.append({"model": model, "wiener_iterations": iterations, "vocals": result["vocals"],
                         "accompaniment": result["accompaniment"], "mixtures": result["mixtures"],
                         "seconds": seconds})
            print(f"| {model} | {iterations} | {result['vocals']:.2f} | {result['accompaniment']:.2f} | {seconds:.0f} |",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
