"""The stems that the training-speed benchmark draws its batches from (shared with the
worker that runs an older commit's step: it imports nothing else of this folder, so
that the commit's own ``convsep`` package is the one it uses)."""
from __future__ import annotations

import torch

from convsep.data.cache import DeviceCache

RATE = 44100


def synthetic_cache(device: torch.device, tracks: int = 8, seconds: float = 60.0, seed: int = 0) -> DeviceCache:
    """int16 (4, 2, tracks x seconds) of noise with a slow loudness envelope, on the device."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * RATE)
    audio = torch.randn(4, 2, tracks * n, generator=g)
    envelope = (torch.sin(torch.arange(tracks * n) * (2 * torch.pi / (3 * RATE))) + 1.1) / 2.1
    audio = (audio * envelope * 0.1 * 32767).clamp(-32767, 32767).to(torch.int16)
    return DeviceCache(audio=audio.to(device), offsets=torch.arange(tracks, device=device) * n,
                       lengths=torch.full((tracks,), n, device=device),
                       scales=torch.ones(tracks, device=device), names=[f"t{i}" for i in range(tracks)],
                       rate=RATE)
