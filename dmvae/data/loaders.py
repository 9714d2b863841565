"""The dataset registry: `load_splits` finds the loader registered under `data.name`.

A loader is `fn(config, root, seed, with_test, progress) -> DatasetSplits`; modules register theirs with
`@register_loader("name")` (dmvae/data/__init__.py imports them all). With `with_test=False` the test split
is never read, so a search cannot look at it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dmvae.data.fetch import default_root
from dmvae.data.types import DatasetSplits, MultimodalDataset
from dmvae.errors import UserError

if TYPE_CHECKING:
    from dmvae.config import DataConfig

Loader = Callable[["DataConfig", Path, int, bool, Callable[[str], None]], DatasetSplits]
LOADERS: dict[str, Loader] = {}


def register_loader(*names: str) -> Callable[[Loader], Loader]:
    def register(loader: Loader) -> Loader:
        for name in names:
            LOADERS[name] = loader
        return loader

    return register


def load_splits(
    config: DataConfig, seed: int, progress: Callable[[str], None] = print, with_test: bool = True
) -> DatasetSplits:
    """Train/val/test of the dataset `config.name`; the train paired mask depends on `seed`."""
    loader = LOADERS.get(config.name)
    if loader is None:
        raise UserError(f"unknown dataset {config.name!r}; choose one of: {', '.join(sorted(LOADERS))}")
    root = Path(config.root) if config.root else default_root()
    splits = loader(config, root, seed, with_test, progress)
    if config.val_labels is not None:
        splits.val = validation_subset(splits.val, config.val_labels)
    return splits


VAL_SEED = 0


def validation_subset(val: MultimodalDataset, size: int) -> MultimodalDataset:
    """The first `size` examples of a permutation drawn with the fixed seed VAL_SEED: the same labelled
    validation set for every run seed, and nested across budgets (100 inside 1,000 inside 10,000)."""
    if size > len(val):
        raise UserError(f"data.val_labels={size} exceeds the {len(val)} validation examples; lower it")
    order = torch.randperm(len(val), generator=torch.Generator().manual_seed(VAL_SEED))
    return val.subset(order[:size].sort().values)


def pin_data_root(data: Any) -> None:
    """Make an unset data root ($DMVAE_DATA or ./data, as seen here) absolute in a DataConfig or its dict:
    Ray trials and tasks run in other working folders, where a relative default would point elsewhere."""
    if isinstance(data, dict):
        if data.get("root") is None:
            data["root"] = str(default_root().resolve())
    elif data.root is None:
        data.root = str(default_root().resolve())
