"""Function-preserving widening of a trained ConvSep (to fine-tune it with more capacity).

The wider model computes exactly the narrow model's output: every new unit gets fresh random
input weights, and its outgoing weights start at zero, so it contributes nothing until training
moves them (their gradients are not zero: the new units' activations are). This is Net2Net's
"wider" step with zero outgoing weights instead of split copies.
"""
from __future__ import annotations

import dataclasses

import torch

from convsep.errors import ConvSepError
from convsep.models.config import ConvSepConfig
from convsep.models.network import ConvSep

WIDTHS = ("conv1_filters", "conv2_filters", "bottleneck")


def widening_problem(narrow: ConvSepConfig, wide: ConvSepConfig) -> str | None:
    """Why ``narrow`` cannot be widened into ``wide``; None when it can."""
    if narrow.tied or wide.tied:
        return "tied decoders cannot be widened"
    others = {f.name for f in dataclasses.fields(ConvSepConfig)} - set(WIDTHS)
    differ = sorted(n for n in others if getattr(narrow, n) != getattr(wide, n))
    if differ:
        return f"besides the widths, {', '.join(differ)} differ"
    smaller = [n for n in WIDTHS if getattr(wide, n) < getattr(narrow, n)]
    if smaller:
        return f"{', '.join(smaller)} would shrink"
    return None


@torch.no_grad()
def widen(model: ConvSep, config: ConvSepConfig) -> ConvSep:
    """A ConvSep of ``config`` (wider or equal widths) with ``model``'s function.

    New units' input weights keep ``ConvSep(config)``'s random initialisation (seeded by the
    caller's torch generator state); their outgoing weights are zero.
    """
    problem = widening_problem(model.config, config)
    if problem:
        raise ConvSepError(f"cannot widen the model: {problem}")
    old, new = model, ConvSep(config)
    f1, f2, b = old.config.conv1_filters, old.config.conv2_filters, old.config.bottleneck
    t = old.config.frames_after_conv2
    S, F2 = len(config.sources), config.conv2_filters

    new.conv1.weight[:f1] = old.conv1.weight
    new.conv1.bias[:f1] = old.conv1.bias
    new.conv2.weight[:f2, :f1] = old.conv2.weight
    new.conv2.weight[:f2, f1:] = 0                       # old filters ignore new channels
    new.conv2.bias[:f2] = old.conv2.bias

    dense = new.encode_dense.weight.view(config.bottleneck, F2, t)
    dense[:b, :f2] = old.encode_dense.weight.view(b, f2, t)
    dense[:b, f2:] = 0                                   # old code units ignore new filters
    new.encode_dense.bias[:b] = old.encode_dense.bias

    decode = new.decode_weight.view(S, config.bottleneck, F2, t)
    decode[:, :b, :f2] = old.decode_weight.view(S, b, f2, t)
    decode[:, b:, :f2] = 0                               # old hidden units ignore new code units
    new.decode_bias.view(S, F2, t)[:, :f2] = old.decode_bias.view(S, f2, t)

    new.deconv2_weight[:, :f2, :f1] = old.deconv2_weight
    new.deconv2_weight[:, f2:, :f1] = 0                  # old channels ignore new hidden units
    new.deconv1_weight.zero_()
    new.deconv1_weight[:, :f1] = old.deconv1_weight      # new channels reach no output yet
    if old.deconv2_bias is not None:
        new.deconv2_bias.zero_()
        new.deconv2_bias[:, :f1] = old.deconv2_bias
        new.deconv1_bias.copy_(old.deconv1_bias)
    if old.source_bias is not None:
        new.source_bias.copy_(old.source_bias)
    if old.config.input_norm:
        new.input_mean.copy_(old.input_mean)
        new.input_gain.copy_(old.input_gain)
    return new
