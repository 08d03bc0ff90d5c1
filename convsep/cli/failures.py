"""The one error path of the command line: how a command's failure reaches the user.

Exit codes (also in ``convsep --help`` and the README):
  0    success
  2    a user-facing error (ConvSepError, a file system error such as a full disk or a
       read-only folder, bad arguments): one line ``convsep CMD: error: ...``; also when
       some inputs of a batch failed (each named on its own line, the others done)
  1    an internal error, i.e. a bug: one line saying where to report it; the traceback
       only with ``convsep --debug``
  128+N  stopped by signal N: 130 Ctrl-C (SIGINT), 129 SIGHUP, 143 SIGTERM; temporaries removed
"""
from __future__ import annotations

import argparse
import signal
import sys
import traceback
import warnings

from convsep.errors import ConvSepError
from convsep.io.filesafety import describe_os_error
from convsep.runtime.os_signals import STOP_SIGNALS, Terminated, stop_on_signals

EXIT_OK, EXIT_BUG, EXIT_ERROR = 0, 1, 2
EXIT_CODES = ("exit codes: 0 success; 2 error in the input, files, model or settings (one line "
              "'error: ...'; also when some files of a batch failed); 1 internal error (a bug: "
              "please report it, rerun with --debug for the traceback); 128+N stopped by signal N "
              "(130 Ctrl-C, 143 SIGTERM)")
REPORT = ("this is a bug in convsep; please report it on the convsep issue tracker with the output "
          "of the same command run as 'convsep --debug ...'")


def one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def run_command(args: argparse.Namespace) -> int:
    """Runs ``args.func(args)`` and turns every way it can fail into one line and an exit code."""
    name = f"convsep {args.command}"
    debug = getattr(args, "debug", False)
    previous_signals = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    previous_format = warnings.formatwarning
    stop_on_signals()
    warnings.formatwarning = lambda message, *rest, **kw: f"{name}: warning: {one_line(message)}\n"
    try:
        return int(args.func(args) or 0)
    except ConvSepError as exc:
        _traceback_if(debug)
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:   # the environment, not the code: full disk, permissions, read-only
        _traceback_if(debug)
        print(f"{name}: error: {one_line(describe_os_error(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        _traceback_if(debug)
        print(f"{name}: error: out of memory; try a smaller input, fewer --jobs or a smaller model",
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated as exc:
        print(f"{name}: stopped by {exc.name}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, not a traceback
        if debug:
            traceback.print_exc()
        print(f"{name}: internal error: {type(exc).__name__}: {one_line(exc)[:200]}; {REPORT}",
              file=sys.stderr)
        return EXIT_BUG
    finally:
        warnings.formatwarning = previous_format
        for sig, handler in previous_signals.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):
                pass


def _traceback_if(debug: bool) -> None:
    if debug:
        traceback.print_exc()
