"""convsep.dsp.masks: soft masks sum to one, survive silence, and group like the plain reference."""
import pytest
import torch

from convsep.dsp.masks import masked_mixtures, soft_masks


def test_soft_masks_sum_to_one_and_survive_silence():
    y = torch.rand(4, 2, 513, 50)
    y[:, :, :, 10:20] = 0.0  # silence in every source
    for power in (1.0, 2.0):
        m = soft_masks(y, dim=0, power=power)
        assert torch.isfinite(m).all()
        assert (m.sum(0) - 1).abs().max() < 1e-6
        assert torch.allclose(m[:, :, :, 15], torch.full_like(m[:, :, :, 15], 0.25))


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_masked_mixtures_equal_soft_masks_grouped(power):
    y = torch.rand(4, 2, 513, 60)
    y[:, :, :, 10:20] = 0.0
    y[1, :, :, 30:40] = -1.0                       # negative values count as zero
    mix = torch.randn(2, 513, 60, dtype=torch.complex64)
    groups = [(0,), (1, 2, 3), (2,), (0, 1, 2, 3)]
    masks = soft_masks(y, dim=0, power=power)
    ref = torch.stack([masks[list(g)].sum(0) for g in groups]) * mix
    ours = masked_mixtures(y.clone(), mix, groups, power, overwrite=True)
    assert (ours - ref).abs().max() < 1e-5
    assert torch.equal(masked_mixtures(y, mix, groups, power), ours)
