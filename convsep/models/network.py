"""ConvSep: the DeepConvSep convolutional autoencoder, batched over sources.

Encoder: conv (1, bins) over frequency ("vertical", timbre) -> conv (time_kernel, 1) over
time ("horizontal") -> dense bottleneck with ReLU. One decoder per source: dense -> the two
transposed convolutions (tied to the encoder weights or not) -> ReLU. The four decoders run
as one batched computation (einsum / grouped conv), which is the same function as four
separate branches, with the same parameter count.
"""
from __future__ import annotations

import math

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

    def _conv1_weight(self) -> torch.Tensor:
        """conv1 as a matrix (f1, channels * bins)."""
        return self.conv1.weight.reshape(self.conv1.out_channels, -1)

    def encode(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(B, channels, context, bins) -> (B, bottleneck)."""
        B, C, T, bins = magnitude.shape
        # conv1 has a full-height kernel (1, bins): it is a matmul over channels x bins.
        x = self.prepare_input(magnitude).transpose(1, 2).reshape(B, T, C * bins)
        x = F.linear(x, self._conv1_weight(), self.conv1.bias)
        return self._encode_features(self._activate(x).transpose(1, 2))    # (B, f1, T)

    def _encode_features(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 features (B, f1, context) -> (B, bottleneck)."""
        # conv2 over time as unfold + matmul (faster than a tiny convolution on CPU).
        k = self.config.time_kernel
        cols = x.unfold(2, k, 1)                                        # (B, f1, T', k)
        x = torch.einsum("bftk,gfk->bgt", cols, self.conv2.weight[..., 0]) + self.conv2.bias[:, None]
        x = self._activate(x)                                           # (B, f2, T')
        return F.relu(self.encode_dense(x.flatten(1)))

    def _decoder_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Transposed-conv weights (S, f2, f1, k) and (S, f1, C, bins) (views when tied)."""
        c = self.config
        S = len(c.sources)
        if c.tied:
            return (self.conv2.weight[..., 0].expand(S, -1, -1, -1),
                    self.conv1.weight[:, :, 0, :].expand(S, -1, -1, -1))
        return self.deconv2_weight, self.deconv1_weight

    def _decode_hidden(self, code: torch.Tensor) -> torch.Tensor:
        """(B, bottleneck) -> the input of the last transposed conv (B, S, f1, context)."""
        c = self.config
        S, f2 = len(c.sources), c.conv2_filters
        h = F.relu(torch.einsum("bd,sdh->bsh", code, self.decode_weight) + self.decode_bias)
        h = h.reshape(code.shape[0], S, f2, c.frames_after_conv2)      # (B, S, f2, T')
        w2, _ = self._decoder_weights()
        # Transposed conv over time for the S decoders at once: a grouped conv_transpose1d
        # with the sources as groups (input channels S x f2, weight (S x f2, f1, k)).
        h = F.conv_transpose1d(h.reshape(code.shape[0], S * f2, c.frames_after_conv2),
                               w2.reshape(S * f2, c.conv1_filters, c.time_kernel), groups=S)
        h = h.view(code.shape[0], S, c.conv1_filters, c.context)       # (B, S, f1, T)
        if self.deconv2_bias is not None:
            h = h + self.deconv2_bias[None, :, :, None]
        return self._activate(h)

    def _output_bias(self) -> torch.Tensor | None:
        """The bias added to every output bin, (S, C), or None."""
        bias = None
        if self.deconv1_bias is not None:
            bias = self.deconv1_bias
        if self.source_bias is not None:
            b = self.source_bias[:, None].expand(-1, self.config.channels)
            bias = b if bias is None else bias + b
        return bias

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """(B, bottleneck) -> (B, sources, channels, context, bins), non-negative."""
        h = self._decode_hidden(code)                                   # (B, S, f1, T)
        _, w1 = self._decoder_weights()
        out = torch.einsum("bsft,sfcq->bsctq", h, w1)                   # (B, S, C, T, bins)
        if self.deconv1_bias is not None:
            out = out + self.deconv1_bias[None, :, :, None, None]
        if self.source_bias is not None:
            out = out + self.source_bias[None, :, None, None, None]
        return F.relu(out)

    def estimate_frames(self, magnitude: torch.Tensor, block_hop: int, weights: torch.Tensor,
                        chunk_blocks: int = 64) -> torch.Tensor:
        """|STFT| frames (channels, frames, bins) -> source magnitudes (sources, channels,
        frames, bins): the model on the blocks 0, hop, 2 hop, ... of the frames (the last
        zero-padded), overlap-added with the per-frame ``weights`` (context,) and normalised
        by the summed weights.

        The same function as ``spectral.to_blocks`` -> ``forward`` -> ``spectral.overlap_add``,
        computed without materialising the blocks or the per-block outputs: conv1 acts on
        each frame once (not once per block that contains it), and the last transposed conv
        writes block chunks straight into the frame layout while they are in cache.
        """
        c = self.config
        C, frames, bins = magnitude.shape
        S, T, f1 = len(c.sources), c.context, c.conv1_filters
        count = 1 + max(0, math.ceil((frames - T) / block_hop))          # blocks
        needed = (count - 1) * block_hop + T
        # conv1 per frame, as a sum of per-channel matmuls: (frames, f1); padded frames are
        # zero magnitudes, so their features are conv1 of a zero input.
        x = self.prepare_input(magnitude)
        w = self.conv1.weight[:, :, 0, :]                              # (f1, C, bins)
        feats = x.new_empty(needed, f1)
        feats[frames:] = self.prepare_input(x.new_zeros(C, bins)).reshape(1, -1) @ w.reshape(f1, -1).T
        torch.mm(x[0], w[:, 0].T, out=feats[:frames])
        for ch in range(1, C):
            feats[:frames].addmm_(x[ch], w[:, ch].T)
        feats = self._activate(feats + self.conv1.bias)
        code = self._encode_features(feats.unfold(0, T, block_hop))      # (count, bottleneck)
        hidden = self._decode_hidden(code)                              # (count, S, f1, T)
        # The weights go inside the ReLU (they are positive): relu(z) w = relu(z w); the bias
        # rides along as one more input row, so each chunk is one matmul and one ReLU.
        weights = weights.to(hidden.dtype)
        hidden = torch.cat([hidden * weights, weights.expand(count, S, 1, T)], dim=2)
        hidden = hidden.permute(1, 0, 3, 2)                            # (S, count, T, f1 + 1)
        _, w1 = self._decoder_weights()
        bias = self._output_bias()
        bias = w1.new_zeros(S, C) if bias is None else bias
        w1 = torch.cat([w1, bias[:, None, :, None].expand(S, 1, C, bins)], dim=1)
        w1 = w1.reshape(S, f1 + 1, C * bins)
        phases = math.ceil(T / block_hop)
        # frames rounded up so that every phase's slab is a whole (blocks, hop) view
        out = x.new_zeros(S, C, (count + phases) * block_hop, bins)
        chunk = min(chunk_blocks, count)
        buf = x.new_empty(S, chunk * T, C * bins)
        for first in range(0, count, chunk):
            n = min(chunk, count - first)
            y = torch.bmm(hidden[:, first:first + n].reshape(S, n * T, f1 + 1), w1, out=buf[:, :n * T])
            y = y.relu_().view(S, n, T, C, bins)
            for r in range(phases):
                width = min(block_hop, T - r * block_hop)
                start = (first + r) * block_hop
                slab = out[:, :, start:start + n * block_hop].view(S, C, n, block_hop, bins)
                slab[..., :width, :].add_(y[:, :, r * block_hop:r * block_hop + width].permute(0, 3, 1, 2, 4))
        out = out[:, :, :frames]
        norm = self._overlap_norm(weights, count, block_hop)[:frames]
        return out.div_(norm[:, None])

    @staticmethod
    def _overlap_norm(weights: torch.Tensor, count: int, block_hop: int) -> torch.Tensor:
        """Summed block weights per frame: (frames covered by ``count`` blocks,)."""
        T = weights.shape[0]
        positions = (torch.arange(count, device=weights.device)[:, None] * block_hop
                     + torch.arange(T, device=weights.device)).flatten()
        norm = weights.new_zeros((count - 1) * block_hop + T)
        return norm.index_add_(0, positions, weights.repeat(count))

    def forward(self, magnitude: torch.Tensor, last_layer: bool = True) -> torch.Tensor:
        """|STFT| blocks (B, channels, context, bins) -> source magnitudes
        (B, sources, channels, context, bins) in the network's scale (input_scale).

        ``last_layer=False`` stops before the last transposed convolution and returns its
        input (B, sources, conv1_filters, context), for the fused training loss."""
        if not last_layer:
            return self._decode_hidden(self.encode(magnitude))
        return self.decode(self.encode(magnitude))
