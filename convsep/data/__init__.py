"""Training data: track sources, the decoded cache, the batched sampler and augmentations.

The order of the source axis is ``convsep.constants.SOURCES``.
"""
from __future__ import annotations

from convsep.data.augment import AugmentConfig
from convsep.data.cache import Cache, CachedTrack, DeviceCache, open_cache, prepare_cache
from convsep.data.sampler import ExcerptSampler
from convsep.data.tracks import Track, list_tracks, load_sources

__all__ = [
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
