"""`convsep train --init MODEL`: a run starts from a model file's weights."""
import json
from pathlib import Path

import pytest
import torch

from convsep.errors import ConvSepError
from convsep.modelfile import save_model
from convsep.models import ConvSep, preset
from convsep.training.config import TrainConfig
from convsep.training.trainer import Trainer

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
    from convsep.realtime import causal_separate
    from convsep.evaluate.sdr import global_sdr

    trainer = Trainer(_config(corpus, tmp_path / "rt", lookahead=1), progress=False)
    scores = trainer.validate(type("NoLog", (), {"example": lambda *a, **k: None})())
    _, track = trainer.valid[0]
    expected = global_sdr(track.transpose(1, 2), causal_separate(trainer.model, track.sum(0), 1).transpose(1, 2))
    assert scores["vocals"] == pytest.approx(float(expected[0]), abs=1e-4)
