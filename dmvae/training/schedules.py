"""Which examples each optimisation step sees: paired examples (all modalities) and image-only ones.

A step is a list of parts; each part is (indices into the training split, paired?). Unpaired parts carry
only the first modality, so they train only that modality's networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Part:
    index: Tensor
    paired: bool


def _chunks(index: Tensor, size: int) -> list[Tensor]:
    return list(index.split(size)) if len(index) else []


class AuthorsSchedule:
    """The authors' regime (REFERENCE.md): the same batch order every epoch, no shuffling; paired examples
    fill their own batches, which sit at fixed seeded positions among the image-only batches."""

    def __init__(self, paired: Tensor, unpaired: Tensor, batch_size: int, generator: torch.Generator):
        paired_batches = _chunks(paired[torch.randperm(len(paired), generator=generator)], batch_size)
        unpaired_batches = _chunks(unpaired, batch_size)
        total = len(paired_batches) + len(unpaired_batches)
        positions = set(torch.randperm(total, generator=generator)[: len(paired_batches)].tolist())
        paired_iter, unpaired_iter = iter(paired_batches), iter(unpaired_batches)
        self.steps = [
            [Part(next(paired_iter), True)] if i in positions else [Part(next(unpaired_iter), False)]
            for i in range(total)
        ]

    def epoch(self, generator: torch.Generator) -> list[list[Part]]:
        return self.steps

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class MixedSchedule:
    """Every step holds a batch of image-only examples and round(paired_ratio * batch_size) paired ones
    (capped at the number of paired examples), drawn without replacement from a stream of paired examples
    that is reshuffled whenever it runs out. With every example paired, an epoch is one shuffled pass."""

    def __init__(self, paired: Tensor, unpaired: Tensor, batch_size: int, paired_ratio: float):
        self.paired, self.unpaired, self.batch_size = paired, unpaired, batch_size
        self.paired_size = min(len(paired), max(1, round(paired_ratio * batch_size)))
        self._remaining = paired[:0]

    def _next_paired(self, generator: torch.Generator) -> Tensor:
        taken, need = [], self.paired_size
        while need:
            if not len(self._remaining):
                self._remaining = self.paired[torch.randperm(len(self.paired), generator=generator)]
            taken.append(self._remaining[:need])
            self._remaining = self._remaining[need:]
            need -= len(taken[-1])
        return torch.cat(taken)

    def epoch(self, generator: torch.Generator) -> list[list[Part]]:
        if not len(self.unpaired):
            order = self.paired[torch.randperm(len(self.paired), generator=generator)]
            return [[Part(batch, True)] for batch in _chunks(order, self.batch_size)]
        order = self.unpaired[torch.randperm(len(self.unpaired), generator=generator)]
        steps = []
        for batch in _chunks(order, self.batch_size):
            step = [Part(batch, False)]
            if len(self.paired):
                step.append(Part(self._next_paired(generator), True))
            steps.append(step)
        return steps

    def state_dict(self) -> dict:
        return {"remaining": self._remaining.clone()}

    def load_state_dict(self, state: dict) -> None:
        self._remaining = state["remaining"].to(self.paired.device)


def make_schedule(
    name: str, paired: Tensor, unpaired: Tensor, batch_size: int, paired_ratio: float, generator
):
    if name == "authors":
        return AuthorsSchedule(paired, unpaired, batch_size, generator)
    return MixedSchedule(paired, unpaired, batch_size, paired_ratio)
