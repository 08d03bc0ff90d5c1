"""ONNX / TorchScript export of the bundled default model, and the exported backends in the
Separator: masks within 5e-4 of PyTorch, stems within 1e-3."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.models.export import (
    ExportedBackend,
    export_model,
    mask_difference,
    onnx_backend,
    padded_chunks,
    to_chunks,
    torchscript_backend,
)
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
    backend = onnx_backend(exported[fmt]) if fmt == "onnx" else torchscript_backend(exported[fmt], trust_model_code=True)
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
    separator = Separator.load(exported[fmt], backend=fmt, segment_seconds=2.0, trust_model_code=True)
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


def test_torchscript_file_runs_only_when_trusted(exported, tmp_path, capsys):
    """A TorchScript file is code (its forward can read and write any file): refused
    unless the user opts in, before torch.jit.load runs anything of it."""
    with pytest.raises(ConvSepError, match="--trust-model-code"):
        Separator.load(exported["torchscript"], backend="torchscript")
    with pytest.raises(ConvSepError, match="--trust-model-code"):
        torchscript_backend(exported["torchscript"])
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((44100, 2), "float32"), 44100)
    assert main(["separate", str(song), "-o", str(tmp_path / "out"), "--backend", "torchscript",
                 "-m", str(exported["torchscript"]), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--trust-model-code" in err and "program" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert Separator.load(exported["torchscript"], backend="torchscript", trust_model_code=True).backend


def _tiny_onnx(tmp_path, external: bool = False, nan: bool = False):
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], [float("nan") if nan else 1.0] * 4)
    if external:
        weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "private/notes.txt"), ("offset", "0"), ("length", "16")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [weight])
    model = helper.make_model(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = "convsep", "{}"
    path = tmp_path / "tiny.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_external_data_is_refused(tmp_path, monkeypatch):
    """An ONNX file naming external data would read that file (relative to the current
    folder) as its weights: convsep exports single files and refuses external data."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "notes.txt").write_bytes(b"secret words!!!!")
    path = _tiny_onnx(tmp_path, external=True)
    with pytest.raises(ConvSepError, match="external data"):
        onnx_backend(path)


def test_onnx_nan_weights_are_refused(tmp_path):
    with pytest.raises(ConvSepError, match="NaN or infinite"):
        onnx_backend(_tiny_onnx(tmp_path, nan=True))


def _header():
    cfg = load_model(None)[0].config
    return {"config": cfg.to_dict(), "block_hop": cfg.block_hop, "crossfade": cfg.crossfade}, cfg


def test_exported_backend_refuses_nan_output_and_bad_headers():
    header, cfg = _header()
    magnitude = torch.rand(cfg.channels, 40, cfg.bins)

    def shaped(fill):
        return lambda chunks: torch.full((1, len(cfg.sources), chunks.shape[1], chunks.shape[2] * chunks.shape[3],
                                          chunks.shape[4]), fill)

    assert ExportedBackend(header, shaped(0.5))(magnitude).shape == (len(cfg.sources), cfg.channels, 40, cfg.bins)
    with pytest.raises(ConvSepError, match="NaN or infinite magnitudes"):
        ExportedBackend(header, shaped(float("nan")))(magnitude)
    with pytest.raises(ConvSepError, match="does not match its convsep header"):
        ExportedBackend(header, lambda chunks: torch.zeros(1, 2, 3))(magnitude)
    with pytest.raises(ConvSepError, match="does not match its convsep header"):
        ExportedBackend(header, lambda chunks: torch.zeros(3)[chunks.shape[0] + 5])(magnitude)
    with pytest.raises(ConvSepError, match="block_hop 0"):
        ExportedBackend(dict(header, block_hop=0), shaped(0.5))
    with pytest.raises(ConvSepError, match="damaged convsep header"):
        ExportedBackend(dict(header, config={"n_fft": "x"}), shaped(0.5))


def test_onnx_header_that_is_not_json(tmp_path):
    import onnx

    path = _tiny_onnx(tmp_path)
    model = onnx.load(str(path))
    model.metadata_props[0].value = "{not json"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ConvSepError, match="not JSON"):
        onnx_backend(path)


@pytest.mark.parametrize("field,value", [("n_fft", 2048), ("block_hop", 7), ("sources", ["vocals", "rest"])])
def test_onnx_header_that_disagrees_with_its_graph(exported, mixture, tmp_path, field, value):
    """A header that does not describe its graph (input bins, block grid, output stems) is a
    one-line error when the graph runs, not an internal error."""
    import json

    import onnx

    model = onnx.load(str(exported["onnx"]))
    entry = next(p for p in model.metadata_props if p.key == "convsep")
    header = json.loads(entry.value)
    if field == "block_hop":
        header["block_hop"] = value
    else:
        header["config"][field] = value
    entry.value = json.dumps(header)
    path = tmp_path / "liar.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ConvSepError, match="does not match its convsep header|convsep header"):
        Separator.load(path, backend="onnx")(mixture[:, :44100])
