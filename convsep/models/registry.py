"""The models and assets bundled with convsep, in ``convsep/pretrained/``: one place for
their names and paths.

- ``<name>.pt``: bundled model files (``default``, the low-latency ``realtime``, ...),
  listed by :func:`list_models` and found by name with :func:`resolve_model_path`;
- ``demo/``: the demo song, an excerpt of a test-split track of the synthetic corpus,
  never seen in training: four 16-bit FLAC stems whose sum is the mixture, and
  ``demo.json`` (read with :func:`load_demo`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from convsep.constants import SOURCES
from convsep.errors import ConvSepError

PRETRAINED_DIR = Path(__file__).parent.parent / "pretrained"
DEFAULT_MODEL = "default"                 # the bundled model used when none is named
REALTIME_MODEL = "realtime"               # the bundled low-latency model's name
DEMO_DIR = PRETRAINED_DIR / "demo"


def list_models() -> list[str]:
    """The names of the bundled models, sorted (each is ``PRETRAINED_DIR / f"{name}.pt"``)."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def is_bundled(name: str) -> bool:
    """Whether a model of that name is bundled with this installation."""
    return (PRETRAINED_DIR / f"{name}.pt").exists()


MODEL_SUFFIXES = (".pt", ".onnx", ".ts", ".torchscript")


def looks_like_path(name: str | os.PathLike) -> bool:
    """A path object, or text with a folder separator or a model file suffix (``./default``,
    ``runs/x/best.pt``, ``x.onnx``); anything else may be a bundled model's name."""
    if not isinstance(name, str):
        return True
    return "/" in name or os.sep in name or Path(name).suffix.lower() in MODEL_SUFFIXES


def resolve_model_path(name_or_path: str | os.PathLike | None) -> Path:
    """A path, or the name of a model bundled in convsep/pretrained (None: the default).
    A bundled name wins over a file or folder of that name in the current folder unless the
    argument looks like a path: ``./default`` names a local file called ``default``."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    text = os.fspath(name_or_path)
    bundled = PRETRAINED_DIR / f"{text}.pt"
    if text and not looks_like_path(name_or_path) and bundled.exists():
        return bundled
    path = Path(name_or_path)
    if path.exists():
        return path
    if text == DEFAULT_MODEL:
        raise ConvSepError("no default model is bundled with this installation; pass -m MODEL.pt")
    bundled_names = list_models()
    hint = f" (bundled models: {', '.join(bundled_names)})" if bundled_names else ""
    raise ConvSepError(f"{name_or_path}: no such model file{hint}")


def load_demo(folder: Path = DEMO_DIR) -> tuple[dict, torch.Tensor]:
    """(metadata, references (4, 2, samples) float32) of the bundled demo."""
    try:
        meta = json.loads((folder / "demo.json").read_text())
        stems = [sf.read(str(folder / f"{s}.flac"), dtype="float32", always_2d=True)[0].T
                 for s in SOURCES]
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConvSepError(f"the bundled demo in {folder} is missing or damaged ({exc})") from None
    return meta, torch.from_numpy(np.stack(stems))
