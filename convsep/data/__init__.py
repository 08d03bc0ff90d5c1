"""Training data: track sources, the decoded cache, the batched sampler and augmentations.

``SOURCES`` fixes the order of the source axis everywhere in the package.
"""
from __future__ import annotations

SOURCES: tuple[str, ...] = ("vocals", "drums", "bass", "other")

from convsep.data.tracks import Track, list_tracks, load_sources  # noqa: E402
from convsep.data.cache import Cache, CachedTrack, DeviceCache, open_cache, prepare_cache  # noqa: E402
from convsep.data.augment import AugmentConfig  # noqa: E402
from convsep.data.sampler import ExcerptSampler  # noqa: E402

__all__ = [
    "SOURCES",
    "Track",
    "list_tracks",
    "load_sources",
    "Cache",
    "CachedTrack",
    "DeviceCache",
    "open_cache",
    "prepare_cache",
    "AugmentConfig",
    "ExcerptSampler",
]
