"""The speed ensemble inside the Separator: passes at other playback speeds, averaged."""
import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.separation.separator import Separator
from convsep.separation.speed_ensemble import check_speeds
from convsep.separation.stems import plan_outputs

RATE = 44100


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ConvSep(preset("convsep-stereo", conv1_filters=12, conv2_filters=6, bottleneck=16))


def _noise(seconds: float, seed: int = 0) -> torch.Tensor:
    x = torch.randn(2, int(RATE * seconds), generator=torch.Generator().manual_seed(seed)) * 0.1
    x[1] *= 0.5
    return x


def _tones(seconds: float) -> np.ndarray:
    """Stereo tones and chords below 12 kHz: nothing that a pass at speed 1.19 loses."""
    t = np.arange(int(RATE * seconds)) / RATE
    left = sum(np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 3 * t)) for f in (110, 440, 1320, 5000, 11000))
    right = sum(np.sin(2 * np.pi * f * t + 1) for f in (220, 660, 3000))
    return (0.05 * np.stack([left, right])).astype(np.float32)


def test_one_speed_is_the_plain_separator(model):
    x = _noise(3)
    plain = Separator(model).separate_tensor(x)
    assert Separator(model, speeds=(1.0,)).speeds == (1.0,)
    assert torch.equal(Separator(model, speeds=[1]).separate_tensor(x), plain)


def test_ensemble_changes_the_stems_and_keeps_their_sum(model):
    x = _noise(4)
    plain = Separator(model).separate_tensor(x)
    sep = Separator(model, speeds=(1.0, 1.12, 1.19))
    stems = sep.separate_tensor(x)
    assert stems.shape == plain.shape
    assert (stems.sum(0) - x).abs().max() < 1e-5           # the resampling residual is shared out
    assert (stems - plain).abs().max() > 1e-3
    two = Separator(model, speeds=(1.0, 1.19), outputs=plan_outputs(model.config.sources, two_stems="vocals"))
    pair = two.separate_tensor(x)
    assert pair.shape[0] == 2 and (pair.sum(0) - x).abs().max() < 1e-5


def test_a_pass_is_the_model_on_the_song_played_faster(model):
    """One pass at 1.19 on a signal below 12 kHz: the stems of the sped-up song, slowed down."""
    x = _tones(3)
    stems = Separator(model, speeds=(1.19,)).separate_tensor(torch.from_numpy(x))
    faster = soxr.resample(x.T, RATE * 1.19, RATE, quality="HQ").T
    sped = Separator(model).separate_tensor(torch.from_numpy(np.ascontiguousarray(faster)))
    expected = np.stack([soxr.resample(np.ascontiguousarray(s.numpy().T), RATE, RATE * 1.19, quality="HQ").T
                         for s in sped])[..., :x.shape[1]]
    inner = slice(2000, x.shape[1] - 2000)
    error = np.abs(stems.numpy()[..., inner] - expected[..., inner]).max()
    assert error < 1e-3 * np.abs(x).max()


def test_ensemble_stream_does_not_depend_on_chunking(model):
    x = _noise(6, seed=1).numpy()
    sep = Separator(model, speeds=(1.0, 1.12), segment_seconds=2.0)
    whole = sep.separate_tensor(torch.from_numpy(x))
    cuts = [0, 777, 12345, 100000, 200001, x.shape[1]]
    pieces = list(sep.stream([x[:, a:b] for a, b in zip(cuts, cuts[1:])]))
    assert sum(p.shape[-1] for p in pieces) == x.shape[1]
    assert torch.allclose(whole, torch.cat(pieces, dim=-1), atol=1e-6)


def test_speeds_are_checked(model, tmp_path, capsys):
    for bad in ("", "0,1", "1,1", "fast", (3.0,), ()):
        with pytest.raises(ConvSepError, match="speeds must be distinct numbers from 0.5 to 2"):
            check_speeds(bad)
    assert check_speeds("1,1.12") == (1.0, 1.12)
    with pytest.raises(ConvSepError, match="speeds"):
        Separator(model, speeds=(1.0, 9.0))
    assert Separator(model, metadata={"speeds": [1.0, 1.19]}).speeds == (1.0, 1.19)
    song = tmp_path / "song.wav"
    sf.write(song, _tones(1).T, RATE)
    code = main(["separate", str(song), "-o", str(tmp_path / "out"), "--speeds", "1,3", "--no-progress"])
    assert code != 0 and "speeds must be distinct" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
