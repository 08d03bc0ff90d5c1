"""SIGTERM and SIGHUP stop a command the way Ctrl-C does: as an exception, so every
``except BaseException`` / ``finally`` that removes temporaries runs."""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP. Like
    KeyboardInterrupt it is not an ``Exception``, so generic handlers do not swallow it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_terminated(signum, frame) -> None:
    # Once is enough: further signals while cleaning up are ignored.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


def stop_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into ``Terminated`` (main thread only; a no-op elsewhere)."""
    try:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:   # nohup stays nohup
                signal.signal(sig, _raise_terminated)
    except ValueError:  # not the main thread of the main interpreter
        pass


PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """In a worker process: stop (SIGTERM, so its temporaries are removed) when the parent
    dies, however it dies (``kill -9`` included), instead of finishing and idling as an
    orphan. Linux: the kernel's parent-death signal; everywhere: a thread watching the
    parent's sentinel pipe, which closes when the parent is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is not None:
        def watch() -> None:
            from multiprocessing.connection import wait

            wait([sentinel])
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="convsep-parent-watch", daemon=True).start()
    if parent.pid is not None and os.getppid() != parent.pid:   # it died before we watched
        os.kill(os.getpid(), signal.SIGTERM)
