"""convsep.models.config: configs round-trip through JSON; bad values, and source names that
would become paths, are refused."""
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.models import ConvSep, ConvSepConfig, preset
from convsep.models.modelfile import FORMAT, VERSION


def test_config_round_trips_through_json_and_rejects_bad_values():
    cfg = preset("convsep-plus")
    assert ConvSepConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConvSepError, match="unknown fields"):
        ConvSepConfig.from_dict({**cfg.to_dict(), "wings": 2})
    with pytest.raises(ConvSepError, match="time_kernel"):
        preset("convsep-stereo", time_kernel=40)
    with pytest.raises(ConvSepError, match="unknown model preset"):
        preset("nope")


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


def test_sources_never_become_paths_outside_the_output_folder(tmp_path, capsys, good_payload):
    """The attack of the issue: sources naming files outside OUTDIR, with --overwrite."""
    victim = tmp_path / "victim.wav"
    victim.write_bytes(b"precious")
    sources = [f"../../{victim.stem}", "drums", "bass", "other"]
    model = _write_model(tmp_path / "evil.pt", _with(good_payload, {"sources": sources}))
    code = main(["separate", str(_song(tmp_path)), "-m", str(model), "-o", str(tmp_path / "a" / "b"),
                 "--overwrite"])
    _assert_refused(code, capsys.readouterr().err, "simple identifiers")
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "a").exists()
