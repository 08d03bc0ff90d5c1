"""The torch device a command or a separator runs on: cpu, cuda, cuda:N, mps, or auto."""
from __future__ import annotations

import torch

from convsep.errors import ConvSepError


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConvSepError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConvSepError(f"device {str(device)!r} is not supported; use cpu, cuda, cuda:N or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConvSepError("--device mps was asked for but torch has no MPS (Apple GPU) support here")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConvSepError("--device cuda was asked for but no CUDA GPU is available to torch")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 products natively (AVX-512-BF16 or AMX). Without it,
    bf16 matrix products are emulated and run many times slower than float32 (about 25x
    for a training step on an AVX2-only EPYC)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "")()
    return "AMX" in str(capability).upper()
