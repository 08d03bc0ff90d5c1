"""Export a model to ONNX or TorchScript, and run an exported file as a Separator backend.

The exported graph is the model on magnitude frames, with the STFT left outside:

    magnitude chunks (batch, channels, chunks, block_hop, bins)
      --cut into blocks of ``context`` frames every ``block_hop`` frames-->
      --ConvSep--> weighted overlap-add, normalised by the summed weights
      --> source magnitudes (batch, sources, channels, chunks * block_hop, bins)

``batch`` and ``chunks`` are dynamic. Frames come in chunks of ``block_hop`` so that the
block grid is a reshape, never a shape computation; the caller pads the frames with zero
magnitudes (as ``ConvSep.estimate_frames`` does) and drops the padding afterwards. The file
carries the model config, block hop, cross-fade and metadata, so it is self-contained.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convsep.dsp.spectral import block_weights
from convsep.errors import ConvSepError
from convsep.models import ConvSep, ConvSepConfig

FORMATS = ("onnx", "torchscript")
TRUST_HINT = ("a TorchScript file is a program: running it runs whatever code it holds, which can read "
              "and write any file; run only a file you trust, with --trust-model-code "
              "(trust_model_code=True in Python), or use an .onnx export, which holds no code")
BACKENDS = ("torch",) + FORMATS
SUFFIXES = {".onnx": "onnx", ".ts": "torchscript", ".torchscript": "torchscript"}
META_KEY = "convsep"          # ONNX metadata_props key / TorchScript extra file name
OPSET = 18


class FrameEstimator(nn.Module):
    """A ConvSep on frame chunks: (B, C, N, block_hop, bins) -> (B, S, C, N * block_hop, bins).

    The same function as ``ConvSep.estimate_frames`` on N * block_hop frames (the blocks
    0, hop, ... that fit), written with static slices, pads and reshapes only, so that it
    exports with dynamic B and N (N >= ceil(context / block_hop)).
    """

    def __init__(self, model: ConvSep, block_hop: int | None = None, crossfade: str | None = None):
        super().__init__()
        cfg = model.config
        self.model = model.eval()
        self.block_hop = int(block_hop or cfg.block_hop)
        self.crossfade = crossfade or cfg.crossfade
        self.phases = math.ceil(cfg.context / self.block_hop)
        self.register_buffer("weights", block_weights(cfg.context, self.crossfade), persistent=False)

    def _overlap_add(self, blocks: torch.Tensor) -> torch.Tensor:
        """(B, count, S, C, context, Q) -> (B, S, C, (count + phases - 1) * hop, Q)."""
        h, P, T = self.block_hop, self.phases, blocks.shape[4]
        B, _, S, C, _, Q = blocks.shape
        blocks = F.pad(blocks, (0, 0, 0, P * h - T)).reshape(B, -1, S, C, P, h, Q)
        out = None
        for r in range(P):
            part = blocks[:, :, :, :, r].permute(0, 2, 3, 1, 4, 5).reshape(B, S, C, -1, Q)
            part = F.pad(part, (0, 0, r * h, (P - 1 - r) * h))
            out = part if out is None else out + part
        return out

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        B, C, _, h, Q = chunks.shape
        model = self.model
        T, P = model.config.context, self.phases
        # the first layer (full-height conv over channels x bins) once per frame, not per block
        x = model.prepare_input(chunks)
        feats = torch.einsum("bcnhq,fcq->bnhf", x, model.conv1.weight[:, :, 0, :]) + model.conv1.bias
        feats = model._activate(feats)                                     # (B, N, h, f1)
        # block i = chunks i .. i + P - 1, cut to T frames
        blocks = torch.cat([feats[:, r:(r - P + 1) or None] for r in range(P)], dim=2)[:, :, :T]
        blocks = blocks.reshape(-1, T, blocks.shape[-1]).transpose(1, 2)   # (B * count, f1, T)
        y = model.decode(model._encode_features(blocks))                   # (B * count, S, C, T, Q)
        S = y.shape[1]
        w = self.weights[:, None]
        summed = self._overlap_add((y * w).reshape(B, -1, S, C, T, Q))
        norm = self._overlap_add((y[:, :1, :1, :, :1] * 0 + w).reshape(B, -1, 1, 1, T, 1))
        return summed / norm.clamp_min(1e-12)


def padded_chunks(frames: int, context: int, block_hop: int) -> int:
    """Chunks of ``block_hop`` frames that hold ``frames`` frames and every block touching them."""
    count = 1 + max(0, math.ceil((frames - context) / block_hop))
    return count + math.ceil(context / block_hop) - 1


def to_chunks(magnitude: torch.Tensor, context: int, block_hop: int) -> torch.Tensor:
    """(C, frames, bins) -> zero-padded (1, C, N, block_hop, bins)."""
    C, frames, bins = magnitude.shape
    n = padded_chunks(frames, context, block_hop)
    padded = F.pad(magnitude, (0, 0, 0, n * block_hop - frames))
    return padded.reshape(1, C, n, block_hop, bins)


def _header(model: ConvSep, estimator: FrameEstimator, metadata: dict | None) -> str:
    return json.dumps({"config": model.config.to_dict(), "block_hop": estimator.block_hop,
                       "crossfade": estimator.crossfade, "metadata": metadata or {}}, default=str)


def export_onnx_bytes(model: ConvSep, metadata: dict | None = None, block_hop: int | None = None,
                      opset: int = OPSET) -> bytes:
    """The model as an ONNX file (bytes), with dynamic batch and chunk count."""
    estimator = FrameEstimator(model, block_hop).eval()
    cfg = model.config
    n = padded_chunks(4 * cfg.context, cfg.context, estimator.block_hop)
    example = torch.rand(2, cfg.channels, n, estimator.block_hop, cfg.bins)
    batch, chunks = torch.export.Dim("batch", min=1), torch.export.Dim("chunks", min=max(2, estimator.phases))
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)      # the exporter logs skipped optional op libraries
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(estimator, (example,), dynamo=True, opset_version=opset,
                                        input_names=["magnitude"], output_names=["sources"],
                                        dynamic_shapes={"chunks": {0: batch, 2: chunks}},
                                        external_data=False, verbose=False)
        except Exception as exc:  # the exporter's many failure types
            raise ConvSepError(f"ONNX export failed: {str(exc).strip().splitlines()[0][:160]}") from None
        finally:
            quiet.setLevel(level)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, _header(model, estimator, metadata)
    return proto.SerializeToString()


def export_torchscript_bytes(model: ConvSep, metadata: dict | None = None,
                             block_hop: int | None = None) -> bytes:
    """The model as a traced TorchScript file (bytes); shapes stay dynamic (traced sizes)."""
    estimator = FrameEstimator(model, block_hop).eval()
    cfg = model.config
    n = padded_chunks(4 * cfg.context, cfg.context, estimator.block_hop)
    example = torch.rand(2, cfg.channels, n, estimator.block_hop, cfg.bins)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(estimator, (example,), check_trace=False)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, buffer, _extra_files={META_KEY: _header(model, estimator, metadata)})
    return buffer.getvalue()


def format_of(path: str | os.PathLike) -> str:
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConvSepError(f"{path}: unknown export format; use a .onnx or .ts file name")
    return fmt


def export_model(model_path: str | os.PathLike | None, output: str | os.PathLike,
                 fmt: str | None = None, block_hop: int | None = None) -> Path:
    """Writes a model file (or bundled model name) as ONNX or TorchScript, atomically."""
    from convsep.io.atomic import atomic_write_bytes
    from convsep.io.filesafety import check_replaceable
    from convsep.models.modelfile import load_model

    output = Path(output)
    fmt = fmt or format_of(output)
    if fmt not in FORMATS:
        raise ConvSepError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    check_replaceable(output)          # before the work: a device or FIFO is never replaced
    model, metadata = load_model(model_path)
    data = (export_onnx_bytes(model, metadata, block_hop) if fmt == "onnx"
            else export_torchscript_bytes(model, metadata, block_hop))
    if output.parent and not output.parent.exists():
        raise ConvSepError(f"{output.parent}: no such folder")
    atomic_write_bytes(output, data)
    return output


# -- exported files as Separator backends ------------------------------------------------
class ExportedBackend:
    """An exported model as the Separator's estimator: |STFT| frames (C, frames, bins) ->
    source magnitudes (S, C, frames, bins), float32 on the CPU."""

    def __init__(self, header: dict, run, where: str = "exported model"):
        self.where = where
        try:
            self.config = ConvSepConfig.from_dict(header["config"])
            self.block_hop = int(header["block_hop"])
            self.crossfade = str(header["crossfade"])
            self.metadata = dict(header.get("metadata") or {})
        except (KeyError, TypeError, ValueError, AttributeError, ConvSepError) as exc:
            raise ConvSepError(f"{where}: damaged convsep header ({one_line_of(exc)})") from None
        if not 1 <= self.block_hop <= self.config.context:
            raise ConvSepError(f"{where}: damaged convsep header (block_hop {self.block_hop} is not "
                               f"between 1 and the context, {self.config.context})")
        self._run = run

    def __call__(self, magnitude: torch.Tensor) -> torch.Tensor:
        C, frames, bins = magnitude.shape
        chunks = to_chunks(magnitude.float().cpu(), self.config.context, self.block_hop)
        try:
            out = self._run(chunks)
        except ConvSepError:
            raise
        except MemoryError:
            raise ConvSepError(f"{self.where}: the model needs more memory than there is") from None
        except Exception as exc:  # noqa: BLE001 - a graph that does not fit its header
            raise ConvSepError(f"{self.where}: the exported model failed on its input; it does not match "
                               f"its convsep header ({one_line_of(exc)})") from None
        expected = (1, len(self.config.sources), C, chunks.shape[2] * self.block_hop, bins)
        if not torch.is_tensor(out) or tuple(out.shape) != expected or not out.is_floating_point():
            shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ConvSepError(f"{self.where}: the exported model's output {shape} does not match its "
                               f"convsep header (expected {expected})")
        if not torch.isfinite(out).all():
            raise ConvSepError(f"{self.where}: the model gave NaN or infinite magnitudes; the file is "
                               "damaged or came from a diverged training run")
        return out[0, :, :, :frames]


def one_line_of(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:120] if text else type(exc).__name__)


def _header_json(text: str, where: str) -> dict:
    try:
        header = json.loads(text)
    except ValueError as exc:
        raise ConvSepError(f"{where}: damaged convsep header (not JSON: {one_line_of(exc)})") from None
    if not isinstance(header, dict):
        raise ConvSepError(f"{where}: damaged convsep header (not a JSON object)")
    return header


def _check_onnx_tensors(data: bytes, where: str) -> None:
    """Refuses external data (an ONNX file may name other files to read its weights from;
    convsep exports single files) and NaN or infinite weights, before onnxruntime sees the
    file."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ConvSepError("--backend onnx needs the onnx package (pip install onnx)") from None
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's decode errors
        raise ConvSepError(f"{where}: not a loadable ONNX model ({one_line_of(exc)})") from None

    def tensors(nodes, initializers=(), sparse=()):
        yield from initializers
        for item in sparse:
            yield item.values
            yield item.indices
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    yield from tensors(sub.node, sub.initializer, sub.sparse_initializer)

    everything = [tensors(proto.graph.node, proto.graph.initializer, proto.graph.sparse_initializer)]
    everything += [tensors(function.node) for function in proto.functions]
    for group in everything:
        for tensor in group:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                raise ConvSepError(f"{where}: the ONNX file reads its weights from other files "
                                   "(external data); convsep runs only single-file ONNX models")
            try:
                values = numpy_helper.to_array(tensor)
            except Exception as exc:  # noqa: BLE001 - a damaged tensor
                raise ConvSepError(f"{where}: damaged ONNX weights ({one_line_of(exc)})") from None
            if values.dtype.kind in "fc" and not np.isfinite(values).all():
                raise ConvSepError(f"{where}: the model's weights contain NaN or infinite values "
                                   f"({tensor.name[:60] or 'a constant'}); the file is damaged or came "
                                   "from a diverged training run")


