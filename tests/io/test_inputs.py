"""convsep.io.inputs: arrays and rates given to the Python API: dtypes, shapes, lists, rates."""
import numpy as np
import pytest
import torch

import convsep
from convsep.errors import ConvSepError
from convsep.io.inputs import as_waveform, check_rate
from convsep.models import ConvSep, preset
from convsep.separation.separator import Separator

RATE = 44100


@pytest.fixture(scope="module")
def separator():
    torch.manual_seed(0)
    return Separator(ConvSep(preset("convsep-stereo")).eval())


def tone(seconds=0.5, channels=2) -> np.ndarray:
    """float32 (channels, samples) in [-0.5, 0.5]."""
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


# -- dtypes -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,scale", [(np.int16, 32768), (np.int32, 2 ** 31), (np.int8, 128)])
def test_signed_pcm_is_scaled_by_its_full_range(separator, dtype, scale):
    audio = tone()
    pcm = np.round(audio * (scale - 1)).astype(dtype)
    from_pcm = convsep.separate(pcm, RATE, model=separator)
    from_float = convsep.separate(pcm.astype(np.float32) / scale, RATE, model=separator)
    for name in from_float:
        assert torch.equal(from_pcm[name], from_float[name])
    assert max(float(s.abs().max()) for s in from_pcm.values()) < 1.0     # never 10194


def test_uint8_is_8bit_pcm_and_tensors_are_scaled_too(separator):
    audio = tone()
    as_u8 = as_waveform(np.round(audio * 127 + 128).astype(np.uint8))
    assert np.abs(as_u8 - audio).max() < 1 / 100
    as_i16 = as_waveform(torch.from_numpy(np.round(audio * 32767).astype(np.int16)))
    assert np.abs(as_i16 - audio).max() < 1e-4


BAD_ARRAYS = [
    ("bool", lambda: tone() > 0, "bool samples are not audio"),
    ("complex", lambda: tone().astype(np.complex64), "complex64 samples are not audio"),
    ("int64", lambda: (tone() * 1000).astype(np.int64), "int64 samples have no standard audio scale"),
    ("uint16", lambda: (tone() * 1000 + 2000).astype(np.uint16), "uint16 samples have no standard audio scale"),
    ("object", lambda: np.array([["a", "b"], ["c", "d"]], dtype=object), "not audio"),
    ("strings", lambda: np.array([["a", "b"]]), "not audio"),
    ("transposed-stereo", lambda: tone().T, "looks transposed"),
    ("transposed-mono", lambda: tone(channels=1).T, "looks transposed"),
    ("three-dims", lambda: tone()[None], "expected (channels, samples)"),
    ("scalar", lambda: np.float32(0.5), "expected (channels, samples)"),
    ("too-many-channels", lambda: np.zeros((64, 5000), np.float32), "64 channels"),
    ("nan", lambda: np.where(np.arange(RATE // 2) == 7, np.nan, tone()).astype(np.float32), "NaN or infinite"),
    ("inf-tensor", lambda: torch.full((2, 5000), float("inf")), "NaN or infinite"),
    ("ragged-list", lambda: [[0.0, 0.1], [0.2]], "a list must hold numbers"),
    ("list-of-strings", lambda: [["x", "y"]], "a list must hold numbers"),
    ("dict", lambda: {"left": [0.0]}, "expected a numpy array or a torch tensor"),
    ("string", lambda: "song.wav", "expected a numpy array or a torch tensor"),
    ("none", lambda: None, "expected a numpy array or a torch tensor"),
    ("empty", lambda: np.zeros((2, 0), np.float32), "too short"),
]


@pytest.mark.parametrize("name,make,pattern", BAD_ARRAYS, ids=[b[0] for b in BAD_ARRAYS])
def test_bad_arrays_are_refused_with_one_line(separator, name, make, pattern):
    with pytest.raises(ConvSepError, match="^[^\n]*$") as caught:
        convsep.separate(make(), RATE, model=separator)
    assert pattern in str(caught.value)


def test_lists_are_read_as_float_numbers(separator):
    audio = tone()
    from_list = convsep.separate(audio.tolist(), RATE, model=separator)
    from_array = convsep.separate(audio, RATE, model=separator)
    assert all(torch.equal(from_list[k], from_array[k]) for k in from_array)


@pytest.mark.parametrize("rate,pattern", [
    ("44100", "integer number of Hz"), (44100.5, "integer number of Hz"), (True, "integer number of Hz"),
    (None, "integer number of Hz"), (0, "outside the supported"), (-44100, "outside the supported"),
    (10 ** 9, "outside the supported"), (float("nan"), "integer number of Hz"),
])
def test_bad_rates_are_refused(separator, rate, pattern):
    with pytest.raises(ConvSepError, match=pattern):
        convsep.separate(tone(), rate, model=separator)
    with pytest.raises(ConvSepError, match=pattern):
        separator(tone(), rate)


def test_integral_rates_of_any_type_are_accepted():
    assert check_rate(44100.0) == check_rate(np.int64(44100)) == check_rate(44100) == 44100
