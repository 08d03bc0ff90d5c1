"""convsep.models.network: parameter counts of the presets, the batched model against the
per-source reference branches and against explicit blocks."""
import pytest
import torch

from convsep.dsp.spectral import block_weights
from convsep.models import PRESETS, ConvSep, preset
from tests.plain_pipeline import _randomised, plain_estimate
from tests.reference_convsep import reference_forward


def test_preset_parameter_counts_match_the_reference_architectures():
    # DeepConvSep: conv 50x(1,513) 25,700 + conv 50x50x(15,1) 37,550 + dense 800->128 102,528
    # + 4 decoders (dense 128->800) 4 x 103,200 + 4 output biases (transposed convs tied).
    assert sum(p.numel() for p in ConvSep(preset("deepconvsep")).parameters()) == 578_582
    # PytorchConvSep: 51,350 + 22,530 + 61,568 + 4 x (61,920 + 22,550 + 51,302).
    assert sum(p.numel() for p in ConvSep(preset("convsep-stereo")).parameters()) == 678_536


@pytest.mark.parametrize("name", list(PRESETS))
def test_batched_model_equals_per_source_reference_branches(name):
    torch.manual_seed(0)
    model = ConvSep(preset(name))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    c = model.config
    x = torch.rand(3, c.channels, c.context, c.bins)
    out = model(x)
    assert out.shape == (3, 4, c.channels, c.context, c.bins)
    assert (out >= 0).all()
    assert (out - reference_forward(model, x)).abs().max() < 1e-5


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("block_hop", [1, 7, 15, 30])
@pytest.mark.parametrize("frames", [1, 30, 31, 97])
def test_frame_level_model_equals_blocks_model_overlap_add(name, block_hop, frames):
    model = _randomised(name)
    c = model.config
    magnitude = torch.rand(c.channels, c.bins, frames) * 4
    for crossfade in ("triangular", "equal"):
        weights = block_weights(c.context, crossfade)
        with torch.inference_mode():
            ref = plain_estimate(model, magnitude, block_hop, weights)
            for chunk in (1, 3, 64):
                ours = model.estimate_frames(magnitude.transpose(-1, -2), block_hop, weights, chunk_blocks=chunk)
                assert ours.shape == (len(c.sources), c.channels, frames, c.bins)
                assert (ours.transpose(-1, -2) - ref).abs().max() < 1e-5 * max(1.0, ref.abs().max())
