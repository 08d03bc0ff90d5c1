"""The JSON-able description of a ConvSep model, and its presets."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import asdict, dataclass

from convsep.constants import SOURCES
from convsep.errors import ConvSepError

# Bounds for configs read from files (untrusted): generous for real models, small enough
# that building one cannot exhaust memory. Source names become file names.
SOURCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
MAX_SOURCES = 16
MAX_N_FFT = 16384
MAX_CONTEXT = 1024
MAX_WIDTH = 8192
MAX_PARAMETERS = 200_000_000


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

    def parameter_count(self) -> int:
        """Parameters of the model this config builds (computed without building it)."""
        S, C, f1, f2, k, b = (len(self.sources), self.channels, self.conv1_filters,
                              self.conv2_filters, self.time_kernel, self.bottleneck)
        hidden = f2 * self.frames_after_conv2
        count = C * f1 * self.bins + f1 + f1 * f2 * k + f2 + hidden * b + b + S * (b * hidden + hidden)
        if not self.tied:
            count += S * (f2 * f1 * k + f1 * C * self.bins)
            if self.output_bias == "conv":
                count += S * (f1 + C)
        if self.output_bias == "source":
            count += S
        return count + (2 * self.bins if self.input_norm else 0)

    def _type_problems(self) -> list[str]:
        problems = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_KINDS[f.name]
            if kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            elif kind is tuple:
                ok = isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)
            else:
                ok = isinstance(value, kind)
            if not ok:
                problems.append(f"{f.name} must be {_KIND_NAMES[kind]}, got {_show(value)}")
        return problems

    def validate(self) -> "ConvSepConfig":
        """Checks every field's type and range (a model file is untrusted input), before
        anything is built; raises ConvSepError with one line naming the problems."""
        problems = self._type_problems()
        if problems:
            raise ConvSepError("invalid model config: " + "; ".join(problems))
        if not 1 <= len(self.sources) <= MAX_SOURCES:
            problems.append(f"sources must hold 1 to {MAX_SOURCES} names")
        bad_names = [s for s in self.sources if not SOURCE_NAME.fullmatch(s)]
        if bad_names:
            problems.append(f"source names must be simple identifiers (letters, digits, _; at most 32), "
                            f"got {_show(bad_names[0])}")
        elif len(set(self.sources)) != len(self.sources):
            problems.append("sources must be distinct names")
        if self.channels not in (1, 2):
            problems.append("channels must be 1 or 2")
        if not 16 <= self.n_fft <= MAX_N_FFT or self.n_fft & (self.n_fft - 1):
            problems.append(f"n_fft must be a power of two in [16, {MAX_N_FFT}]")
        if not 0 < self.hop <= self.n_fft // 2:
            problems.append("hop must be in (0, n_fft / 2]")
        if not 1 <= self.context <= MAX_CONTEXT:
            problems.append(f"context must be in [1, {MAX_CONTEXT}]")
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
        if not 0 < self.mask_power <= 16:
            problems.append("mask_power must be in (0, 16]")
        if not 0 < self.input_scale <= 1e6:
            problems.append("input_scale must be in (0, 1e6]")
        widths = {"conv1_filters": self.conv1_filters, "conv2_filters": self.conv2_filters,
                  "bottleneck": self.bottleneck}
        for name, width in widths.items():
            if not 1 <= width <= MAX_WIDTH:
                problems.append(f"{name} must be in [1, {MAX_WIDTH}]")
        if not problems and self.parameter_count() > MAX_PARAMETERS:
            problems.append(f"the model would have {self.parameter_count():,} parameters "
                            f"(at most {MAX_PARAMETERS:,})")
        if problems:
            raise ConvSepError("invalid model config: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sources"] = list(self.sources)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ConvSepConfig":
        if not isinstance(data, dict):
            raise ConvSepError(f"invalid model config: expected a mapping of fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConvSepError(f"model config has unknown fields {sorted(map(str, unknown))[:5]}: "
                               "it was written by a newer convsep, or is not a convsep config")
        data = dict(data)
        if isinstance(data.get("sources"), list):
            data["sources"] = tuple(data["sources"])
        return cls(**data).validate()


_FIELD_KINDS = {f.name: {"tuple[str, ...]": tuple, "int": int, "bool": bool, "str": str,
                         "float": float}[f.type] for f in dataclasses.fields(ConvSepConfig)}
_KIND_NAMES = {tuple: "a list of names", int: "an integer", bool: "true or false", str: "a string",
               float: "a finite number"}


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    unknown = sorted(set(overrides) - set(_FIELD_KINDS))
    if unknown:
        raise ConvSepError(f"unknown model config field(s) {', '.join(unknown)}; "
                           f"known: {', '.join(_FIELD_KINDS)}")
    if isinstance(overrides.get("sources"), list):
        overrides["sources"] = tuple(overrides["sources"])
    return dataclasses.replace(PRESETS[name], **overrides).validate()
