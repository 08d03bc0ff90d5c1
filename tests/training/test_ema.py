"""The moving average of the weights (--ema): its arithmetic, what validation and best.pt see,
and an exact resume."""
from __future__ import annotations

import torch
from torch import nn

from convsep.models.modelfile import load_model
from convsep.training.ema import WeightAverage
from convsep.training.trainer import train
from tests.training.test_trainer import config, corpus  # noqa: F401  (the module's corpus fixture)


def test_the_average_follows_the_exponential_rule_and_gives_the_weights_back():
    model = nn.Linear(3, 2)
    average = WeightAverage(model, 0.9)
    expected = model.weight.detach().clone()
    for step in range(5):
        with torch.no_grad():
            model.weight.add_(1.0)
        average.update(model)
        # the first update takes the weights as they are, then each moves 10% of the way
        expected = model.weight.detach().clone() if step == 0 else 0.9 * expected + 0.1 * model.weight.detach()
    own = model.weight.detach().clone()
    with average.applied(model):
        assert torch.allclose(model.weight, expected) and not torch.allclose(model.weight, own)
    assert torch.equal(model.weight, own)


def test_ema_run_saves_the_average_and_resumes_exactly(corpus, tmp_path):  # noqa: F811
    settings = dict(epochs=2, steps_per_epoch=6, lr=3e-3, ema=0.8)
    train(config(corpus, tmp_path / "run", **settings), progress=False)
    state = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    # one epoch: best.pt is its average, not its raw weights
    train(config(corpus, tmp_path / "half", **{**settings, "epochs": 1}), progress=False)
    half = torch.load(tmp_path / "half" / "last.ckpt", weights_only=True)
    raw = half["model"]
    averaged = {k[len("module."):]: v for k, v in half["ema"].items() if k.startswith("module.")}
    best, _ = load_model(tmp_path / "half" / "best.pt")
    assert all(torch.equal(best.state_dict()[k], averaged[k]) for k in raw)
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    # resumed for the second epoch: the same weights and the same average as straight through
    train(config(corpus, tmp_path / "half", **settings), resume=True, progress=False)
    resumed = torch.load(tmp_path / "half" / "last.ckpt", weights_only=True)
    assert all(torch.equal(state["model"][k], resumed["model"][k]) for k in state["model"])
    assert all(torch.equal(state["ema"][k], resumed["ema"][k]) for k in state["ema"])
