"""ONNX / TorchScript export of the bundled default model, and the exported backends in the
Separator: masks within 5e-4 of PyTorch, stems within 1e-3."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.models.export import export_model, mask_difference, onnx_backend, padded_chunks, to_chunks, torchscript_backend
from convsep.models.modelfile import load_model
from convsep.models.registry import load_demo
from convsep.separation.separator import Separator

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    return {fmt: export_model(None, folder / f"default.{suffix}")
            for fmt, suffix in (("onnx", "onnx"), ("torchscript", "ts"))}


@pytest.fixture(scope="module")
def mixture():
    _, references = load_demo()
    return references.sum(0)[:, :6 * 44100]      # (2, samples): 6 s of the demo song


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_masks_match_pytorch(exported, mixture, fmt):
    model, _ = load_model(None)
    backend = onnx_backend(exported[fmt]) if fmt == "onnx" else torchscript_backend(exported[fmt])
    assert backend.config == model.config
    assert mask_difference(model, backend, mixture) < 5e-4
    # frame counts that do not fill the block grid, down to one block
    for samples in (256 * 29, 256 * 31 + 17, 256 * 200 + 3):
        assert mask_difference(model, backend, mixture[:, :samples]) < 5e-4


def test_onnx_batch_and_frames_are_dynamic(exported, mixture):
    import onnxruntime as ort

    cfg = load_model(None)[0].config
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    magnitude = torch.stft(mixture, cfg.n_fft, cfg.hop, window=torch.hann_window(cfg.n_fft),
                           return_complex=True).abs().transpose(-1, -2)       # (2, frames, bins)
    single = []
    for frames in (100, 100, 100):
        chunks = to_chunks(magnitude[:, :frames], cfg.context, cfg.block_hop).numpy()
        single.append(session.run(None, {"magnitude": chunks})[0])
    batch = np.concatenate([to_chunks(magnitude[:, :100], cfg.context, cfg.block_hop).numpy()] * 3)
    together = session.run(None, {"magnitude": batch})[0]
    assert together.shape == (3, len(cfg.sources), cfg.channels,
                              padded_chunks(100, cfg.context, cfg.block_hop) * cfg.block_hop, cfg.bins)
    np.testing.assert_allclose(together, np.concatenate(single), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_backend_separates_like_pytorch(exported, mixture, fmt):
    reference = Separator.load(None)(mixture)
    separator = Separator.load(exported[fmt], backend=fmt, segment_seconds=2.0)
    stems = separator(mixture)
    assert list(stems) == list(reference)
    for name in reference:
        assert stems[name].shape == mixture.shape
        assert (stems[name] - reference[name]).abs().max() < 1e-3
    total = sum(stems.values())
    assert (total - mixture).abs().max() < 1e-4


def test_model_file_is_exported_in_memory(mixture):
    separator = Separator.load(None, backend="torchscript")
    reference = Separator.load(None)(mixture[:, :44100])
    stems = separator(mixture[:, :44100])
    assert max((stems[k] - reference[k]).abs().max() for k in stems) < 1e-3


def test_backend_refusals(exported, tmp_path):
    with pytest.raises(ConvSepError, match="cannot run with --backend torchscript"):
        Separator.load(exported["onnx"], backend="torchscript")
    with pytest.raises(ConvSepError, match="no such file"):
        Separator.load(tmp_path / "missing.onnx", backend="onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConvSepError, match="not a loadable ONNX"):
        Separator.load(junk, backend="onnx")
    with pytest.raises(ConvSepError, match="own block hop"):
        Separator.load(exported["onnx"], backend="onnx", block_hop=3)


def test_cli_export_and_separate(exported, mixture, tmp_path, capsys):
    out = tmp_path / "model.ts"
    assert main(["export", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "max |mask difference|" in printed
    assert main(["export", "-o", str(tmp_path / "model.bin")]) == 2
    assert ".onnx or .ts" in capsys.readouterr().err

    song = tmp_path / "song.wav"
    sf.write(song, mixture[:, :3 * 44100].numpy().T, 44100, subtype="FLOAT")
    for backend, model in (("torch", []), ("onnx", ["-m", str(exported["onnx"])])):
        assert main(["separate", str(song), "-o", str(tmp_path / backend), "--bits", "32f",
                     "--backend", backend, "--no-progress", *model]) == 0
    for name in ("vocals", "drums", "bass", "other"):
        a = sf.read(tmp_path / "torch" / "song" / f"{name}.wav")[0]
        b = sf.read(tmp_path / "onnx" / "song" / f"{name}.wav")[0]
        assert np.abs(a - b).max() < 1e-3
