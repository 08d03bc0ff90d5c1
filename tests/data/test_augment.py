"""convsep.data.augment: gains, channel swap and mute, source dropout, the fused augmentation."""
from __future__ import annotations

import json

import pytest
import torch

from convsep.data import AugmentConfig
from convsep.data.augment import augment, channel_mute, channel_swap, mixture_db, random_gain, source_dropout
from convsep.errors import ConvSepError


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_gain_range_and_mean():
    y = random_gain(torch.ones(4000, 4, 2, 8), _g(), 0.25, 1.25)
    g = y[:, :, 0, 0]
    assert torch.equal(y, g[:, :, None, None].expand_as(y))  # one gain per source
    assert g.min() >= 0.25 and g.max() <= 1.25
    assert abs(g.mean().item() - 0.75) < 0.01
    assert abs(g.std().item() - 1 / 12 ** 0.5) < 0.01


def test_channel_swap_frequency():
    x = torch.stack([torch.ones(8), 2 * torch.ones(8)]).expand(4000, 4, 2, 8)
    y = channel_swap(x, _g(), 0.3)
    swapped = (y[:, :, 0] == 2).all(-1)
    assert torch.equal(y[:, :, 1], torch.where(swapped[..., None], 1.0, 2.0).expand(-1, -1, 8))
    assert abs(swapped.float().mean().item() - 0.3) < 0.015


def test_channel_mute_frequency():
    y = channel_mute(torch.ones(4000, 4, 2, 8), _g(), 0.2)
    zero = (y == 0).all(-1)  # (B, S, C)
    assert not (zero[..., 0] & zero[..., 1]).any()  # never both channels
    muted = zero.any(-1).float()
    assert abs(muted.mean().item() - 0.2) < 0.015
    assert abs(zero[..., 0].float().sum().item() / muted.sum().item() - 0.5) < 0.05
    assert torch.equal(y[~zero], torch.ones(int((~zero).sum()), 8))


def test_source_dropout_frequency_and_mixture():
    x = torch.rand(4000, 4, 2, 8, generator=_g(1)) + 0.1
    y = source_dropout(x, _g(), 0.25)
    dropped = (y == 0).all(-1).all(-1)
    assert abs(dropped.float().mean().item() - 0.25) < 0.015
    assert torch.equal(y[~dropped], x[~dropped])
    mix = y.sum(1)
    expected = (x * (~dropped)[..., None, None]).sum(1)
    torch.testing.assert_close(mix, expected)  # a dropped source is out of the mixture


def test_fused_augment_equals_the_functions_in_order():
    x = torch.randn(64, 4, 2, 32, generator=_g(3))
    cfg = AugmentConfig(channel_mute_p=0.5, source_dropout_p=0.3)
    fused = augment(x, cfg, _g(9))
    g = _g(9)
    steps = source_dropout(channel_mute(channel_swap(random_gain(x, g, 0.25, 1.25), g, 0.5), g, 0.5), g, 0.3)
    torch.testing.assert_close(fused, steps)
    torch.testing.assert_close(mixture_db(fused), 10 * torch.log10(fused.sum(1).square().mean((1, 2))))


def test_augment_config_json_and_validation():
    cfg = AugmentConfig(cross_song_p=0.2, gain_min=1.0, gain_max=1.0)
    assert not cfg.gain_active
    assert AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConvSepError):
        AugmentConfig(channel_swap_p=1.5)
    with pytest.raises(ConvSepError):
        AugmentConfig(gain_min=2.0, gain_max=1.0)
    with pytest.raises(ConvSepError, match="unknown"):
        AugmentConfig.from_dict({"pitch": 1})
