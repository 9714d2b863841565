"""The data types: modality specs, in-memory multimodal datasets (a batch is an index slice) and splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dmvae.errors import UserError

KINDS = ("image", "label", "attributes")


@dataclass(frozen=True)
class ModalitySpec:
    name: str
    kind: str  # "image" | "label" | "attributes"
    shape: tuple[int, ...]  # image: (C, H, W) or (D,); label: (num_classes,); attributes: (K,)
    names: tuple[str, ...] = ()  # class names (label) or attribute names (attributes); may be empty


class MultimodalDataset:
    """All examples of one split in memory as tensors; a batch is an index slice.

    tensors: image uint8 [n, C, H, W] (or float32 in [0, 1]), label int64 [n], attributes [n, K] in {0, 1}.
    paired: bool [n] (None: all paired). Unpaired examples have only the first modality (specs[0]) observed.
    """

    def __init__(
        self, tensors: dict[str, torch.Tensor], specs: list[ModalitySpec], paired: torch.Tensor | None = None
    ):
        self.specs = list(specs)
        if sorted(tensors) != sorted(spec.name for spec in self.specs):
            raise ValueError(f"tensors {sorted(tensors)} do not match specs {[s.name for s in self.specs]}")
        self.tensors = {spec.name: tensors[spec.name] for spec in self.specs}
        sizes = {len(tensor) for tensor in self.tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"modalities have different numbers of examples: {sizes}")
        n = sizes.pop()
        device = next(iter(self.tensors.values())).device
        if paired is None:
            paired = torch.ones(n, dtype=torch.bool, device=device)
        if paired.shape != (n,) or paired.dtype != torch.bool:
            raise ValueError(
                f"paired must be a bool tensor of shape ({n},), got {paired.dtype} {tuple(paired.shape)}"
            )
        self.paired = paired.to(device)

    def __len__(self) -> int:
        return len(self.paired)

    def __repr__(self) -> str:
        return f"MultimodalDataset(n={len(self)}, paired={int(self.paired.sum())}, specs={self.specs})"

    @property
    def device(self) -> torch.device:
        return self.paired.device

    @property
    def paired_index(self) -> torch.Tensor:
        return self.paired.nonzero(as_tuple=True)[0]

    @property
    def unpaired_index(self) -> torch.Tensor:
        return (~self.paired).nonzero(as_tuple=True)[0]

    def spec(self, name: str) -> ModalitySpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def batch(self, index: torch.Tensor, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Images float32 in [0, 1], labels int64, attributes float32; on the dataset's device."""
        index = index.to(self.device)
        out = {}
        for name in names if names is not None else self.tensors:
            values = self.tensors[name][index]
            kind = self.spec(name).kind
            if kind == "label":
                out[name] = values.long()
            elif kind == "image" and values.dtype == torch.uint8:
                out[name] = values.float().div_(255)
            else:
                out[name] = values.float()
        return out

    def to(self, device: torch.device | str) -> MultimodalDataset:
        tensors = {name: tensor.to(device) for name, tensor in self.tensors.items()}
        return MultimodalDataset(tensors, self.specs, self.paired.to(device))

    def subset(self, index: torch.Tensor) -> MultimodalDataset:
        index = torch.as_tensor(index, device=self.device)
        tensors = {name: tensor[index] for name, tensor in self.tensors.items()}
        return MultimodalDataset(tensors, self.specs, self.paired[index])


@dataclass
class DatasetSplits:
    name: str
    specs: list[ModalitySpec]
    train: MultimodalDataset  # its .paired mask marks the paired subset
    val: MultimodalDataset  # all paired
    test: MultimodalDataset | None  # all paired; None when loaded for a search (with_test=False)

    def to(self, device: torch.device | str) -> DatasetSplits:
        test = self.test.to(device) if self.test is not None else None
        return DatasetSplits(self.name, self.specs, self.train.to(device), self.val.to(device), test)


def paired_mask(n: int, fraction: float, seed: int) -> torch.Tensor:
    """Bool [n] with exactly round(fraction * n) entries True (at least 1 when n > 0).

    The paired examples are the first k of `torch.randperm(n)` drawn from a torch.Generator seeded with
    `seed` (the global RNG is neither used nor advanced). So for one seed the masks are nested: the
    paired set for a smaller fraction is contained in the one for a larger fraction.
    """
    if not 0 < fraction <= 1:
        raise UserError(f"the paired fraction must be in (0, 1], got {fraction!r}")
    mask = torch.zeros(n, dtype=torch.bool)
    if n == 0:
        return mask
    k = min(n, max(1, round(fraction * n)))
    generator = torch.Generator().manual_seed(seed)
    mask[torch.randperm(n, generator=generator)[:k]] = True
    return mask


def balanced_paired_mask(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """As `paired_mask`, but the round(fraction * n) paired examples are spread evenly over the classes of
    `labels` [n] (as in Kingma et al. 2014): each class gets k // C, and k % C classes (drawn with the same
    seeded generator) one more; within a class the examples are a seeded random draw. A class with too few
    examples gives all it has."""
    if not 0 < fraction <= 1:
        raise UserError(f"the paired fraction must be in (0, 1], got {fraction!r}")
    n = len(labels)
    mask = torch.zeros(n, dtype=torch.bool)
    if n == 0:
        return mask
    k = min(n, max(1, round(fraction * n)))
    generator = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    quota = torch.full((len(classes),), k // len(classes))
    quota[torch.randperm(len(classes), generator=generator)[: k % len(classes)]] += 1
    for label, count in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(labels == label).flatten()
        mask[members[torch.randperm(len(members), generator=generator)[:count]]] = True
    return mask


def take_first(n: int | None, available: int, dataset: str) -> int:
    """The number of training examples to keep for `data.train_size`."""
    if n is None:
        return available
    if n > available:
        raise UserError(
            f"data.train_size={n} exceeds the {available} training examples of {dataset}; lower it"
        )
    return n
