"""An exponential moving average of the model's weights (`train.ema`; not in the paper).

torch's AveragedModel keeps the copy; it is updated after every optimiser step, and it is the model that
validation selects, the test scores and the run saves. Its first update copies the weights, so the average
starts where the run does (each `train.restarts` initialisation restores the average's empty state).
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def model(self) -> torch.nn.Module:
        """The averaged copy, with the model's own class, attributes and state-dict keys."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_dict(self) -> dict:
        return {"weights": self.model.state_dict(), "updates": int(self.averaged.n_averaged)}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])
        self.averaged.n_averaged.fill_(state["updates"])
