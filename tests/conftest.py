"""Shared fixtures: synthetic multimodal splits (any of image / label / attributes) and the real data root."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from services import configure_s3_env

from dmvae.data import DatasetSplits, ModalitySpec, MultimodalDataset, default_root

CLASSES = 10
ATTRIBUTES = 5
SIDE = 8

SPECS = {
    "image": ModalitySpec("image", "image", (1, SIDE, SIDE)),
    "label": ModalitySpec("label", "label", (CLASSES,), tuple(str(c) for c in range(CLASSES))),
    "attributes": ModalitySpec("attributes", "attributes", (ATTRIBUTES,), tuple(f"a{k}" for k in range(5))),
}


def build_synthetic_splits(
    names: tuple[str, ...] = ("image", "label"),
    n_train: int = 64,
    paired_fraction: float = 1.0,
    n_eval: int = 20,
    seed: int = 1,
) -> DatasetSplits:
    """Images whose pixels encode the class (a bright row per class) plus noise; attributes = class bits."""
    generator = torch.Generator().manual_seed(seed)
    specs = [SPECS[name] for name in names]

    def split(n: int, paired: torch.Tensor | None = None) -> MultimodalDataset:
        labels = torch.randint(0, CLASSES, (n,), generator=generator)
        images = 0.3 * torch.rand(n, 1, SIDE, SIDE, generator=generator)
        images[torch.arange(n), 0, labels % SIDE] += 0.6
        images[:, 0, :, 0] += 0.1 * (labels >= SIDE).float().unsqueeze(1)
        bits = (labels.unsqueeze(1) >> torch.arange(ATTRIBUTES)) & 1
        images = (255 * images.clamp(0, 1)).to(torch.uint8)
        values = {"image": images, "label": labels, "attributes": bits.to(torch.uint8)}
        return MultimodalDataset({name: values[name] for name in names}, specs, paired)

    paired = torch.zeros(n_train, dtype=torch.bool)
    paired[torch.randperm(n_train, generator=generator)[: max(1, round(paired_fraction * n_train))]] = True
    return DatasetSplits("synthetic", specs, split(n_train, paired), split(n_eval), split(n_eval))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One CPU thread: the small networks here run faster, results do not depend on the core count, and a
    busy machine is not oversubscribed. Restored after the session."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def synthetic_splits():
    """A factory: synthetic_splits(names=..., n_train=..., paired_fraction=...) -> DatasetSplits."""
    return build_synthetic_splits


@pytest.fixture
def real_data_root():
    """A factory: real_data_root("mnist") -> the data root holding it, or skip the test."""

    def require(name: str) -> Path:
        root = default_root().resolve()
        if not (root / name / "train-images-idx3-ubyte").is_file():
            pytest.skip(f"{name} not found under {root}; set DMVAE_DATA or run `dmvae data fetch {name}`")
        return root

    return require


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the study tests (2 CPUs). Its workers inherit the S3 settings of the test server
    (fake credentials, no metadata lookups, the local endpoint): set before Ray starts."""
    if not (default_root() / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {default_root()} (dmvae data fetch mnist)")
    import ray

    configure_s3_env()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
