"""Data layer: fetch and verify datasets, load them as in-memory multimodal tensors."""

from dmvae.data import celeba, mnist, npz  # noqa: F401 - each registers its loader
from dmvae.data.celeba import CELEBA_ATTRIBUTES
from dmvae.data.fetch import check, default_root, fetch
from dmvae.data.idx import read_idx
from dmvae.data.loaders import LOADERS, load_splits, pin_data_root, register_loader
from dmvae.data.types import DatasetSplits, ModalitySpec, MultimodalDataset, paired_mask

__all__ = [
    "CELEBA_ATTRIBUTES",
    "LOADERS",
    "DatasetSplits",
    "ModalitySpec",
    "MultimodalDataset",
    "check",
    "default_root",
    "fetch",
    "load_splits",
    "paired_mask",
    "pin_data_root",
    "read_idx",
    "register_loader",
]
