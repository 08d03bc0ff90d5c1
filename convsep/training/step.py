"""From a batch of source waveforms to the loss and its gradients, all on the training device.

Two paths compute the same loss:

- ``reference_loss``: STFT -> blocks (N, C, T, F) -> ``model`` -> soft masks -> loss, with
  plain autograd (every loss of ``convsep.training.losses``);
- the fused path (MSE, weighted or not): magnitudes are computed straight into the layout
  (channels, sources, blocks, frames, bins) and the last decoder layer, its ReLU, the
  masks and the loss run as one autograd function (``convsep.training.fused``), in a
  fraction of the memory passes.

``LossComputer.backward`` splits a batch into micro-batches whose tensors stay in the CPU's
caches and accumulates their gradients: the same gradient as the whole batch at once.

Optional per-example settings, for real recordings mixed into the batch:
``bandwidth_bins`` (B,) keeps only the bins below each example's band limit in the loss
(a 16 kHz recording has nothing above 8 kHz: the model must not learn that voices stop
there); ``groups`` scores sums of sources (e.g. vocals / accompaniment for a karaoke
recording whose drums, bass and other are not known separately).

Two targets (``target``): "magnitude", each source's |STFT| (DeepConvSep, Open-Unmix); and
"phase-sensitive", each source's STFT projected on the mixture's phase, |S| cos(angle S -
angle X), limited to [0, |X|] (the truncated phase-sensitive approximation of Erdogan et al.,
2015). For a real mask M, |M X - S|^2 = (M |X| - |S| cos)^2 + |S|^2 sin^2: the phase-sensitive
MSE is the error of the masked complex STFT, which the inverse STFT turns into the waveform's
error, up to a term the mask cannot change. Its targets also sum to |X| over the sources, as
the soft masks do; magnitudes sum to more wherever sources cancel.

``level_balance``: each (excerpt, source)'s squared error is divided by its target's energy
plus a floor (``LEVEL_FLOOR`` of the excerpt's mixture energy): the loss is then a mean of
error-to-signal ratios, free of levels as SDR is. SDR weighs every source of every song alike
whatever its level; the plain MSE weighs them by their energy, so quiet basses and quiet songs
count little.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Sequence

import torch

from convsep.dsp.spectral import STFT
from convsep.errors import ConvSepError
from convsep.models import ConvSep
from convsep.runtime.device import cpu_has_native_bf16
from convsep.training.fused import decoder_mask_mse
from convsep.training.losses import compute_loss, frequency_weights, masked_estimates

FUSED_LOSSES = ("mse",)
PRECISIONS = ("fp32", "bf16")
TARGETS = ("magnitude", "phase-sensitive")
LEVEL_FLOOR = 0.01          # a source 20 dB under its mixture weighs half of what its energy says
LEVEL_BALANCE_LOSSES = ("mse", "l1")


def excerpt_samples(config, blocks_per_excerpt: int = 1) -> int:
    """Waveform length whose uncentred STFT has exactly blocks_per_excerpt x context frames."""
    return (blocks_per_excerpt * config.context - 1) * config.hop + config.n_fft


def batch_to_blocks(sources: torch.Tensor, stft: STFT, context: int,
                    phase_sensitive: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Source waveforms (B, S, C, L) -> mixture magnitude blocks (N, C, T, F) and source
    target blocks (N, S, C, T, F), N = B x frames / T; the mixture is the sum of the
    sources (its STFT is the sum of theirs). Targets are the sources' magnitudes, or with
    ``phase_sensitive`` their projections on the mixture's phase (not yet limited to
    [0, |X|]: see ``limit_to_mixture``)."""
    spec = stft.forward_padded(sources)                       # (B, S, C, F, frames)
    mix_spec = spec.sum(1)
    mixture = mix_spec.abs()                                  # (B, C, F, frames)
    if phase_sensitive:
        unit = mix_spec / mixture.clamp_min(torch.finfo(mixture.dtype).tiny)
        targets = (spec * unit.conj().unsqueeze(1)).real
    else:
        targets = spec.abs()
    B, S, C, F, frames = spec.shape
    k = frames // context
    src = targets[..., :k * context].reshape(B, S, C, F, k, context)
    mix = mixture[..., :k * context].reshape(B, C, F, k, context)
    src = src.permute(0, 4, 1, 2, 5, 3).reshape(B * k, S, C, context, F)
    mix = mix.permute(0, 3, 1, 4, 2).reshape(B * k, C, context, F)
    return mix, src


