"""Atomic writes: a file is written under a temporary name beside its target, flushed, then
renamed over it, so a reader sees the old file or the new one, never a partial one."""
from __future__ import annotations

import os
from pathlib import Path

from convsep.errors import ConvSepError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConvSepError(f"{path}: could not write ({exc.strerror or exc})") from None


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConvSepError(f"{path}: could not write ({exc.strerror or exc})") from None