def _read_bytes(source: str | os.PathLike | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ConvSepError(f"{source}: cannot read the exported model ({exc.strerror or exc})") from None


def onnx_backend(source: str | os.PathLike | bytes, threads: int | None = None) -> ExportedBackend:
    """An ONNX file (path or bytes) run by onnxruntime on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConvSepError("--backend onnx needs onnxruntime (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    ort.set_default_logger_severity(3)      # no log lines around our one-line errors
    where = "model" if isinstance(source, bytes) else str(source)
    data = _read_bytes(source)
    _check_onnx_tensors(data, where)
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ConvSepError(f"{where}: not a loadable ONNX model ({one_line_of(exc)})") from None
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise ConvSepError(f"{where}: an ONNX file without a convsep header (export it with convsep export)")
    name = session.get_inputs()[0].name

    def run(chunks: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: np.ascontiguousarray(chunks.numpy())})[0])

    return ExportedBackend(_header_json(props[META_KEY], where), run, where)


def torchscript_backend(source: str | os.PathLike | bytes, trust_model_code: bool = False) -> ExportedBackend:
    """A TorchScript file (path or bytes) run by torch.jit. A TorchScript file is code that
    runs with the user's rights, so it is refused unless ``trust_model_code``."""
    where = "model" if isinstance(source, bytes) else str(source)
    if not trust_model_code:
        raise ConvSepError(f"{where}: refusing to run a TorchScript model without --trust-model-code: {TRUST_HINT}")
    extra = {META_KEY: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(_read_bytes(source)), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as exc:
        raise ConvSepError(f"{where}: not a loadable TorchScript model ({one_line_of(exc)})") from None
    if not extra[META_KEY]:
        raise ConvSepError(f"{where}: a TorchScript file without a convsep header (export it with convsep export)")
    from convsep.models.modelfile import check_weights

    check_weights(dict(module.state_dict()), where)

    def run(chunks: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(chunks)

    return ExportedBackend(_header_json(extra[META_KEY], where), run, where)


def load_backend(backend: str, model: str | os.PathLike | None = None,
                 threads: int | None = None, trust_model_code: bool = False) -> ExportedBackend:
    """The named backend for ``model``: an exported file of that format, or a model file
    (or bundled model name) exported in memory first. A TorchScript file runs only with
    ``trust_model_code`` (it is code); one exported here from a checked model file is ours."""
    if backend not in FORMATS:
        raise ConvSepError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    path = Path(model) if model is not None else None
    if path is not None and path.suffix.lower() in SUFFIXES:
        if SUFFIXES[path.suffix.lower()] != backend:
            raise ConvSepError(f"{path}: a {SUFFIXES[path.suffix.lower()]} file cannot run with --backend {backend}")
        if not path.exists():
            raise ConvSepError(f"{path}: no such file")
        source: str | os.PathLike | bytes = path
    else:
        from convsep.models.modelfile import load_model

        loaded, metadata = load_model(model)
        source = (export_onnx_bytes(loaded, metadata) if backend == "onnx"
                  else export_torchscript_bytes(loaded, metadata))
        trust_model_code = True      # exported just now from a checked model file
    return onnx_backend(source, threads) if backend == "onnx" else torchscript_backend(source, trust_model_code)


def mask_difference(model: ConvSep, backend: ExportedBackend, mixture: torch.Tensor) -> float:
    """Max |soft mask difference| between PyTorch and an exported backend on a mixture
    (channels, samples) at 44.1 kHz."""
    from convsep.dsp.masks import soft_masks
    from convsep.dsp.spectral import STFT

    cfg = model.config
    magnitude = STFT(cfg.n_fft, cfg.hop)(mixture[:cfg.channels]).abs().transpose(-1, -2)  # (C, frames, bins)
    with torch.inference_mode():
        reference = model.estimate_frames(magnitude, backend.block_hop,
                                          block_weights(cfg.context, backend.crossfade))
    exported = backend(magnitude)
    return float((soft_masks(reference, power=cfg.mask_power)
                  - soft_masks(exported, power=cfg.mask_power)).abs().max())


def check_parity(model_path: str | os.PathLike | None, exported: str | os.PathLike,
                 fmt: str | None = None, seconds: float = 10.0, trust_model_code: bool = False) -> float:
    """Max |mask difference| of an exported file against its model file on the first
    ``seconds`` of the bundled demo song (a TorchScript file only with ``trust_model_code``)."""
    from convsep.models.modelfile import load_model
    from convsep.models.registry import load_demo

    model, _ = load_model(model_path)
    fmt = fmt or format_of(exported)
    backend = onnx_backend(exported) if fmt == "onnx" else torchscript_backend(exported, trust_model_code)
    _, references = load_demo()
    mixture = references.sum(0)[:, :int(seconds * 44100)]
    return mask_difference(model, backend, mixture)
