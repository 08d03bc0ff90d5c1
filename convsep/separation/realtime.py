"""RealtimeSeparator: causal separation, one STFT frame at a time, with an exact latency.

Causal convention (the one ``convsep train --lookahead L`` trains for): with ``lookahead``
L frames, the estimate for STFT frame t is the model's output at block position
``context - 1 - L`` of the block of frames [t + L - (context - 1), t + L] (frames before the
start of the stream are silence). So one model block runs per hop, as soon as frame t + L is
complete; its source magnitudes become soft masks (convsep.dsp.masks) on frame t of the mixture
STFT, and the inverse STFT is an overlap-add.

Latency. The STFT is the centred one of ``convsep.dsp.spectral`` (frame j covers input samples
[j hop - n_fft/2, j hop + n_fft/2)) with a periodic Hann window, which is zero at its first
sample. An output sample s is final once every frame whose window is non-zero at s has been
estimated; in the worst case the last of them starts one sample before s and so ends
``n_fft - 2`` samples after s, and its estimate waits ``L hop`` samples more for the
look-ahead frames. Hence

    latency_samples = (n_fft - 2) + L * hop        (1022 + 256 L at n_fft 1024, hop 256)

i.e. the STFT window (the frame must be complete), the overlap-add (a sample waits for the
last frame that overlaps it) and the look-ahead. It is exact: ``process`` returns every stem
sample s at input position s + latency_samples, whatever the chunk sizes (one sample at a
time included), and no shorter delay is possible for a sample just after a frame start.
At 44.1 kHz: 23.2 ms at L = 0, 29.0 ms at L = 1.

State is a fixed set of small buffers (the last n_fft input samples, conv1 features of the
last ``context`` frames, L + 1 mixture frames, the overlap-add accumulator and a FIFO of at
most latency + hop samples): memory does not grow with time, and the output does not depend
on how the input is chunked (the same frames are computed in the same order either way).
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from convsep.constants import SAMPLE_RATE
from convsep.dsp.masks import masked_mixtures
from convsep.dsp.spectral import STFT
from convsep.errors import ConvSepError
from convsep.io.inputs import as_waveform
from convsep.models import ConvSep
from convsep.models.modelfile import load_model
from convsep.models.registry import REALTIME_MODEL, is_bundled
from convsep.runtime.device import resolve_device
from convsep.separation.stems import Output, plan_outputs

DEFAULT_LOOKAHEAD = 1


def _whole_frames(value: object) -> int:
    """``value`` as an int if it is a whole number (2 and 2.0; not 1.5, True or "2")."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ConvSepError(f"lookahead must be a whole number of frames, got {value!r}")
    return int(float(value))


def latency_samples(n_fft: int, hop: int, lookahead: int) -> int:
    """The algorithmic latency in samples (see the module docstring)."""
    return n_fft - 2 + lookahead * hop


