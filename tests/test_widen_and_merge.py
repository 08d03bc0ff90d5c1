"""Function-preserving widening (--init into a wider model) and training on several datasets."""
from __future__ import annotations

import pytest
import torch

from convsep.data.cache import merge_caches, open_cache, prepare_cache
from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.models.widen import widen
from convsep.modelfile import load_model, save_model
from convsep.training.config import TrainConfig
from convsep.training.trainer import train

SMALL = dict(conv1_filters=6, conv2_filters=4, bottleneck=8, n_fft=256, hop=64, context=12, time_kernel=5, block_hop=6)


@pytest.mark.parametrize("name", ["convsep-stereo", "convsep-plus"])
def test_widened_model_computes_the_same_function_and_learns(name):
    torch.manual_seed(0)
    narrow = ConvSep(preset(name, **SMALL))
    for p in narrow.parameters():                      # trained-looking, not freshly initialised
        p.data.add_(0.1 * torch.randn_like(p))
    wide_config = preset(name, **dict(SMALL, conv1_filters=9, conv2_filters=7, bottleneck=13))
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
    narrow = ConvSep(preset("convsep-stereo", **SMALL))
    with pytest.raises(ConvSepError, match="would shrink"):
        widen(narrow, preset("convsep-stereo", **dict(SMALL, bottleneck=4)))
    with pytest.raises(ConvSepError, match="time_kernel differ"):
        widen(narrow, preset("convsep-stereo", **dict(SMALL, time_kernel=3, conv1_filters=8)))
    with pytest.raises(ConvSepError, match="tied"):
        widen(ConvSep(preset("deepconvsep", **SMALL)), preset("deepconvsep", **dict(SMALL, bottleneck=9)))


def test_training_on_two_datasets_from_a_widened_model(tmp_path, make_hq_dataset):
    one, two = tmp_path / "one", tmp_path / "two"
    make_hq_dataset(one, {("train", "Song A"): 2.0, ("train", "Song B"): 2.0}, seed=0)
    make_hq_dataset(two, {("train", "Song A"): 2.0, ("train", "Song C"): 2.0}, seed=5)
    prepare_cache(two, tmp_path / "cache-two", subsets=("train",), progress=False)
    merged = merge_caches([open_cache(tmp_path / "cache-two"), open_cache(tmp_path / "cache-two")], tmp_path / "m")
    assert len(merged) == 4 and len({t.name for t in merged.tracks}) == 2      # same folder name: clash kept visible
    assert torch.equal(merged.to_device("cpu").audio[:, :, :10], torch.from_numpy(merged.array(0)[:, :, :10].copy()))

    torch.manual_seed(1)
    narrow = ConvSep(preset("convsep-stereo", **dict(SMALL, n_fft=1024, hop=256, context=30, time_kernel=15, block_hop=15)))
    save_model(tmp_path / "narrow.pt", narrow)
    wide = dict(SMALL, n_fft=1024, hop=256, context=30, time_kernel=15, block_hop=15, conv1_filters=10)
    cfg = TrainConfig(root=str(one), extra_roots=[str(tmp_path / "cache-two")], outdir=str(tmp_path / "run"),
                      cache=str(tmp_path / "cache-one"), model_overrides=wide, init=str(tmp_path / "narrow.pt"),
                      batch_size=4, blocks_per_excerpt=1, steps_per_epoch=2, epochs=1, valid_seconds=1.0,
                      tensorboard=False, seed=0)
    result = train(cfg, progress=False)
    assert result["step"] == 2
    model, meta = load_model(tmp_path / "run" / "best.pt")
    assert model.config.conv1_filters == 10
    assert meta["trained_on"] == [str(one), str(tmp_path / "cache-two")]          # both datasets recorded
    assert list((tmp_path / "run" / "merged-cache").glob("concat-*.npy"))

    with pytest.raises(ConvSepError, match="another config"):
        train(TrainConfig(**dict(cfg.to_dict(), outdir=str(tmp_path / "run2"),
                                 model_overrides=dict(wide, time_kernel=10))), progress=False)
