"""The JSON-able description of a ConvSep model, and its presets."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from convsep.errors import ConvSepError

SOURCES = ("vocals", "drums", "bass", "other")


@dataclass
class ConvSepConfig:
    """Architecture and front end of a ConvSep model.

    Input blocks are (batch, channels, context, bins) magnitudes scaled by ``input_scale``;
    outputs are (batch, sources, channels, context, bins) non-negative source magnitudes.
    """

    sources: tuple[str, ...] = SOURCES
    channels: int = 2                 # audio channels in and out (1: mono model)
    n_fft: int = 1024
    hop: int = 256
    context: int = 30                 # frames per block
    conv1_filters: int = 50           # "vertical" conv, kernel (1, bins): timbre
    conv2_filters: int = 30           # "horizontal" conv, kernel (time_kernel, 1): time
    time_kernel: int = 15
    bottleneck: int = 128
    tied: bool = False                # decoder transposed convs share the encoder weights
    conv_activation: str = "none"     # after each encoder conv: "none" or "relu"
    output_bias: str = "conv"         # "conv": transposed-conv biases; "source": one per source
    input_scale: float = 1.0 / 32.0   # magnitude / sqrt(n_fft)
    input_transform: str = "linear"   # "linear" or "log1p" compression of the input
    input_norm: bool = False          # learned per-bin affine normalisation of the input
    block_hop: int = 15               # default hop between blocks at inference (frames)
    crossfade: str = "triangular"     # overlap-add weights: "triangular" or "equal"
    mask_power: float = 1.0           # soft masks from |y|^p: 1 magnitude ratio, 2 power ratio

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frames_after_conv2(self) -> int:
        return self.context - self.time_kernel + 1

    def validate(self) -> "ConvSepConfig":
        problems = []
        if not self.sources or len(set(self.sources)) != len(self.sources):
            problems.append("sources must be distinct names")
        if self.channels not in (1, 2):
            problems.append("channels must be 1 or 2")
        if self.n_fft < 16 or self.n_fft & (self.n_fft - 1):
            problems.append("n_fft must be a power of two >= 16")
        if not 0 < self.hop <= self.n_fft // 2:
            problems.append("hop must be in (0, n_fft / 2]")
        if not 1 <= self.time_kernel <= self.context:
            problems.append("time_kernel must be in [1, context]")
        if not 1 <= self.block_hop <= self.context:
            problems.append("block_hop must be in [1, context]")
        if self.conv_activation not in ("none", "relu"):
            problems.append("conv_activation must be 'none' or 'relu'")
        if self.output_bias not in ("conv", "source"):
            problems.append("output_bias must be 'conv' or 'source'")
        if self.input_transform not in ("linear", "log1p"):
            problems.append("input_transform must be 'linear' or 'log1p'")
        if self.crossfade not in ("triangular", "equal"):
            problems.append("crossfade must be 'triangular' or 'equal'")
        if self.mask_power <= 0:
            problems.append("mask_power must be positive")
        if min(self.conv1_filters, self.conv2_filters, self.bottleneck) < 1:
            problems.append("layer widths must be positive")
        if problems:
            raise ConvSepError("invalid model config: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sources"] = list(self.sources)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ConvSepConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConvSepError(f"model config has unknown fields {sorted(unknown)}: "
                               "it was written by a newer convsep")
        data = dict(data)
        if "sources" in data:
            data["sources"] = tuple(data["sources"])
        return cls(**data).validate()


PRESETS: dict[str, ConvSepConfig] = {
    # DeepConvSep's 4-source DSD100 model, mono, decoder tied to the encoder.
    "deepconvsep": ConvSepConfig(
        channels=1, conv1_filters=50, conv2_filters=50, time_kernel=15, bottleneck=128,
        tied=True, output_bias="source", input_scale=0.3 / math.sqrt(1024), block_hop=5,
    ),
    # PytorchConvSep's stereo model: untied decoders to 8 output channels.
    "convsep-stereo": ConvSepConfig(
        channels=2, conv1_filters=50, conv2_filters=30, time_kernel=15, bottleneck=128,
        tied=False, output_bias="conv", block_hop=15,
    ),
    # Wider, log-compressed input with learned normalisation and ReLU between convs.
    "convsep-plus": ConvSepConfig(
        channels=2, conv1_filters=64, conv2_filters=32, time_kernel=10, bottleneck=256,
        tied=False, output_bias="conv", conv_activation="relu", input_transform="log1p",
        input_norm=True, block_hop=10,
    ),
}


def preset(name: str, **overrides) -> ConvSepConfig:
    if name not in PRESETS:
        raise ConvSepError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides).validate()