class RealtimeSeparator:
    """Causal stems from a live stream: ``process((channels, n)) -> (outputs, channels, n)``.

    Each output sample is the stem of the input sample ``latency_samples`` earlier (zeros
    before the stream starts). ``reset()`` starts a new stream.
    """

    def __init__(self, model: ConvSep, lookahead: int = DEFAULT_LOOKAHEAD,
                 device: str | torch.device | None = "cpu",
                 outputs: Sequence[Output] | None = None, metadata: dict | None = None):
        cfg = model.config
        lookahead = _whole_frames(lookahead)
        if not 0 <= lookahead <= cfg.context - 1:
            raise ConvSepError(f"lookahead must be between 0 and {cfg.context - 1} frames "
                               f"(the model's context is {cfg.context}), got {lookahead}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = cfg
        self.metadata = dict(metadata or {})
        self.lookahead = lookahead
        self.position = cfg.context - 1 - lookahead           # block position of the estimate
        self.stft = STFT(cfg.n_fft, cfg.hop)
        self.outputs = list(outputs) if outputs is not None else plan_outputs(cfg.sources)
        self._groups = [o.sources for o in self.outputs]
        self.latency_samples = latency_samples(cfg.n_fft, cfg.hop, lookahead)
        self._prepare_constants()
        self.reset()

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, lookahead: int = DEFAULT_LOOKAHEAD,
             device: str | torch.device | None = "cpu", **kwargs) -> "RealtimeSeparator":
        """From a model file or a bundled model's name (None: the bundled low-latency model
        ``realtime``, trained for look-ahead 1, or the default model where it is missing)."""
        if model is None and is_bundled(REALTIME_MODEL):
            model = REALTIME_MODEL
        net, metadata = load_model(model)
        return cls(net, lookahead=lookahead, device=device, metadata=metadata, **kwargs)

    # -- description ------------------------------------------------------------------
    @property
    def sources(self) -> tuple[str, ...]:
        return self.config.sources

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / SAMPLE_RATE

    # -- state ------------------------------------------------------------------------
    @torch.inference_mode()
    def _prepare_constants(self) -> None:
        cfg, stft, dev = self.config, self.stft, self.device
        hop, n_fft = cfg.hop, cfg.n_fft
        self._window = stft.window(dev)
        w = self.model.conv1.weight[:, :, 0, :]                                # (f1, C, bins)
        self._conv1 = w.reshape(w.shape[0], -1).T.contiguous()                 # (C bins, f1)
        zero = self.model.prepare_input(torch.zeros(cfg.channels, cfg.bins, device=dev))
        self._silent_features = self._activate(zero.reshape(1, -1) @ self._conv1 + self.model.conv1.bias)[0]  # type: ignore[operator]  # conv1 has a bias
        _, w1 = self.model._decoder_weights()                                  # (S, f1, C, bins)
        self._deconv1 = w1.reshape(w1.shape[0], w1.shape[1], -1).contiguous()  # (S, f1, C bins)
        bias = self.model._output_bias()                                       # (S, C) or None
        self._out_bias = None if bias is None else bias[:, :, None].expand(-1, -1, cfg.bins).reshape(bias.shape[0], -1)
        # 1 / window envelope for the padded samples [j hop + 1, (j + 1) hop + 1) finalised
        # after frame j, j = 0, 1, ...; from ceil(n_fft / hop) on it is periodic.
        steady = math.ceil(n_fft / hop)
        env = stft.envelope(1, (steady + 1) * hop + 1, total_frames=1 << 40, device=dev)
        self._env_inverse = env.clamp_min(1e-10).reciprocal().reshape(steady + 1, hop)
        if self._window[0] != 0:
            raise ConvSepError("the real-time separator needs a window that is zero at its first sample")

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) if self.config.conv_activation == "relu" else x

    @torch.inference_mode()
    def reset(self) -> None:
        """Forgets the stream: the next sample is the first of a new one (silence before)."""
        cfg = self.config
        C, T, L = cfg.channels, cfg.context, self.lookahead
        O = len(self.outputs)
        self._input = np.zeros((C, cfg.n_fft), np.float32)      # last n_fft padded samples
        self._until_frame = cfg.n_fft - cfg.n_fft // 2          # input samples until the next frame
        self._frames = 0                                        # frames completed so far
        # conv1 features of the last T frames, stored twice so any T consecutive ones are
        # one contiguous slice: rows [k, k + T) hold frames k .. k + T - 1 (mod T).
        self._features = self._silent_features.repeat(2 * T, 1)             # (2T, f1)
        self._spectra = torch.zeros(L + 1, C, cfg.bins, dtype=torch.complex64, device=self.device)
        self._overlap = torch.zeros(O, C, cfg.n_fft, device=self.device)
        capacity = self.latency_samples + 2 * cfg.hop
        self._fifo = np.zeros((O, C, capacity), np.float32)
        self._fifo_len = self.latency_samples                   # starts with the delay's zeros

    # -- processing -------------------------------------------------------------------
    def process(self, chunk: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(channels, n) at 44.1 kHz -> (outputs, channels, n) float32 on the CPU, each stem
        delayed by ``latency_samples``. Any n >= 0. Samples as ``Separator`` takes them
        (convsep.io.inputs): float in [-1, 1], int8/16/32 PCM scaled by its full range; int64,
        bool, complex and NaN/Inf are refused."""
        audio = as_waveform(chunk, "chunk", self.channels)
        n = audio.shape[1]
        out = np.empty((len(self.outputs), self.channels, n), np.float32)
        done = 0
        while done < n:
            take = min(self._until_frame, n - done)
            self._push_input(audio[:, done:done + take])
            self._until_frame -= take
            if self._until_frame == 0:
                self._frame()
                self._until_frame = self.config.hop
            self._pop_output(out[..., done:done + take])
            done += take
        return torch.from_numpy(out)

    def flush(self) -> torch.Tensor:
        """The last ``latency_samples`` of every stem (the input followed by silence);
        ``process`` output followed by this covers the whole input. Resets the stream."""
        tail = self.process(np.zeros((self.channels, self.latency_samples), np.float32))
        self.reset()
        return tail

    def aligned(self, chunks: Iterable[np.ndarray | torch.Tensor]) -> Iterator[torch.Tensor]:
        """A whole stream with the delay removed: (channels, n) chunks -> (outputs, channels,
        m) chunks that together have exactly as many samples as the input, stem sample s at
        input position s (for files; live use wants ``process``). Starts a new stream."""
        self.reset()
        skip = self.latency_samples
        for chunk in chunks:
            out = self.process(chunk)
            drop = min(skip, out.shape[-1])
            skip -= drop
            if out.shape[-1] > drop:
                yield out[..., drop:]
        tail = self.flush()[..., skip:]
        if tail.shape[-1]:
            yield tail

    def _push_input(self, samples: np.ndarray) -> None:
        k = samples.shape[1]
        buf = self._input
        buf[:, :-k] = buf[:, k:]                                # numpy copies overlaps safely
        buf[:, -k:] = samples

    def _pop_output(self, into: np.ndarray) -> None:
        k = into.shape[-1]
        into[...] = self._fifo[..., :k]
        rest = self._fifo_len - k
        self._fifo[..., :rest] = self._fifo[..., k:self._fifo_len]
        self._fifo_len = rest

    @torch.inference_mode()
    def _frame(self) -> None:
        """Frame j = self._frames is complete in the input buffer: its STFT and features go
        into the rings, frame j - L is estimated, masked and overlap-added, and the hop of
        output samples that no later frame touches goes into the FIFO."""
        cfg, T, L = self.config, self.config.context, self.lookahead
        hop, half = cfg.hop, cfg.n_fft // 2
        j = self._frames
        frame = torch.from_numpy(self._input).to(self.device)
        spec = torch.fft.rfft(frame * self._window, dim=-1)                   # (C, bins)
        self._spectra[j % (L + 1)] = spec
        x = self.model.prepare_input(spec.abs()).reshape(1, -1)
        feats = self._activate(x @ self._conv1 + self.model.conv1.bias)[0]  # type: ignore[operator]  # conv1 has a bias; (f1,)
        slot = j % T
        self._features[slot] = feats
        self._features[slot + T] = feats
        self._frames += 1
        t = j - L                                                             # estimated frame
        if t < 0:
            return
        block = self._features[slot + 1:slot + 1 + T]                         # frames j-T+1 .. j
        estimate = self._estimate(block)                                      # (S, C, bins)
        stems = masked_mixtures(estimate, self._spectra[t % (L + 1)], self._groups,
                                cfg.mask_power, overwrite=True)              # (O, C, bins)
        signal = torch.fft.irfft(stems, n=cfg.n_fft, dim=-1).mul_(self._window)
        self._overlap.add_(signal)
        # padded samples up to (t + 1) hop are final (frame t + 1's window is zero there);
        # [t hop + 1, (t + 1) hop + 1) go out, except the n_fft / 2 that precede the stream
        final = self._overlap[..., 1:hop + 1] * self._env_inverse[min(t, len(self._env_inverse) - 1)]
        self._overlap = torch.cat([self._overlap[..., hop:], torch.zeros_like(self._overlap[..., :hop])], -1)
        skip = min(hop, max(0, half - t * hop - 1))
        if skip < hop:
            done = final[..., skip:].float().cpu().numpy()
            k = done.shape[-1]
            self._fifo[..., self._fifo_len:self._fifo_len + k] = done
            self._fifo_len += k

    def _estimate(self, block: torch.Tensor) -> torch.Tensor:
        """conv1 features of T frames (T, f1) -> source magnitudes at block position
        ``self.position``: (sources, channels, bins); the model's own layers."""
        cfg, model = self.config, self.model
        code = model._encode_features(block.T[None])                          # (1, bottleneck)
        hidden = model._decode_hidden(code)[0, :, :, self.position]           # (S, f1)
        y = torch.bmm(hidden[:, None], self._deconv1)[:, 0]                   # (S, C bins)
        if self._out_bias is not None:
            y = y + self._out_bias
        return y.relu_().view(len(cfg.sources), cfg.channels, cfg.bins)


def causal_reference(model: ConvSep, waveform: torch.Tensor, lookahead: int,
                     outputs: Sequence[Output] | None = None) -> torch.Tensor:
    """The causal estimate computed offline from the whole signal with the model's
    ``forward`` on every frame's block (for tests and checks): (channels, samples) ->
    (outputs, channels, samples). ``RealtimeSeparator.process`` of the signal followed by
    ``flush()`` gives the same samples after its ``latency_samples`` leading zeros."""
    cfg = model.config
    T, L = cfg.context, lookahead
    stft = STFT(cfg.n_fft, cfg.hop)
    outputs = list(outputs) if outputs is not None else plan_outputs(cfg.sources)
    samples = waveform.shape[-1]
    # the stream continues with silence: the frames after the end see it
    waveform = torch.nn.functional.pad(waveform, (0, latency_samples(cfg.n_fft, cfg.hop, L)))
    with torch.inference_mode():
        spec = stft(waveform)                                                 # (C, bins, F)
        frames = spec.shape[-1]
        mag = spec.abs().transpose(-1, -2)                                    # (C, F, bins)
        padded = torch.nn.functional.pad(mag, (0, 0, T - 1, L))               # silence around
        blocks = padded.unfold(1, T, 1).permute(1, 0, 3, 2)[L:L + frames]     # (F, C, T, bins)
        estimates = model(blocks)[:, :, :, T - 1 - L]                         # (F, S, C, bins)
        estimates = estimates.permute(1, 2, 3, 0)                             # (S, C, bins, F)
        stems = masked_mixtures(estimates, spec, [o.sources for o in outputs], cfg.mask_power)
        return stft.inverse(stems, waveform.shape[-1])[..., :samples]


def causal_separate(model: ConvSep, waveform: torch.Tensor, lookahead: int,
                    outputs: Sequence[Output] | None = None, batch_blocks: int = 1024) -> torch.Tensor:
    """What ``RealtimeSeparator`` gives for a whole signal (aligned: the delay removed), with
    all frames at once: (channels, samples) -> (outputs, channels, samples). For offline
    evaluation of causal models; equal to the streaming output to float rounding."""
    cfg = model.config
    T, L, p = cfg.context, lookahead, cfg.context - 1 - lookahead
    stft = STFT(cfg.n_fft, cfg.hop)
    outputs = list(outputs) if outputs is not None else plan_outputs(cfg.sources)
    samples = waveform.shape[-1]
    waveform = torch.nn.functional.pad(waveform, (0, latency_samples(cfg.n_fft, cfg.hop, L)))
    act = torch.relu if cfg.conv_activation == "relu" else (lambda v: v)
    with torch.inference_mode():
        spec = stft(waveform)                                                 # (C, bins, F)
        frames = spec.shape[-1]
        w = model.conv1.weight[:, :, 0, :].reshape(cfg.conv1_filters, -1).T   # (C bins, f1)
        x = model.prepare_input(spec.abs().transpose(-1, -2))                 # (C, F, bins)
        feats = act(x.transpose(0, 1).reshape(frames, -1) @ w + model.conv1.bias)  # type: ignore[operator]  # conv1 has a bias
        silent = act(model.prepare_input(x.new_zeros(cfg.channels, cfg.bins)).reshape(1, -1) @ w + model.conv1.bias)  # type: ignore[operator]  # conv1 has a bias
        feats = torch.cat([silent.expand(T - 1, -1), feats, silent.expand(L, -1)])
        blocks = feats.unfold(0, T, 1)[L:L + frames]                          # (F, f1, T)
        _, w1 = model._decoder_weights()
        w1 = w1.reshape(w1.shape[0], w1.shape[1], -1)                         # (S, f1, C bins)
        bias = model._output_bias()
        estimates = []
        for first in range(0, frames, batch_blocks):
            hidden = model._decode_hidden(model._encode_features(blocks[first:first + batch_blocks]))
            y = torch.einsum("bsf,sfq->sbq", hidden[..., p], w1)              # (S, B, C bins)
            if bias is not None:
                y = y + bias[:, None, :, None].expand(-1, 1, -1, cfg.bins).reshape(bias.shape[0], 1, -1)
            estimates.append(y.relu_())
        est = torch.cat(estimates, 1).view(len(cfg.sources), frames, cfg.channels, cfg.bins)
        est = est.permute(0, 2, 3, 1)                                         # (S, C, bins, F)
        stems = masked_mixtures(est, spec, [o.sources for o in outputs], cfg.mask_power, overwrite=True)
        return stft.inverse(stems, waveform.shape[-1])[..., :samples]
