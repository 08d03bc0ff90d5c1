"""The Separator equals the plain whole-signal pipeline (tests/plain_pipeline.py) to 1e-5."""
import math

import pytest
import torch

from convsep.dsp.masks import soft_masks
from convsep.dsp.spectral import STFT
from convsep.separation.separator import Separator
from convsep.separation.stems import plan_outputs
from tests.plain_pipeline import _randomised, plain_estimate, plain_separate


@pytest.mark.parametrize("name,block_hop,seconds,outputs", [
    ("convsep-stereo", None, 3.3, None),
    ("convsep-plus", 7, 1.1, "two"),
    ("deepconvsep", None, 2.0, "subset"),
])
def test_separator_equals_plain_whole_signal_pipeline(name, block_hop, seconds, outputs):
    model = _randomised(name, seed=3)
    c = model.config
    plan = (plan_outputs(c.sources, two_stems="vocals") if outputs == "two"
            else plan_outputs(c.sources, stems=["bass", "vocals"]) if outputs == "subset" else None)
    x = torch.randn(c.channels, int(seconds * 44100)) * 0.1
    for segment_seconds in (0.4, 100.0):
        sep = Separator(model, block_hop=block_hop, segment_seconds=segment_seconds, outputs=plan)
        ours = sep.separate_tensor(x)
        ref = plain_separate(model, x, sep.block_hop, sep.crossfade,
                             [o.sources for o in sep.outputs], sep.mask_power)
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max() < 1e-5


def test_separator_estimate_and_masks_keep_their_layout_and_values():
    model = _randomised("convsep-stereo", seed=4)
    sep = Separator(model)
    spec = STFT()(torch.randn(2, 30000) * 0.1)
    with torch.no_grad():
        ref = plain_estimate(model, spec.abs(), sep.block_hop, sep._weights)
    est = sep.estimate(spec.abs())
    assert est.shape == ref.shape == (4, 2, 513, spec.shape[-1])
    assert (est - ref).abs().max() < 1e-5
    masks = sep.masks(spec)
    loud = ref.sum(0) > 1e-3               # masks of near-silent bins amplify rounding
    assert (masks - soft_masks(ref, dim=0))[:, loud].abs().max() < 1e-5
    assert math.isclose(float(masks.sum(0).mean()), 1.0, rel_tol=1e-6)
