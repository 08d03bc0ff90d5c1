"""convsep.api: ``convsep.separate`` for arrays, with a model file or the bundled default."""
import numpy as np
import pytest
import soundfile as sf
import torch

import convsep
from convsep.models.registry import load_demo

RATE = 44100


def music(seconds: float, rate: int = RATE, channels: int = 2) -> np.ndarray:
    """(samples, channels) float32 test signal, band-limited below 3.5 kHz."""
    t = np.arange(int(seconds * rate)) / rate
    sig = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 3300 * t) * (t % 0.5 < 0.1)
    return np.stack([sig * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def test_python_api(tmp_path, model_file):
    audio = music(1.0).T
    stems = convsep.separate(audio, RATE, model=model_file)
    assert set(stems) == {"vocals", "drums", "bass", "other"}
    assert np.abs(sum(s.numpy() for s in stems.values()) - audio).max() < 1e-4
    sf.write(str(tmp_path / "x.wav"), audio.T, RATE)
    result = convsep.separate_file(tmp_path / "x.wav", tmp_path / "out", model=model_file, progress=False)
    assert set(result.stems) == set(stems) and all(p.exists() for p in result.stems.values())
    with pytest.raises(convsep.ConvSepError, match="too short"):
        convsep.separate(np.zeros((2, 10), np.float32), RATE, model=model_file)


def test_separate_without_a_model_argument_uses_the_default(tmp_path):
    _, references = load_demo()
    mixture = references.sum(0)[:, :44100 * 3]
    stems = convsep.separate(mixture, 44100)
    total = sum(stems.values())
    assert torch.allclose(total, mixture, atol=1e-4)