def limit_to_mixture(targets: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Phase-sensitive targets (A, G, ...) limited to [0, |X|] by the mixture (A, ...), after
    any grouping of sources (the group's projection is limited, not each member's)."""
    return torch.minimum(targets.clamp_min(0), mixture.unsqueeze(1))


def level_weights(target_energy: torch.Tensor, mixture_energy: torch.Tensor) -> torch.Tensor:
    """Mean target energies (B, G) and mixture energies (B,) of each excerpt -> weights (B, G),
    1 / (target + LEVEL_FLOOR x mixture)."""
    floor = torch.finfo(target_energy.dtype).tiny
    return (target_energy + LEVEL_FLOOR * mixture_energy[:, None]).clamp_min(floor).reciprocal()


def band_weights(bandwidth_bins: torch.Tensor | None, bins: int, rows_per_example: int) -> torch.Tensor | None:
    """Per-example band limits (B,) -> 0/1 weights (B x rows_per_example, bins), or None."""
    if bandwidth_bins is None:
        return None
    keep = (torch.arange(bins, device=bandwidth_bins.device) < bandwidth_bins[:, None]).float()
    return keep[:, None, :].expand(-1, rows_per_example, -1).reshape(-1, bins)


def _magnitude_(spec: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """|spec| into ``out``; ``spec`` is overwritten. Squares the (re, im) pairs in place (one
    contiguous pass), then adds and takes the root: 3x faster than complex abs on the CPU,
    and faster than sqrt(re^2 + im^2) over the strided parts."""
    parts = torch.view_as_real(spec).square_()
    return torch.add(parts[..., 0], parts[..., 1], out=out).sqrt_()


class LossComputer:
    """loss(model, sources (B, S, C, L)) -> scalar, for a model config and loss settings.

    ``lookahead``: None scores every frame of each block; an integer L scores only block
    position ``context - 1 - L``, the frame that causal inference with L frames of
    look-ahead takes from each block. ``target``: one of ``TARGETS``; ``level_balance``: see
    above (mse or l1). ``micro_batch``: excerpts per micro-batch in ``backward`` (0: the
    whole batch at once). ``precision``: "fp32", or "bf16": matrix
    products and convolutions take bfloat16 operands (autocast; the fused path's last layer
    too), while STFT, masks, loss and gradients accumulate in float32.
    """

    def __init__(self, model: ConvSep, loss: str = "mse", weighted: bool = False, device=None,
                 lookahead: int | None = None, fused: bool = True, micro_batch: int = 4,
                 precision: str = "fp32", target: str = "magnitude", level_balance: bool = False):
        cfg = model.config
        self.config = cfg
        self.stft = STFT(cfg.n_fft, cfg.hop)
        self.loss = loss
        self.weights = frequency_weights(cfg.bins, device=device) if weighted else None
        if lookahead is not None and not 0 <= lookahead < cfg.context:
            raise ConvSepError(f"--lookahead must be from 0 to {cfg.context - 1} (the model's context - 1), "
                               f"got {lookahead}")
        self.lookahead = lookahead
        self.fused = fused and loss in FUSED_LOSSES and cfg.mask_power == 1.0
        self.micro_batch = micro_batch
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.bf16 = precision == "bf16"
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.phase_sensitive = target == "phase-sensitive"
        if level_balance and loss not in LEVEL_BALANCE_LOSSES:
            raise ValueError(f"level balance needs the mse or l1 loss, not {loss!r}")
        self.level_balance = level_balance
        if self.bf16 and torch.device(device or "cpu").type == "cpu" and not cpu_has_native_bf16():
            warnings.warn("--precision bf16: this CPU has no native bfloat16 (AVX-512-BF16 or AMX), where bf16 "
                          "runs about 25x slower than float32; training in fp32 instead", stacklevel=2)
            self.bf16 = False

    def _autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _position(self) -> slice:
        T = self.config.context
        if self.lookahead is None:
            return slice(0, T)
        p = T - 1 - self.lookahead
        return slice(p, p + 1)

    def __call__(self, model: torch.nn.Module, sources: torch.Tensor,
                 bandwidth_bins: torch.Tensor | None = None,
                 groups: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
        cfg = self.config
        if cfg.channels == 1 and sources.shape[2] != 1:
            sources = sources.mean(2, keepdim=True)
        if self.fused:
            return self.fused_loss(model, sources, bandwidth_bins, groups)
        return self.reference_loss(model, sources, bandwidth_bins, groups)

    def backward(self, model: torch.nn.Module, sources: torch.Tensor,
                 bandwidth_bins: torch.Tensor | None = None,
                 groups: Sequence[Sequence[int]] | None = None, share: float = 1.0) -> float:
        """Accumulates d(loss x share)/d(parameters) over micro-batches; returns the loss.

        Under DistributedDataParallel the gradients are reduced once, with the last one."""
        B = sources.shape[0]
        size = self.micro_batch or B
        total = 0.0
        starts = list(range(0, B, size))
        for i, first in enumerate(starts):
            part = slice(first, min(B, first + size))
            sync = i == len(starts) - 1 or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if sync else model.no_sync():
                loss = self(model, sources[part], None if bandwidth_bins is None else bandwidth_bins[part], groups)
                fraction = (part.stop - part.start) / B
                (loss * (fraction * share)).backward()
            total += float(loss.detach()) * fraction
        return total

    # -- the two paths ------------------------------------------------------------------
    def reference_loss(self, model, sources, bandwidth_bins=None, groups=None) -> torch.Tensor:
        cfg = self.config
        mix, src = batch_to_blocks(sources, self.stft, cfg.context, self.phase_sensitive)  # (N, C, T, F), (N, S, C, T, F)
        with self._autocast(mix.device):
            output = model(mix).to(mix.dtype)
        estimates = masked_estimates(output, mix * cfg.input_scale, cfg.mask_power)
        targets = src * cfg.input_scale
        position = self._position()
        estimates, targets = estimates[..., position, :], targets[..., position, :]
        if groups is not None:
            estimates = torch.stack([estimates[:, list(g)].sum(1) for g in groups], 1)
            targets = torch.stack([targets[:, list(g)].sum(1) for g in groups], 1)
        scored_mixture = mix[..., position, :] * cfg.input_scale                # (N, C, T', F)
        if self.phase_sensitive:
            targets = limit_to_mixture(targets, scored_mixture)
        weights = self.weights
        if self.level_balance:
            B, N, G = sources.shape[0], targets.shape[0], targets.shape[1]
            levels = level_weights(targets.reshape(B, N // B, G, -1).square().mean((1, 3)),
                                   scored_mixture.reshape(B, -1).square().mean(1))
            levels = levels.repeat_interleave(N // B, 0)[:, :, None, None, None]   # (N, G, 1, 1, 1)
            weights = levels if weights is None else levels * weights
        if bandwidth_bins is not None:
            band = band_weights(bandwidth_bins, cfg.bins, mix.shape[0] // sources.shape[0])
            band = band[:, None, None, None, :]                              # (N, 1, 1, 1, F)
            weights = band if weights is None else band * weights
            if self.loss == "mse":
                return ((estimates - targets) ** 2 * weights).mean()
        names = cfg.sources if groups is None else [f"group{g}" for g in range(len(groups))]
        return compute_loss(self.loss, estimates, targets, names, weights)

    def _magnitudes(self, sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, C, L) -> mixture |STFT| (C, B, frames, F) and the sources' targets (C, S, B,
        frames, F): their magnitudes, or their projections on the mixture's phase.

        One (channel, source) at a time: each rFFT batch then stays in the CPU's caches
        (2.5x faster than one rFFT of the whole batch), and its target and its share of
        the mixture's spectrum are taken while it is there."""
        window = self.stft.window(sources.device, sources.dtype)
        n_fft, hop = self.stft.n_fft, self.stft.hop
        B, S, C, L = sources.shape
        frames, bins = (L - n_fft) // hop + 1, n_fft // 2 + 1
        targets = sources.new_empty(C, S, B, frames, bins)
        mixture = sources.new_empty(C, B, frames, bins)

        def spectrum(waveform: torch.Tensor) -> torch.Tensor:
            # rfft into a fresh tensor: with out= it computes elsewhere and copies.
            return torch.fft.rfft(waveform.unfold(-1, n_fft, hop) * window, dim=-1)

        for c in range(C):
            if self.phase_sensitive:
                mix = spectrum(sources[:, :, c].sum(1))
                _magnitude_(mix.clone(), out=mixture[c])
                inverse = mixture[c].clamp_min(torch.finfo(mixture.dtype).tiny).reciprocal()
                unit_re, unit_im = mix.real * inverse, mix.imag * inverse        # contiguous: 2x faster
                for s in range(S):
                    parts = torch.view_as_real(spectrum(sources[:, s, c]))
                    torch.mul(parts[..., 0], unit_re, out=targets[c, s]).addcmul_(parts[..., 1], unit_im)
                continue
            mix = None
            for s in range(S):
                spec = spectrum(sources[:, s, c])
                mix = spec.clone() if mix is None else mix.add_(spec)
                _magnitude_(spec, out=targets[c, s])
            _magnitude_(mix, out=mixture[c])
        return mixture, targets

    def fused_loss(self, model, sources, bandwidth_bins=None, groups=None) -> torch.Tensor:
        cfg = self.config
        T, F = cfg.context, cfg.bins
        B, S, C = sources.shape[:3]
        mixture, targets = self._magnitudes(sources)
        frames = mixture.shape[2]
        k = frames // T
        if frames != k * T:
            mixture, targets = mixture[:, :, :k * T], targets[:, :, :, :k * T]
        N = B * k
        blocks = mixture.reshape(C, N, T, F).transpose(0, 1)                # (N, C, T, F) view
        with self._autocast(blocks.device):
            hidden = model(blocks.contiguous(), last_layer=False)           # (N, S, f1, T)
        module = model.module if hasattr(model, "module") else model       # under DDP
        position = self._position()
        rows = position.stop - position.start
        hidden = hidden[..., position].permute(1, 0, 3, 2).reshape(S, N * rows, -1)
        mixture = mixture.reshape(C, N, T, F)[:, :, position].reshape(C, N * rows, F)
        targets = targets.reshape(C, S, N, T, F)[:, :, :, position].reshape(C, S, N * rows, F)
        if groups is not None:
            targets = torch.stack([targets[:, list(g)].sum(1) for g in groups], 1)
        if self.phase_sensitive:
            targets = limit_to_mixture(targets, mixture)
        weights = band_weights(bandwidth_bins, F, k * rows)
        if self.weights is not None:
            weights = self.weights if weights is None else weights * self.weights
        if self.level_balance:
            G = targets.shape[1]
            levels = level_weights(targets.reshape(C, G, B, -1, F).square().mean((0, 3, 4)).T,
                                   mixture.reshape(C, B, -1, F).square().mean((0, 2, 3))) / cfg.input_scale ** 2
            levels = levels.T.repeat_interleave(k * rows, 1)[None, :, :, None]    # (1, G, N x rows, 1)
            weights = levels if weights is None else levels * weights
        _, w1 = module._decoder_weights()
        return decoder_mask_mse(hidden, w1, module._output_bias(), mixture, targets, weights, groups,
                                cfg.input_scale ** 2, bf16=self.bf16)
