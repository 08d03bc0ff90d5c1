"""Command line: ``convsep <command> ...``. Each command lives in its own module under
convsep/cli/ and only parses arguments and calls the Python API.

Every command module defines ``register(subparsers)`` which adds its parser and sets
``func`` to a handler ``handler(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib

from convsep.cli.failures import EXIT_CODES, run_command
from convsep.constants import VERSION
from convsep.runtime.allocator import keep_freed_memory

COMMANDS = ["separate", "mix", "info", "demo", "synth", "prepare", "train", "evaluate", "report", "export", "serve", "stream"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convsep",
        description="Fast convolutional music source separation: vocals, drums, bass, other.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (for bug reports)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"convsep.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"convsep {VERSION}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    keep_freed_memory()
    return run_command(args)
