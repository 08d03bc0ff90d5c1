"""``convsep evaluate --root ROOT [-m MODEL ...] [--oracle irm1,mixture] [--outdir DIR] ...``"""
from __future__ import annotations

import argparse
import sys

from convsep.cli.failures import EXIT_ERROR
from convsep.evaluate.oracles import ORACLES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score models and oracles on a test set with BSSEval v4",
        description="Separate every test track with each model (and compute oracle estimates), "
                    "score them with BSSEval v4 and write museval JSON per track "
                    "(OUTDIR/<method>/test/<track>.json), CSV tables and OUTDIR/report.md. "
                    "Tracks already scored are skipped.")
    p.add_argument("--root", required=True, help="dataset folder (MUSDB18, MUSDB18-HQ, a folder of stems, or the "
                                                 "real four-stem songs: musdb7train/ and eif_cc0/)")
    p.add_argument("--is-wav", action="store_true", help="MUSDB18-HQ (WAV folders) instead of STEMS files")
    p.add_argument("--layout", choices=["auto", "musdb", "folder", "real"], default="auto",
                   help="dataset layout (default: auto; real: ROOT/{musdb7train,eif_cc0}/<song>/<stem>.opus)")
    p.add_argument("--subset", default=None,
                   help="subset to evaluate (default: test; every track of a folder of stems without a manifest)")
    p.add_argument("-m", "--model", dest="models", action="append", default=[], metavar="MODEL",
                   help="model file or bundled model name; repeat for several")
    p.add_argument("--oracle", default=None, metavar="LIST",
                   help=f"comma-separated oracles among {','.join(ORACLES)}")
    p.add_argument("-o", "--outdir", default="evaluation", help="output folder (default: evaluation)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="tracks evaluated in parallel processes (default: 1)")
    p.add_argument("--backend", choices=["fast", "museval"], default="fast",
                   help="BSSEval v4 implementation: fast (torch, default) or museval")
    p.add_argument("--tracks", nargs="+", default=None, metavar="NAME", help="evaluate only these tracks")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="evaluate only the first S seconds of each track")
    p.add_argument("--no-report", action="store_true", help="do not write report.md and the plots")
    two = p.add_argument_group(
        "two-stem mode (vocals / accompaniment data, e.g. MIR-1K)",
        "ROOT holds vocals/ and accompaniment/ folders of same-named files (MIR-1K) or track folders "
        "with vocals.* and accompaniment.* (or drums/bass/other). Each model's vocals and the sum of its "
        "other stems are scored with global SDR and BSSEval v4 SDR; medians are printed and written to "
        "OUTDIR/two_stems.json, every mixture to OUTDIR/two_stems.csv.")
    two.add_argument("--two-stems", default=None, metavar="STEM", help="score STEM (vocals) against the rest")
    two.add_argument("--levels", default=None, metavar="DB,DB",
                     help="mix each pair at these voice-to-accompaniment RMS ratios (e.g. 0,-5); default: as recorded")
    p.add_argument("--split", choices=("train", "valid"), default=None,
                   help="only the held-out (valid) or training part: MIR-1K singers, or the real four-stem songs "
                        "(valid: the fixed real validation set)")
    two.add_argument("--limit", type=int, default=None, metavar="N", help="score N pairs spread over the set")
    two.add_argument("--no-bsseval", action="store_true", help="global SDR only (faster)")
    p.add_argument("--speeds", default=None, metavar="LIST",
                   help="every model separates with this speed ensemble, e.g. 1,1.12,1.19 (see convsep "
                        "separate --speeds); its results are named MODEL-speeds-1-1.12-1.19")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)


def _levels(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        from convsep.errors import ConvSepError
        raise ConvSepError(f"--levels: expected comma-separated dB values such as 0,-5, got {text!r}") from None


def two_stem_handler(args: argparse.Namespace) -> int:
    from convsep.evaluate.two_stems import evaluate_two_stems

    summary = evaluate_two_stems(args.root, args.models, args.outdir, levels_db=_levels(args.levels),
                                 split=args.split, max_seconds=args.max_seconds, bsseval=not args.no_bsseval,
                                 vocals=args.two_stems, device=args.device, limit=args.limit,
                                 progress=not args.no_progress and sys.stderr.isatty(), speeds=args.speeds)
    keys = [k for k in next(iter(summary.values())) if k != "mixtures"]
    print("| model | mixtures | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for name, row in summary.items():
        print(f"| {name} | {row['mixtures']} | " + " | ".join(f"{row[k]:.2f}" for k in keys) + " |")
    print(f"medians in dB -> {args.outdir}/two_stems.json, every mixture in {args.outdir}/two_stems.csv")
    return 0


def handler(args: argparse.Namespace) -> int:
    if args.two_stems:
        return two_stem_handler(args)
    from convsep.evaluate.report import render_report
    from convsep.evaluate.runner import evaluate

    result = evaluate(args.root, models=args.models, oracles=args.oracle, outdir=args.outdir,
                      subset=args.subset, layout=args.layout, is_wav=args.is_wav, tracks=args.tracks,
                      backend=args.backend, device=args.device, jobs=args.jobs,
                      max_seconds=args.max_seconds, progress=not args.no_progress and sys.stderr.isatty(),
                      report=not args.no_report, speeds=args.speeds, split=args.split)
    for failure in result.failures:
        print(f"convsep evaluate: error: {failure}", file=sys.stderr)
    if result.report is not None:
        print(render_report([args.outdir]).terminal)
        print()
    speed = f", {result.audio_seconds / result.elapsed:.2f}x real time" if result.audio_seconds and result.elapsed else ""
    print(f"evaluated {len(result.evaluated)} track-method pair(s), skipped {len(result.skipped)} already done"
          f"{', ' + str(len(result.failures)) + ' failed' if result.failures else ''}; "
          f"{result.audio_seconds:.1f} s of audio in {result.elapsed:.1f} s{speed} -> {args.outdir}"
          + (f" (report: {result.report})" if result.report else ""))
    return EXIT_ERROR if result.failures else 0
