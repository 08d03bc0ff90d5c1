"""SIGTERM and SIGHUP stop a command the way Ctrl-C does: as an exception, so every
``except BaseException`` / ``finally`` that removes temporaries runs."""
from __future__ import annotations

import signal

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
