"""``convsep report DIR... [--out report.md] [--plots DIR]``"""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="tables and plots of earlier evaluations, compared side by side",
        description="Re-render the report of one or more `convsep evaluate` output folders "
                    "without recomputing: median of medians per method, source and metric, "
                    "global SDR, boxplots, and published numbers for MUSDB18.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="evaluation folders (convsep evaluate --outdir)")
    p.add_argument("--out", default=None, help="write the markdown report to this file")
    p.add_argument("--plots", default=None, metavar="DIR", help="write the PNG boxplots to this folder")
    published = p.add_mutually_exclusive_group()
    published.add_argument("--published", dest="published", action="store_true", default=None,
                           help="always show the published MUSDB18 numbers")
    published.add_argument("--no-published", dest="published", action="store_false",
                           help="never show them (default: shown when the data is MUSDB18)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from convsep.evaluate.report import render_report

    report = render_report(args.dirs, out=args.out, plots=args.plots, published=args.published)
    print(report.markdown if args.out is None else report.terminal)
    if report.markdown_path:
        print(f"report: {report.markdown_path}" + (f", {len(report.plots)} plot(s) in {args.plots}" if report.plots else ""))
    return 0
