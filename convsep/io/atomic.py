"""Atomic writes: a file is written under a temporary name beside its target, flushed, then
renamed over it, so a reader sees the old file or the new one, never a partial one."""
from __future__ import annotations

import os
from pathlib import Path

from convsep.errors import ConvSepError
from convsep.io.filesafety import check_replaceable


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Never replaces anything but a regular file or a link (a device or FIFO is refused)."""
    check_replaceable(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        check_replaceable(path)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        raise ConvSepError(f"{path}: could not write ({exc.strerror or exc})") from None


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` of ``text`` (UTF-8), creating ``path``'s folder if needed."""
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
