"""convsep.models.modelfile: model files round-trip; model files are untrusted input: a table
of bad ones, each refused with one line and exit code 2 before anything is built or written."""
import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.models import ConvSep, ConvSepConfig, preset
from convsep.models.modelfile import FORMAT, VERSION, load_model, save_model
from convsep.separation.separator import Separator


@pytest.fixture(scope="module")
def stereo_separator():
    torch.manual_seed(1)
    return Separator(ConvSep(preset("convsep-stereo")))


def test_model_file_round_trip_and_damage(tmp_path, stereo_separator):
    path = save_model(tmp_path / "m.pt", stereo_separator.model, {"trained_on": "tones", "steps": 3})
    model, meta = load_model(path)
    assert meta == {"trained_on": "tones", "steps": 3}
    for a, b in zip(model.state_dict().values(), stereo_separator.model.state_dict().values()):
        assert torch.equal(a, b)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ConvSepError, match="damaged"):
        load_model(damaged)
    text = tmp_path / "text.pt"
    text.write_text("not a model")
    with pytest.raises(ConvSepError, match="damaged|not a convsep"):
        load_model(text)
    with pytest.raises(ConvSepError, match="no such model"):
        load_model(tmp_path / "missing.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["conv1_filters"] = 64
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(ConvSepError, match="do not match"):
        load_model(tmp_path / "mismatch.pt")


RATE = 44100


@pytest.fixture(scope="module")
def good_payload():
    torch.manual_seed(0)
    model = ConvSep(preset("convsep-stereo"))
    return {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
            "state_dict": {k: v.clone() for k, v in model.state_dict().items()}, "metadata": {}}


def _with(payload, config=None, state=None, **top):
    out = {**payload, "config": {**payload["config"], **(config or {})},
           "state_dict": {**payload["state_dict"], **(state or {})}}
    out.update(top)
    return out


def _nan_weights(payload):
    state = dict(payload["state_dict"])
    state["conv1.weight"] = state["conv1.weight"].clone()
    state["conv1.weight"][0, 0, 0, 3] = math.nan
    return _with(payload, state=state)


def _inf_bias(payload):
    return _with(payload, state={"decode_bias": torch.full_like(payload["state_dict"]["decode_bias"], math.inf)})


def _int_weights(payload):
    return _with(payload, state={"conv1.bias": payload["state_dict"]["conv1.bias"].to(torch.int32)})


# (id, payload maker or raw bytes maker, text expected in the error)
BAD_MODELS = [
    ("source-is-relative-path", lambda p: _with(p, {"sources": ["../../x", "drums", "bass", "other"]}), "simple identifiers"),
    ("source-is-absolute-path", lambda p: _with(p, {"sources": ["/tmp/evil", "drums", "bass", "other"]}), "simple identifiers"),
    ("source-with-dot", lambda p: _with(p, {"sources": ["vocals.wav", "drums", "bass", "other"]}), "simple identifiers"),
    ("source-empty-name", lambda p: _with(p, {"sources": ["", "drums", "bass", "other"]}), "simple identifiers"),
    ("duplicate-sources", lambda p: _with(p, {"sources": ["drums", "drums", "bass", "other"]}), "distinct"),
    ("no-sources", lambda p: _with(p, {"sources": []}), "1 to 16"),
    ("too-many-sources", lambda p: _with(p, {"sources": [f"s{i}" for i in range(1000)]}), "1 to 16"),
    ("sources-not-list", lambda p: _with(p, {"sources": "vocals"}), "sources must be a list"),
    ("source-not-string", lambda p: _with(p, {"sources": [1, 2, 3, 4]}), "sources must be a list"),
    ("bottleneck-float-1e9", lambda p: _with(p, {"bottleneck": 1e9}), "bottleneck must be an integer"),
    ("bottleneck-int-1e9", lambda p: _with(p, {"bottleneck": 10 ** 9}), "bottleneck must be in"),
    ("huge-but-in-range-widths", lambda p: _with(p, {"bottleneck": 8192, "conv2_filters": 8192}), "parameters"),
    ("n-fft-string", lambda p: _with(p, {"n_fft": "1024"}), "n_fft must be an integer"),
    ("n-fft-huge", lambda p: _with(p, {"n_fft": 1 << 30}), "n_fft must be a power of two"),
    ("channels-bool", lambda p: _with(p, {"channels": True}), "channels must be an integer"),
    ("tied-string", lambda p: _with(p, {"tied": "no"}), "tied must be true or false"),
    ("mask-power-nan", lambda p: _with(p, {"mask_power": math.nan}), "mask_power must be a finite number"),
    ("input-scale-negative", lambda p: _with(p, {"input_scale": -1.0}), "input_scale"),
    ("context-negative", lambda p: _with(p, {"context": -5}), "context must be in"),
    ("unknown-field", lambda p: _with(p, {"evil": 1}), "unknown fields"),
    ("config-is-list", lambda p: {**p, "config": [1, 2]}, "'config' is missing"),
    ("no-config", lambda p: {k: v for k, v in p.items() if k != "config"}, "'config' is missing"),
    ("no-state-dict", lambda p: {k: v for k, v in p.items() if k != "state_dict"}, "'state_dict' is missing"),
    ("metadata-is-string", lambda p: {**p, "metadata": "x"}, "'metadata' is not a mapping"),
    ("nan-weights", _nan_weights, "NaN or infinite"),
    ("inf-weights", _inf_bias, "NaN or infinite"),
    ("integer-weights", _int_weights, "not a floating-point tensor"),
    ("missing-weight", lambda p: {**p, "state_dict": {k: v for k, v in p["state_dict"].items() if k != "conv1.bias"}},
     "weights do not match"),
    ("wrong-format", lambda p: {**p, "format": "other"}, "not a convsep model file"),
    ("wrong-version", lambda p: {**p, "version": 99}, "version 99"),
    ("payload-is-list", lambda p: [1, 2, 3], "not a convsep model file"),
]


BAD_FILES = [
    ("wav-file", "wav", "damaged or not a convsep model file"),
    ("text-file", b"this is text, not a model\n", "damaged or not a convsep model file"),
    ("empty-file", b"", "damaged or not a convsep model file"),
    ("random-bytes", bytes(range(256)) * 64, "damaged or not a convsep model file"),
    ("truncated-model", "truncated", "damaged or not a convsep model file"),
]


def _write_model(path: Path, payload) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def _song(tmp_path: Path) -> Path:
    t = np.arange(RATE) / RATE
    audio = 0.3 * np.sin(2 * np.pi * 220 * t)
    path = tmp_path / "song.wav"
    sf.write(str(path), np.stack([audio, audio], 1), RATE)
    return path


def _assert_refused(code, err, pattern):
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, err
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    assert pattern in lines[0], lines[0]


def _assert_nothing_written(tmp_path: Path, before: set):
    after = {p for p in tmp_path.rglob("*")}
    assert after == before, sorted(map(str, after - before))


@pytest.mark.parametrize("name,make,pattern", BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_bad_model_payload_is_refused_with_one_line(tmp_path, capsys, good_payload, name, make, pattern):
    model = _write_model(tmp_path / "bad.pt", make(good_payload))
    song = _song(tmp_path)
    before = set(tmp_path.rglob("*"))
    code = main(["separate", str(song), "-m", str(model), "-o", str(tmp_path / "out"), "--overwrite"])
    _assert_refused(code, capsys.readouterr().err, pattern)
    _assert_nothing_written(tmp_path, before)        # nothing in the output folder, nothing outside
    with pytest.raises(ConvSepError, match="^[^\n]*$"):
        load_model(model)
    code = main(["info", str(model)])
    _assert_refused(code, capsys.readouterr().err, pattern)


@pytest.mark.parametrize("name,content,pattern", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_non_model_files_are_refused_with_one_line(tmp_path, capsys, good_payload, name, content, pattern):
    path = tmp_path / "model.pt"
    if content == "wav":
        path = _song(tmp_path).rename(tmp_path / "model.wav")
    elif content == "truncated":
        _write_model(path, good_payload)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    code = main(["info", str(path)])
    _assert_refused(code, capsys.readouterr().err, pattern)


def test_folder_as_model_is_refused(tmp_path, capsys):
    code = main(["info", str(tmp_path)])
    _assert_refused(code, capsys.readouterr().err, "is a folder")


def test_good_models_still_load(tmp_path, good_payload):
    for name in ("deepconvsep", "convsep-stereo", "convsep-plus"):
        config = preset(name)
        assert ConvSepConfig.from_dict(config.to_dict()) == config
        assert config.parameter_count() == sum(p.numel() for p in ConvSep(config).parameters())
    path = save_model(tmp_path / "ok.pt", ConvSep(preset("convsep-stereo")))
    model, _ = load_model(path)
    assert model.config.sources == ("vocals", "drums", "bass", "other")
    renamed = _write_model(tmp_path / "renamed.pt", _with(good_payload, {"sources": ["Lead_Vox", "kit2", "bass", "rest"]}))
    assert load_model(renamed)[0].config.sources == ("Lead_Vox", "kit2", "bass", "rest")
