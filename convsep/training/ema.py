"""An exponential moving average of the weights (Polyak averaging), kept beside the model.

After every optimiser step the average moves towards the new weights by ``1 - decay``: it is
a weighted mean of the last ~1 / (1 - decay) steps' models, steadier than any one of them.
Validation scores it and best.pt holds it; training goes on with the raw weights. The
averaging is torch's own (``torch.optim.swa_utils.AveragedModel`` with its EMA update).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """``update(model)`` after each step; ``with applied(model):`` the model holds the average."""

    def __init__(self, model: nn.Module, decay: float):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=True)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """The averaged weights inside ``model`` for the block, its own weights back after it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.averaged.module.state_dict())
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
