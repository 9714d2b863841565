"""Data layer: fetch and verify datasets, load them as in-memory multimodal tensors."""

from dmvae.data.celeba import CELEBA_ATTRIBUTES
from dmvae.data.datasets import DatasetSplits, ModalitySpec, MultimodalDataset, load_splits, paired_mask
from dmvae.data.fetch import check, default_root, fetch
from dmvae.data.idx import read_idx

__all__ = [
    "CELEBA_ATTRIBUTES",
    "DatasetSplits",
    "ModalitySpec",
    "MultimodalDataset",
    "check",
    "default_root",
    "fetch",
    "load_splits",
    "paired_mask",
    "read_idx",
]
