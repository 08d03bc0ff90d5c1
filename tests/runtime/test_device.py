"""convsep.runtime.device: a bad --device is one line, for separate and for train."""
import numpy as np
import pytest
import soundfile as sf

from convsep.cli import main

RATE = 44100


def tone(seconds=0.5, channels=2) -> np.ndarray:
    """float32 (channels, samples) in [-0.5, 0.5]."""
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu", ""])
def test_bad_device_is_one_line(tmp_path, capsys, model_file, device):
    song = tmp_path / "s.wav"
    sf.write(str(song), tone().T, RATE)
    code = main(["separate", str(song), "-m", str(model_file), "--device", device, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "device" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def _assert_refused(code, err, pattern):
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, err
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    assert pattern in lines[0], lines[0]


def test_train_bad_device_is_one_line(tmp_path, capsys):
    code = main(["train", str(tmp_path / "no-dataset"), "-o", str(tmp_path / "run"), "--device", "tpu"])
    _assert_refused(code, capsys.readouterr().err, "device")
