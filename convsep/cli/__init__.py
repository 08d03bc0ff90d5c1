"""Command line: ``convsep <command> ...``. Each command lives in its own module under
convsep/cli/ and only parses arguments and calls the Python API.

Every command module defines ``register(subparsers)`` which adds its parser and sets
``func`` to a handler ``handler(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from convsep.cli.failures import EXIT_CODES, run_command
from convsep.constants import VERSION
from convsep.runtime.allocator import keep_freed_memory

COMMANDS = ["separate", "mix", "info", "demo", "synth", "prepare", "train", "evaluate", "report", "export", "serve", "stream"]


class Parser(argparse.ArgumentParser):
    """Argument errors are one line, ``convsep CMD: error: ...`` (exit 2), without the usage
    block: ``--help`` shows that."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    for stream in (sys.stdout, sys.stderr):   # file names that are not UTF-8 print as \xff, not crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:     # named by the command they were given to, not by the top-level parser
        command = getattr(args, "command", None)
        name = f"convsep {command}" if command else "convsep"
        print(f"{name}: error: unrecognized arguments: {' '.join(extra)} (see {name} --help)", file=sys.stderr)
        return 2
    if args.version:
        print(f"convsep {VERSION}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    keep_freed_memory()
    return run_command(args)
