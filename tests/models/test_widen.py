"""convsep.models.widen: function-preserving widening (--init into a wider model)."""
from __future__ import annotations

import pytest
import torch

from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.models.widen import widen

SMALL_WIDEN = dict(conv1_filters=6, conv2_filters=4, bottleneck=8, n_fft=256, hop=64, context=12, time_kernel=5, block_hop=6)


@pytest.mark.parametrize("name", ["convsep-stereo", "convsep-plus"])
def test_widened_model_computes_the_same_function_and_learns(name):
    torch.manual_seed(0)
    narrow = ConvSep(preset(name, **SMALL_WIDEN))
    for p in narrow.parameters():                      # trained-looking, not freshly initialised
        p.data.add_(0.1 * torch.randn_like(p))
    wide_config = preset(name, **dict(SMALL_WIDEN, conv1_filters=9, conv2_filters=7, bottleneck=13))
    wide = widen(narrow, wide_config)
    x = torch.rand(3, 2, 12, 129, dtype=torch.float64) * 40
    narrow, wide = narrow.double(), wide.double()
    assert torch.allclose(wide(x), narrow(x), rtol=1e-12, atol=1e-12)
    wide(x).square().sum().backward()
    zero_started = [wide.deconv1_weight.grad[:, 6:], wide.conv2.weight.grad[:4, 6:],
                    wide.encode_dense.weight.grad.view(13, 7, -1)[:8, 4:],
                    wide.decode_weight.grad.view(4, 13, 7, -1)[:, 8:, :4], wide.deconv2_weight.grad[:, 4:, :6]]
    assert all(g.abs().min() >= 0 and g.abs().sum() > 0 for g in zero_started)   # they do learn
    assert wide.deconv1_weight[:, 6:].abs().sum() == 0


def test_widening_refuses_what_would_change_the_function():
    narrow = ConvSep(preset("convsep-stereo", **SMALL_WIDEN))
    with pytest.raises(ConvSepError, match="would shrink"):
        widen(narrow, preset("convsep-stereo", **dict(SMALL_WIDEN, bottleneck=4)))
    with pytest.raises(ConvSepError, match="time_kernel differ"):
        widen(narrow, preset("convsep-stereo", **dict(SMALL_WIDEN, time_kernel=3, conv1_filters=8)))
    with pytest.raises(ConvSepError, match="tied"):
        widen(ConvSep(preset("deepconvsep", **SMALL_WIDEN)), preset("deepconvsep", **dict(SMALL_WIDEN, bottleneck=9)))
