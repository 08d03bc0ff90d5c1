"""``convsep demo``: separate the bundled demo song and print the SDR of each stem."""
from __future__ import annotations

import argparse

from convsep.demo import run_demo
from convsep.models.registry import load_demo


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="separate the bundled demo song, write stems and a figure, print SDRs")
    p.add_argument("-m", "--model", default=None, help="model file or bundled name (default: the default model)")
    p.add_argument("-o", "--outdir", default="separated", help="output folder (default: separated)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier demo")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    meta, _ = load_demo()
    print(f"demo: {meta['track']} ({meta['seconds']:g} s excerpt of a test-split track, never seen in training)")
    result = run_demo(args.outdir, args.model, args.device, args.overwrite)
    print(f"{'stem':8s} {'SDR (dB)':>9s} {'mixture':>9s} {'global':>8s}")
    for name in result.sources:
        print(f"{name:8s} {result.sdr[name]:9.2f} {result.mixture_sdr[name]:9.2f} {result.global_sdr[name]:8.2f}")
    mean = sum(result.sdr.values()) / len(result.sdr)
    print(f"{'mean':8s} {mean:9.2f} {sum(result.mixture_sdr.values()) / len(result.sdr):9.2f}")
    print("SDR: BSSEval v4 median over 1 s frames; mixture: the mixture itself as the estimate; "
          "global: MDX whole-excerpt SDR")
    print(f"stems: {result.folder}/  figure: {result.figure}")
    return 0
