"""ConvSep models: config + presets, the module, and model files."""
from convsep.models.config import PRESETS, SOURCES, ConvSepConfig, preset
from convsep.models.convsep import ConvSep

__all__ = ["PRESETS", "SOURCES", "ConvSep", "ConvSepConfig", "preset"]
