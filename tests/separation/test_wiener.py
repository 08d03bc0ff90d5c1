"""The multichannel Wiener post-filter (norbert) inside the Separator."""
import numpy as np
import pytest
import torch

from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.separation.separator import Separator


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ConvSep(preset("convsep-stereo", conv1_filters=12, conv2_filters=6, bottleneck=16))


def test_wiener_changes_the_stems_and_keeps_their_sum(model):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 44100 * 3, generator=g) * 0.1
    x += 0.5 * torch.sin(torch.arange(x.shape[1]) * (2 * torch.pi * 440 / 44100))   # loud: |STFT| > 10
    x[1] *= 0.5                                                # some stereo image
    plain = Separator(model, wiener_iterations=0).separate_tensor(x)
    wiener = Separator(model, wiener_iterations=1).separate_tensor(x)
    assert wiener.shape == plain.shape
    assert (wiener.sum(0) - x).abs().max() < 1e-4
    assert (wiener - plain).abs().max() > 1e-4


def test_wiener_stream_does_not_depend_on_chunking(model):
    x = np.random.default_rng(1).standard_normal((2, 44100 * 7)).astype(np.float32) * 0.1
    sep = Separator(model, wiener_iterations=1, segment_seconds=2.0)
    whole = sep.separate_tensor(torch.from_numpy(x))
    pieces = torch.cat(list(sep.stream([x[:, :12345], x[:, 12345:200000], x[:, 200000:]])), dim=-1)
    assert torch.allclose(whole, pieces, atol=1e-5)


def test_wiener_iterations_are_checked(model):
    with pytest.raises(ConvSepError, match="wiener"):
        Separator(model, wiener_iterations=-1)
    with pytest.raises(ConvSepError, match="wiener"):
        Separator(model, wiener_iterations="2")
    assert Separator(model, metadata={"wiener_iterations": 2}).wiener_iterations == 2
