"""Model files: one file holds a model's config, weights and metadata.

A file is a ``torch.save`` of a plain dict (loaded with ``weights_only=True``, so loading
runs no code from the file): {"format": "convsep-model", "version": 1, "config": {...},
"state_dict": {...}, "metadata": {...}}. Metadata says what the model was trained on, for
how many steps, and its scores.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from convsep.errors import ConvSepError
from convsep.io.atomic import atomic_write_bytes
from convsep.models import ConvSep, ConvSepConfig
from convsep.models.registry import resolve_model_path

FORMAT = "convsep-model"
VERSION = 1


def save_model(path: str | os.PathLike, model: ConvSep, metadata: dict | None = None) -> Path:
    """Writes the model file atomically (temporary name, then rename)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_model_file(path: str | os.PathLike | None) -> dict:
    """The checked payload of a model file (see the module docstring). A model file is
    untrusted input: anything but a well-formed payload is refused with one line."""
    path = resolve_model_path(path)
    if path.is_dir():
        raise ConvSepError(f"{path}: is a folder, not a convsep model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the bytes, the answer is "not a model"
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ConvSepError(f"{path}: damaged or not a convsep model file ({detail})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConvSepError(f"{path}: not a convsep model file")
    if payload.get("version") != VERSION:
        raise ConvSepError(f"{path}: model file version {payload.get('version')!r} is not supported "
                           f"by this convsep (expects {VERSION})")
    for key, kind in (("config", "a mapping of fields"), ("state_dict", "a mapping of tensors")):
        if not isinstance(payload.get(key), dict):
            raise ConvSepError(f"{path}: damaged convsep model file ('{key}' is missing or not {kind})")
    if not isinstance(payload.get("metadata", {}), dict):
        raise ConvSepError(f"{path}: damaged convsep model file ('metadata' is not a mapping)")
    payload["path"] = str(path)
    return payload


def check_weights(state_dict: dict, where: str) -> None:
    """Refuses anything but finite floating-point tensors: NaN or Inf weights would give
    full-scale noise stems without a word."""
    for name, value in state_dict.items():
        if not torch.is_tensor(value) or not value.is_floating_point():
            raise ConvSepError(f"{where}: damaged convsep model file (weight {str(name)[:60]!r} "
                               "is not a floating-point tensor)")
        if not torch.isfinite(value).all():
            raise ConvSepError(f"{where}: the model's weights contain NaN or infinite values "
                               f"({str(name)[:60]}); the file is damaged or came from a diverged training run")


def load_model(path: str | os.PathLike | None = None) -> tuple[ConvSep, dict]:
    """(model in eval mode, metadata) from a model file or a bundled model's name.
    The config is checked (types, ranges, size) before anything is built."""
    payload = read_model_file(path)
    where = payload["path"]
    try:
        config = ConvSepConfig.from_dict(payload["config"])
    except ConvSepError as exc:
        raise ConvSepError(f"{where}: {exc}") from None
    check_weights(payload["state_dict"], where)
    model = ConvSep(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ConvSepError(f"{where}: weights do not match the model config "
                           f"({str(exc).strip().splitlines()[0][:120]})") from None
    model.eval()
    return model, payload.get("metadata", {})
