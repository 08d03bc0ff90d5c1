"""Training checkpoints: the whole state of a run, written atomically.

A checkpoint is a ``torch.save`` dict: {"format": "convsep-checkpoint", "version": 1,
"train_config", "model_config", "model", "optimiser", "scheduler", "samplers" (one
generator state per process), "rng", "step", "history", "best"}. A failed write (disk full)
leaves the previous checkpoint in place.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch

from convsep.errors import ConvSepError
from convsep.io.atomic import atomic_write_bytes

FORMAT = "convsep-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConvSepError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise ConvSepError(f"{path}: damaged checkpoint ({str(exc).strip().splitlines()[0][:100]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
        raise ConvSepError(f"{path}: not a convsep training checkpoint (or from another version)")
    return state


def config_difference(saved: dict, current: dict) -> str | None:
    """The first field that differs between two model configs, as a message, or None."""
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            return f"{key}: checkpoint {saved.get(key)!r}, now {current.get(key)!r}"
    return None
