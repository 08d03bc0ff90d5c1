"""`convsep train --init MODEL`: a run starts from a model file's weights."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from convsep.data.cache import merge_caches, open_cache, prepare_cache
from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.models.modelfile import load_model, save_model
from convsep.training.config import TrainConfig
from convsep.training.trainer import Trainer, train

SMALL_WIDEN = dict(conv1_filters=6, conv2_filters=4, bottleneck=8, n_fft=256, hop=64, context=12, time_kernel=5, block_hop=6)


def test_training_on_two_datasets_from_a_widened_model(tmp_path, make_hq_dataset):
    one, two = tmp_path / "one", tmp_path / "two"
    make_hq_dataset(one, {("train", "Song A"): 2.0, ("train", "Song B"): 2.0}, seed=0)
    make_hq_dataset(two, {("train", "Song A"): 2.0, ("train", "Song C"): 2.0}, seed=5)
    prepare_cache(two, tmp_path / "cache-two", subsets=("train",), progress=False)
    merged = merge_caches([open_cache(tmp_path / "cache-two"), open_cache(tmp_path / "cache-two")], tmp_path / "m")
    assert len(merged) == 4 and len({t.name for t in merged.tracks}) == 2      # same folder name: clash kept visible
    assert torch.equal(merged.to_device("cpu").audio[:, :, :10], torch.from_numpy(merged.array(0)[:, :, :10].copy()))

    torch.manual_seed(1)
    narrow = ConvSep(preset("convsep-stereo", **dict(SMALL_WIDEN, n_fft=1024, hop=256, context=30, time_kernel=15, block_hop=15)))
    save_model(tmp_path / "narrow.pt", narrow)
    wide = dict(SMALL_WIDEN, n_fft=1024, hop=256, context=30, time_kernel=15, block_hop=15, conv1_filters=10)
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


SMALL = {"conv1_filters": 16, "conv2_filters": 8, "bottleneck": 32}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, make_hq_dataset):
    root = tmp_path_factory.mktemp("corpus")
    make_hq_dataset(root, {("train", f"Song {i}"): 2.0 for i in range(3)})
    manifest = [{"track": f"Song {i}", "subset": "train", "split": "valid" if i == 2 else "train"} for i in range(3)]
    (root / "manifest.json").write_text(json.dumps({"tracks": manifest}))
    return root


def _config(root, outdir, **kw) -> TrainConfig:
    return TrainConfig(root=str(root), outdir=str(outdir), cache=str(Path(outdir).parent / "cache"),
                       model_overrides=SMALL, batch_size=2, blocks_per_excerpt=1, steps_per_epoch=2,
                       epochs=1, valid_seconds=2.0, tensorboard=False, **kw)


def test_init_loads_the_weights_and_refuses_another_config(corpus, tmp_path):
    torch.manual_seed(123)
    start = ConvSep(preset("convsep-stereo", **SMALL))
    save_model(tmp_path / "start.pt", start)
    trainer = Trainer(_config(corpus, tmp_path / "run", init=str(tmp_path / "start.pt")), progress=False)
    for name, value in start.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
    fresh = Trainer(_config(corpus, tmp_path / "fresh"), progress=False)
    assert not torch.equal(fresh.model.conv1.weight, start.conv1.weight)
    save_model(tmp_path / "other.pt", ConvSep(preset("convsep-stereo", **{**SMALL, "bottleneck": 64})))
    with pytest.raises(ConvSepError, match="--init .*bottleneck"):             # wider: cannot shrink
        Trainer(_config(corpus, tmp_path / "bad", init=str(tmp_path / "other.pt")), progress=False)


def test_lookahead_run_validates_the_causal_separation(corpus, tmp_path):
    """With --lookahead the validation scores are those of convsep stream's separation."""
    from convsep.evaluate.sdr import global_sdr
    from convsep.separation.realtime import causal_separate

    trainer = Trainer(_config(corpus, tmp_path / "rt", lookahead=1), progress=False)
    scores = trainer.validate(type("NoLog", (), {"example": lambda *a, **k: None})())
    _, track = trainer.valid[0]
    expected = global_sdr(track.transpose(1, 2), causal_separate(trainer.model, track.sum(0), 1).transpose(1, 2))
    assert scores["vocals"] == pytest.approx(float(expected[0]), abs=1e-4)


@pytest.mark.parametrize("target,level_balance", [("magnitude", False), ("phase-sensitive", True)])
def test_the_training_target_and_balance_reach_the_loss(corpus, tmp_path, target, level_balance):
    trainer = Trainer(_config(corpus, tmp_path / "run", target=target, level_balance=level_balance), progress=False)
    assert trainer.loss_of.phase_sensitive == (target == "phase-sensitive")
    assert trainer.loss_of.level_balance == level_balance


def test_an_unknown_training_target_is_refused_in_one_line():
    with pytest.raises(ConvSepError, match=r"^invalid training settings: target must be one of magnitude, phase-sensitive$"):
        TrainConfig(target="complex").validate()
    with pytest.raises(ConvSepError, match=r"^invalid training settings: level_balance needs the mse or l1 loss$"):
        TrainConfig(loss="deepconvsep", level_balance=True).validate()


def test_init_from_a_model_at_another_hop_keeps_its_weights(tmp_path, make_hq_dataset):
    """Same shapes, another hop (a block then spans more time): the weights start as they are."""
    data = tmp_path / "data"
    make_hq_dataset(data, {("train", "Song A"): 2.0, ("train", "Song B"): 2.0}, seed=0)
    torch.manual_seed(3)
    source = ConvSep(preset("convsep-stereo", **SMALL))
    save_model(tmp_path / "hop256.pt", source)
    cfg = TrainConfig(root=str(data), outdir=str(tmp_path / "run"), model_overrides=dict(SMALL, hop=512),
                      init=str(tmp_path / "hop256.pt"), batch_size=2, blocks_per_excerpt=1, steps_per_epoch=1,
                      epochs=1, valid_seconds=1.0, tensorboard=False)
    trainer = Trainer(cfg, progress=False)
    assert trainer.model.config.hop == 512
    for name, value in source.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
    with pytest.raises(ConvSepError, match="another config"):      # another shape is still refused
        Trainer(TrainConfig(**dict(cfg.to_dict(), outdir=str(tmp_path / "run2"),
                                   model_overrides=dict(SMALL, hop=512, context=20))), progress=False)
