"""Input level normalisation: the model sees each song at the level it was trained at."""
import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.api import separate_file
from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.separation.separator import Separator


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = ConvSep(preset("convsep-stereo", conv1_filters=12, conv2_filters=6, bottleneck=16))
    with torch.no_grad():
        m.encode_dense.bias.add_(0.05)                 # biases make the model level-dependent
    return m


def _music(seconds=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, int(44100 * seconds), generator=g) * 0.05


def test_normalised_input_makes_the_stems_follow_the_song_level(model):
    x = _music()
    on = Separator(model, input_level_db=-16.0)
    off = Separator(model, input_level_db=False)
    quiet, loud = on.separate_tensor(x), on.separate_tensor(8 * x)
    def relative(a, b):
        return float((a - b).norm() / b.norm())

    assert relative(loud / 8, quiet) < 1e-3                    # the same masks at any level (float32)
    assert relative(off.separate_tensor(8 * x) / 8, off.separate_tensor(x)) > 0.05      # without: not
    assert (loud.sum(0) - 8 * x).abs().max() < 1e-4                             # stems still add up
    assert on.input_gain(torch.zeros(2, 1000)) == 1.0                            # silence: untouched
    assert on.gain_for_rms(1e-9) == pytest.approx(10 ** 1.5)                    # bounded to +-30 dB


def test_files_use_the_whole_song_level_and_the_model_files_setting(model, tmp_path):
    x = _music(4.0, seed=1) * 3
    sf.write(tmp_path / "song.wav", x.T.numpy(), 44100, subtype="FLOAT")
    sep = Separator(model, metadata={"input_level_db": -20.0})
    assert sep.input_level_db == -20.0
    result = separate_file(tmp_path / "song.wav", tmp_path / "out", model=sep, progress=False, bits="32f")
    vocals, _ = sf.read(result.stems["vocals"], dtype="float32", always_2d=True)
    expected = sep.separate_tensor(torch.from_numpy(sf.read(tmp_path / "song.wav", dtype="float32")[0].T.copy()))
    assert np.abs(vocals.T - expected[0].numpy()).max() < 1e-5
    with pytest.raises(ConvSepError, match="input level"):
        Separator(model, input_level_db=12.0)


def test_cli_input_level_is_checked(tmp_path, capsys):
    from convsep.cli import main

    sf.write(tmp_path / "a.wav", np.zeros((4410, 2), "float32"), 44100)
    assert main(["separate", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o"), "--input-level", "loud"]) == 2
    assert "--input-level must be" in capsys.readouterr().err


def test_a_mono_model_measures_the_level_of_the_downmix_it_separates(tmp_path):
    torch.manual_seed(1)
    mono = ConvSep(preset("convsep-stereo", channels=1, conv1_filters=12, conv2_filters=6, bottleneck=16))
    with torch.no_grad():
        mono.encode_dense.bias.add_(0.05)
    x = _music(3.0, seed=2)
    x[1] = -x[0] * 0.9                                  # a downmix much quieter than either channel
    sf.write(tmp_path / "song.wav", x.T.numpy(), 44100, subtype="FLOAT")
    sep = Separator(mono, input_level_db=-16.0)
    result = separate_file(tmp_path / "song.wav", tmp_path / "out", model=sep, progress=False, bits="32f")
    vocals, _ = sf.read(result.stems["vocals"], dtype="float32", always_2d=True)
    expected = sep(x.numpy())["vocals"]
    assert np.abs(vocals.T - np.asarray(expected)).max() < 1e-5
