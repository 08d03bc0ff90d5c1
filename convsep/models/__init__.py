"""ConvSep models: configs and presets (config.py), the network (network.py), model files
(modelfile.py), ONNX and TorchScript export (export.py), the bundled models and the demo's
assets (registry.py), and changes of frame length (reframe.py) and width (widen.py)."""
from convsep.models.config import PRESETS, ConvSepConfig, preset
from convsep.models.network import ConvSep

__all__ = ["PRESETS", "ConvSep", "ConvSepConfig", "preset"]
