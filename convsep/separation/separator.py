"""Separator: chunked, batched inference with exact streaming.

The input is processed in segments of frames whose block grid is aligned with the grid of
the whole signal; each segment reads ``margin`` frames of context on both sides (enough for
every block that touches its core frames), and the ISTFT is an overlap-add whose tail is
carried to the next segment. So the output of any chunking equals whole-signal processing
(to float rounding), and memory depends on the segment length, not on the song's length.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from convsep.constants import SAMPLE_RATE
from convsep.dsp.masks import masked_mixtures, soft_masks
from convsep.dsp.spectral import STFT, block_weights
from convsep.errors import ConvSepError
from convsep.io.audio import adapt_channels, check_waveform, resample
from convsep.io.inputs import as_waveform, check_rate
from convsep.models import ConvSep
from convsep.models.modelfile import load_model
from convsep.runtime.device import resolve_device
from convsep.separation.speed_ensemble import check_speeds, ensemble_stream
from convsep.separation.stems import Output, plan_outputs


class Separator:
    """Holds a ConvSep model and its STFT; turns mixtures into stems.

    ``separator(waveform, rate)`` takes (channels, samples) and returns {stem: (channels,
    samples)} at the input's rate; ``separator.stream(chunks)`` takes (channels, n) chunks at
    44.1 kHz and yields (outputs, channels, m) chunks, in order, with bounded memory.
    """

    def __init__(self, model: ConvSep | None, device: str | torch.device | None = "cpu",
                 block_hop: int | None = None, crossfade: str | None = None,
                 mask_power: float | None = None, segment_seconds: float = 5.0,
                 batch_blocks: int = 512, outputs: Sequence[Output] | None = None,
                 metadata: dict | None = None, backend=None, wiener_iterations: int | None = None,
                 input_level_db: float | bool | None = None, speeds: Sequence[float] | None = None):
        # backend: an exported model (convsep.models.export.ExportedBackend) run instead of ``model``
        # wiener_iterations: EM steps of norbert's multichannel Wiener filter after the soft
        # masks, per segment (None: the model file's "wiener_iterations", else 0: masks only)
        # input_level_db: the RMS level (dBFS) whole signals are brought to before the model
        # sees them (the level its training mixtures had; the masks still apply to the signal
        # as it is). None: the model file's "input_level_db", else off; False: off.
        # speeds: playback speeds whose separations are averaged (convsep.separation.speed_ensemble); None: the
        # model file's "speeds", else (1,): the song as recorded, once.
        cfg = (backend or model).config  # type: ignore[union-attr]  # one of the two is given
        self.device = resolve_device(device)
        self.backend = backend
        self.model = model.to(self.device).eval() if model is not None else None
        if backend is not None and (self.device.type != "cpu" or (block_hop or backend.block_hop) != backend.block_hop):
            raise ConvSepError(f"an exported model runs on the CPU with its own block hop ({backend.block_hop})")
        self.config = cfg
        self.metadata = dict(metadata or {})
        self.stft = STFT(cfg.n_fft, cfg.hop)
        self.block_hop = int(block_hop or cfg.block_hop)
        if not 1 <= self.block_hop <= cfg.context:
            raise ConvSepError(f"block hop must be between 1 and the model's context ({cfg.context})")
        self.crossfade = crossfade or cfg.crossfade
        self.mask_power = float(mask_power or cfg.mask_power)
        self.batch_blocks = max(1, int(batch_blocks))
        # blocks per matmul of the last decoder layer: on a CPU, few enough that their output
        # (sources x context x channels x bins floats) stays in cache (4 MiB: 8 blocks of the
        # 1024-point presets, 4 at 2048; 25 % faster than 64 on one thread); a GPU wants big ones
        row_bytes = len(cfg.sources) * cfg.context * cfg.channels * cfg.bins * 4
        cached = max(1, (4 << 20) // row_bytes) if self.device.type == "cpu" else 64
        self.chunk_blocks = min(self.batch_blocks, cached, 64)
        # Frames of context each segment reads on both sides, and frames per segment core;
        # both multiples of the block hop, so segments share the whole signal's block grid.
        self.margin = math.ceil((cfg.context - 1) / self.block_hop) * self.block_hop
        core = max(1, round(segment_seconds * SAMPLE_RATE / cfg.hop / self.block_hop))
        self.core_frames = core * self.block_hop
        self.outputs = list(outputs) if outputs is not None else plan_outputs(cfg.sources)
        self._weights = block_weights(cfg.context, self.crossfade, self.device)
        if wiener_iterations is None:
            wiener_iterations = self.metadata.get("wiener_iterations", 0)
        if not isinstance(wiener_iterations, int) or not 0 <= wiener_iterations <= 10:
            raise ConvSepError(f"wiener iterations must be an integer from 0 to 10, got {wiener_iterations!r}")
        self.wiener_iterations = wiener_iterations
        if input_level_db is None:
            input_level_db = self.metadata.get("input_level_db")
        if input_level_db is not False and input_level_db is not None:
            if not isinstance(input_level_db, (int, float)) or not -60 <= input_level_db <= 0:
                raise ConvSepError(f"input level must be a number of dBFS from -60 to 0, got {input_level_db!r}")
            self.input_level_db: float | None = float(input_level_db)
        else:
            self.input_level_db = None
        self.speeds = check_speeds(speeds if speeds is not None else self.metadata.get("speeds", (1.0,)))

    def input_gain(self, waveform: torch.Tensor) -> float:
        """The gain that brings ``waveform``'s RMS to ``input_level_db``: see ``gain_for_rms``."""
        if self.input_level_db is None or not waveform.numel():
            return 1.0
        return self.gain_for_rms(float(waveform.double().square().mean().sqrt()))

    def gain_for_rms(self, rms: float) -> float:
        """The gain that brings a signal of this RMS to ``input_level_db``, within +-30 dB;
        1 when off or silent."""
        if self.input_level_db is None or not rms > 0:
            return 1.0
        return float(min(max(10 ** (self.input_level_db / 20) / rms, 10 ** -1.5), 10 ** 1.5))

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str | torch.device | None = "cpu",
             backend: str | None = None, trust_model_code: bool = False, **kwargs) -> "Separator":
        """From a model file, or the name of a bundled model (None: the default model).
        ``backend`` "onnx" or "torchscript" runs an exported file (a model file is exported
        in memory first); None or "torch" runs the model in PyTorch. A TorchScript file is
        code that runs with your rights: it is refused unless ``trust_model_code``."""
        if backend not in (None, "torch"):
            from convsep.models.export import load_backend

            exported = load_backend(backend, path, trust_model_code=trust_model_code)
            return cls(None, device=device, metadata=exported.metadata, backend=exported, **kwargs)
        model, metadata = load_model(path)
        return cls(model, device=device, metadata=metadata, **kwargs)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.config.sources

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    # -- the model on frames ------------------------------------------------------------
    @torch.inference_mode()
    def estimate(self, magnitude: torch.Tensor) -> torch.Tensor:
        """|STFT| (channels, bins, frames) -> source magnitudes (sources, channels, bins,
        frames), blocks on the grid 0, block_hop, ... of these frames."""
        return self._estimate_frames(magnitude.transpose(-1, -2)).transpose(-1, -2)

    def _estimate_frames(self, magnitude: torch.Tensor) -> torch.Tensor:
        """|STFT| frames-major (channels, frames, bins) -> (sources, channels, frames, bins)."""
        if self.backend is not None:
            return self.backend(magnitude).to(magnitude.device)
        return self.model.estimate_frames(magnitude, self.block_hop, self._weights,  # type: ignore[union-attr]
                                          chunk_blocks=self.chunk_blocks)

    @torch.inference_mode()
    def masks(self, spec: torch.Tensor) -> torch.Tensor:
        """Mixture STFT (channels, bins, frames) -> soft masks (sources, channels, bins, frames)."""
        return soft_masks(self.estimate(spec.abs()), dim=0, power=self.mask_power)

    # -- streaming --------------------------------------------------------------------
    def stream(self, chunks: Iterable[np.ndarray | torch.Tensor], input_gain: float = 1.0) -> Iterator[torch.Tensor]:
        """(channels, n) chunks at 44.1 kHz -> (outputs, channels, m) float32 chunks on the
        CPU; together they have exactly as many samples as the input. The model sees the
        signal times ``input_gain`` (the stems do not); with several ``speeds``, at each."""
        if self.speeds == (1.0,):
            return self._stream(chunks, input_gain)
        sources = len(self.config.sources)
        shares = [len(o.sources) / sources for o in self.outputs]
        return ensemble_stream(lambda pieces: self._stream(pieces, input_gain), chunks, self.speeds,  # type: ignore[arg-type]
                               self.config.channels, shares)

    @torch.inference_mode()
    def _stream(self, chunks: Iterable[np.ndarray | torch.Tensor], input_gain: float = 1.0) -> Iterator[torch.Tensor]:
        stft, hop, n_fft = self.stft, self.config.hop, self.config.n_fft
        half = n_fft // 2
        channels = self.config.channels
        buffer = torch.zeros(channels, half, device=self.device)   # padded signal from buf_start
        buf_start = 0            # padded position of buffer[..., 0]
        total = 0                # input samples seen
        next_frame = 0           # first core frame of the next segment
        tail = None              # ISTFT overlap carried between segments
        for chunk in chunks:
            chunk = torch.from_numpy(np.ascontiguousarray(as_waveform(chunk, "chunk", channels)))
            total += chunk.shape[1]
            buffer = torch.cat([buffer, chunk.to(self.device)], dim=1)
            while True:
                stop = next_frame + self.core_frames
                needed = (stop + self.margin - 1) * hop + n_fft     # padded samples needed
                if buf_start + buffer.shape[1] < needed:
                    break
                out, tail = self._segment(buffer, buf_start, next_frame, stop, None, tail, total, input_gain)
                yield out
                next_frame = stop
                keep_from = (next_frame - self.margin) * hop
                buffer, buf_start = buffer[:, keep_from - buf_start:], keep_from
        if total == 0:
            return
        frames = stft.frames(total)
        right = (frames - 1) * hop + n_fft - half - total
        buffer = torch.cat([buffer, buffer.new_zeros(channels, right)], dim=1)
        while next_frame < frames:
            stop = min(next_frame + self.core_frames, frames)
            out, tail = self._segment(buffer, buf_start, next_frame, stop, frames, tail, total, input_gain)
            yield out
            next_frame = stop
            keep_from = max(0, next_frame - self.margin) * hop
            buffer, buf_start = buffer[:, keep_from - buf_start:], keep_from

    def _segment(self, buffer: torch.Tensor, buf_start: int, start: int, stop: int,
                 frames: int | None, tail: torch.Tensor | None, total: int, input_gain: float = 1.0):
        """Core frames [start, stop) -> (output samples final after them, new tail).
        ``frames`` is the signal's frame count once the end is known, else None."""
        stft, hop, n_fft = self.stft, self.config.hop, self.config.n_fft
        half = n_fft // 2
        first = max(0, start - self.margin)
        last = stop + self.margin if frames is None else min(stop + self.margin, frames)
        segment = buffer[:, first * hop - buf_start:(last - 1) * hop + n_fft - buf_start]
        spec = stft.forward_padded(segment).transpose(-1, -2)               # (C, F_seg, bins)
        if input_gain == 1.0:
            estimates = self._estimate_frames(spec.abs())
        else:
            estimates = self._estimate_frames(spec.abs().mul_(input_gain)).div_(input_gain)
        if self.wiener_iterations:
            stems = self._wiener(estimates, spec)[:, :, start - first:stop - first]
        else:
            stems = masked_mixtures(estimates[:, :, start - first:stop - first], spec[:, start - first:stop - first],
                                    [o.sources for o in self.outputs], self.mask_power,
                                    overwrite=True)                          # (O, C, core, bins)
        signal = stft.frames_to_signal(stems.transpose(-1, -2))            # (O, C, len)
        if tail is not None:
            signal[..., :tail.shape[-1]] += tail
        end = stop * hop if frames is None or stop < frames else signal.shape[-1] + start * hop
        final = signal[..., :end - start * hop]
        new_tail = signal[..., end - start * hop:]
        env = stft.envelope(start * hop, end, frames or stop + n_fft, self.device)
        final = final.mul_(env.clamp_min(1e-10).reciprocal_())
        lo, hi = max(start * hop, half), min(end, half + total)           # original samples only
        return final[..., lo - start * hop:hi - start * hop].float().cpu(), new_tail

    def _wiener(self, estimates: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        """Source magnitudes (S, C, frames, bins) and the mixture STFT (C, frames, bins) ->
        output STFTs (O, C, frames, bins) by norbert's multichannel Wiener filter: soft masks,
        then ``wiener_iterations`` EM updates of each source's spatial covariance. The whole
        segment (its context frames too) informs the covariances. What the filter's
        regularisation leaves of the mixture is shared equally, so the stems add up to it."""
        import norbert

        v = estimates.clamp_min(0).permute(2, 3, 1, 0).double().cpu().numpy()  # (frames, bins, C, S)
        x = spec.permute(1, 2, 0).cdouble().cpu().numpy()  # type: ignore[attr-defined]  # (frames, bins, C)
        y = norbert.wiener(v, x.copy(), self.wiener_iterations, use_softmask=True)   # it scales x in place
        y += (x - y.sum(-1))[..., None] / y.shape[-1]     # its regularisation leaves a residual: share it
        y = torch.from_numpy(y).permute(3, 2, 0, 1).to(spec.device, spec.dtype)  # (S, C, frames, bins)
        return torch.stack([y[list(o.sources)].sum(0) for o in self.outputs])

    # -- whole signals ----------------------------------------------------------------
    def separate_tensor(self, waveform: torch.Tensor) -> torch.Tensor:
        """(channels, samples) at 44.1 kHz -> (outputs, channels, samples)."""
        step = self.core_frames * self.config.hop
        pieces = (waveform[:, i:i + step] for i in range(0, waveform.shape[1], step))
        return torch.cat(list(self.stream(pieces, self.input_gain(waveform))), dim=-1)

    def __call__(self, waveform: np.ndarray | torch.Tensor, rate: int = SAMPLE_RATE) -> dict[str, torch.Tensor]:
        """(channels, samples) or (samples,) at ``rate`` -> {stem: (channels, samples)} at
        ``rate``. Mono is duplicated for a stereo model; stereo is averaged for a mono one."""
        audio = as_waveform(waveform, "waveform")
        rate = check_rate(rate)
        check_waveform(audio, "waveform")
        waveform_length = audio.shape[1]
        in_channels = audio.shape[0]
        if in_channels > 2:
            audio = audio[:2]
        audio = adapt_channels(resample(audio, rate, SAMPLE_RATE), self.config.channels)
        stems = self.separate_tensor(torch.from_numpy(np.ascontiguousarray(audio)))
        result = {}
        for output, stem in zip(self.outputs, stems):
            stem = stem.numpy()
            if rate != SAMPLE_RATE:
                stem = resample(stem, SAMPLE_RATE, rate)
                length = waveform_length
                stem = stem[:, :length] if stem.shape[1] >= length else \
                    np.pad(stem, ((0, 0), (0, length - stem.shape[1])))
            result[output.name] = torch.from_numpy(np.ascontiguousarray(stem))
        return result
