"""ConvSep: the DeepConvSep convolutional autoencoder, batched over sources.

Encoder: conv (1, bins) over frequency ("vertical", timbre) -> conv (time_kernel, 1) over
time ("horizontal") -> dense bottleneck with ReLU. One decoder per source: dense -> the two
transposed convolutions (tied to the encoder weights or not) -> ReLU. The four decoders run
as one batched computation (einsum / grouped conv), which is the same function as four
separate branches, with the same parameter count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convsep.models.config import ConvSepConfig


class ConvSep(nn.Module):
    def __init__(self, config: ConvSepConfig):
        super().__init__()
        self.config = config.validate()
        c = config
        S, C, f1, f2, k = len(c.sources), c.channels, c.conv1_filters, c.conv2_filters, c.time_kernel
        hidden = f2 * c.frames_after_conv2
        self.conv1 = nn.Conv2d(C, f1, (1, c.bins))
        self.conv2 = nn.Conv2d(f1, f2, (k, 1))
        self.encode_dense = nn.Linear(hidden, c.bottleneck)
        # Decoder parameters stacked over sources (S, ...).
        self.decode_weight = nn.Parameter(torch.empty(S, c.bottleneck, hidden))
        self.decode_bias = nn.Parameter(torch.empty(S, hidden))
        if not c.tied:
            self.deconv2_weight = nn.Parameter(torch.empty(S, f2, f1, k))
            self.deconv1_weight = nn.Parameter(torch.empty(S, f1, C, c.bins))
        if c.output_bias == "conv" and not c.tied:
            self.deconv2_bias = nn.Parameter(torch.zeros(S, f1))
            self.deconv1_bias = nn.Parameter(torch.zeros(S, C))
        else:
            self.deconv2_bias = self.deconv1_bias = None
        self.source_bias = nn.Parameter(torch.zeros(S)) if c.output_bias == "source" else None
        # placement[k * T' + t, t + k] = 1: sums the spread frames into the output frames.
        k, t_out = torch.meshgrid(torch.arange(c.time_kernel), torch.arange(c.frames_after_conv2), indexing="ij")
        placement = torch.zeros(c.time_kernel * c.frames_after_conv2, c.context)
        placement[(k * c.frames_after_conv2 + t_out).flatten(), (k + t_out).flatten()] = 1.0
        self.register_buffer("placement", placement, persistent=False)
        if c.input_norm:
            self.input_mean = nn.Parameter(torch.zeros(c.bins))
            self.input_gain = nn.Parameter(torch.ones(c.bins))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        c = self.config
        bound = (1.0 / c.bottleneck) ** 0.5
        nn.init.uniform_(self.decode_weight, -bound, bound)
        nn.init.uniform_(self.decode_bias, -bound, bound)
        if not c.tied:
            # Same fan-in scaling that nn.ConvTranspose2d uses for each branch.
            nn.init.uniform_(self.deconv2_weight, -(1.0 / (c.conv1_filters * c.time_kernel)) ** 0.5,
                             (1.0 / (c.conv1_filters * c.time_kernel)) ** 0.5)
            nn.init.uniform_(self.deconv1_weight, -(1.0 / (c.channels * c.bins)) ** 0.5,
                             (1.0 / (c.channels * c.bins)) ** 0.5)

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.config.conv_activation == "relu" else x

    def prepare_input(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Raw |STFT| blocks -> network input (scaling, compression, normalisation)."""
        c = self.config
        x = magnitude * c.input_scale
        if c.input_transform == "log1p":
            x = torch.log1p(x)
        if c.input_norm:
            x = (x - self.input_mean) * self.input_gain
        return x

    def encode(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(B, channels, context, bins) -> (B, bottleneck)."""
        B, C, T, bins = magnitude.shape
        # conv1 has a full-height kernel (1, bins): it is a matmul over channels x bins.
        x = self.prepare_input(magnitude).transpose(1, 2).reshape(B, T, C * bins)
        x = F.linear(x, self.conv1.weight.reshape(self.conv1.out_channels, C * bins), self.conv1.bias)
        x = self._activate(x).transpose(1, 2)                           # (B, f1, T)
        # conv2 over time as unfold + matmul (faster than a tiny convolution on CPU).
        k = self.config.time_kernel
        cols = x.unfold(2, k, 1)                                        # (B, f1, T', k)
        x = torch.einsum("bftk,gfk->bgt", cols, self.conv2.weight[..., 0]) + self.conv2.bias[:, None]
        x = self._activate(x)                                           # (B, f2, T')
        return F.relu(self.encode_dense(x.flatten(1)))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """(B, bottleneck) -> (B, sources, channels, context, bins), non-negative."""
        c = self.config
        S, f1, f2 = len(c.sources), c.conv1_filters, c.conv2_filters
        B = code.shape[0]
        h = F.relu(torch.einsum("bd,sdh->bsh", code, self.decode_weight) + self.decode_bias)
        h = h.reshape(B, S * f2, c.frames_after_conv2)                 # (B, S*f2, T')
        h = h.reshape(B, S, f2, c.frames_after_conv2)                  # (B, S, f2, T')
        if c.tied:
            w2 = self.conv2.weight[..., 0].expand(S, -1, -1, -1)        # (S, f2, f1, k)
            w1 = self.conv1.weight[:, :, 0, :].expand(S, -1, -1, -1)    # (S, f1, C, bins)
        else:
            w2, w1 = self.deconv2_weight, self.deconv1_weight
        # Transposed conv over time: each input frame spreads k frames, then overlap-add.
        spread = torch.einsum("bsft,sfgk->bsgkt", h, w2)                # (B, S, f1, k, T')
        h = spread.flatten(3) @ self.placement.to(spread.dtype)         # (B, S, f1, T)
        if self.deconv2_bias is not None:
            h = h + self.deconv2_bias[None, :, :, None]
        h = self._activate(h)                                           # (B, S, f1, T)
        out = torch.einsum("bsft,sfcq->bsctq", h, w1)                   # (B, S, C, T, bins)
        if self.deconv1_bias is not None:
            out = out + self.deconv1_bias[None, :, :, None, None]
        if self.source_bias is not None:
            out = out + self.source_bias[None, :, None, None, None]
        return F.relu(out)

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        """|STFT| blocks (B, channels, context, bins) -> source magnitudes
        (B, sources, channels, context, bins) in the network's scale (input_scale)."""
        return self.decode(self.encode(magnitude))
