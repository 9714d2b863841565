import gzip
import hashlib
import importlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import CELEBA_ALL_ATTRIBUTES, write_celeba_fixture, write_idx

from dmvae.config import DataConfig
from dmvae.data import (
    CELEBA_ATTRIBUTES,
    ModalitySpec,
    MultimodalDataset,
    check,
    checksums,
    default_root,
    fetch,
    load_splits,
    paired_mask,
    read_idx,
    sources,
)
from dmvae.errors import UserError

# The package re-exports the function `fetch`, which hides the module of the same name as an attribute.
fetch_module = importlib.import_module("dmvae.data.fetch")
IDX_NAMES = sources.IDX_FILES


# --- IDX ---------------------------------------------------------------------------------------------


def test_read_idx_images_and_labels(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    labels = np.array([7, 0, 9])
    got = read_idx(write_idx(tmp_path / "images", images))
    assert got.dtype == torch.uint8 and got.shape == (3, 28, 28)
    assert torch.equal(got, torch.from_numpy(images.astype(np.uint8)))
    assert read_idx(write_idx(tmp_path / "labels", labels)).tolist() == [7, 0, 9]


def test_read_idx_truncated_or_not_idx(tmp_path):
    path = write_idx(tmp_path / "images", np.zeros((4, 28, 28)))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match="images is truncated"):
        read_idx(path)
    path.write_bytes(b"hello world")
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(path)
    with pytest.raises(UserError, match="cannot read"):
        read_idx(tmp_path / "absent")


# --- paired mask -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fraction"), [(1000, 0.001), (1000, 0.1), (50_000, 0.002), (7, 0.5), (10, 1.0)]
)
def test_paired_mask_size(n, fraction):
    mask = paired_mask(n, fraction, seed=3)
    assert mask.dtype == torch.bool and mask.shape == (n,)
    assert int(mask.sum()) == max(1, round(fraction * n))


def test_paired_mask_at_least_one_reproducible_independent_of_global_rng():
    assert int(paired_mask(100, 0.001, 0).sum()) == 1
    torch.manual_seed(1)
    first = paired_mask(500, 0.1, seed=5)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    assert torch.equal(first, paired_mask(500, 0.1, seed=5))
    assert torch.equal(state, torch.get_rng_state())
    assert not torch.equal(first, paired_mask(500, 0.1, seed=6))


def test_paired_mask_nested():
    masks = [paired_mask(1000, fraction, seed=2) for fraction in (0.01, 0.05, 0.2, 0.5, 1.0)]
    for smaller, larger in zip(masks, masks[1:], strict=False):
        assert bool((smaller <= larger).all())


def test_paired_mask_rejects_bad_fraction():
    with pytest.raises(UserError):
        paired_mask(10, 0.0, 0)


# --- MultimodalDataset -------------------------------------------------------------------------------


def _toy_dataset(n=6):
    specs = [ModalitySpec("image", "image", (1, 2, 2)), ModalitySpec("label", "label", (3,), ("a", "b", "c"))]
    tensors = {
        "label": torch.arange(n) % 3,
        "image": torch.full((n, 1, 2, 2), 255, dtype=torch.uint8),
    }
    paired = torch.tensor([True, False] * (n // 2))
    return MultimodalDataset(tensors, specs, paired)


def test_dataset_batch_subset_to():
    data = _toy_dataset()
    assert len(data) == 6 and list(data.tensors) == ["image", "label"]
    assert data.paired_index.tolist() == [0, 2, 4] and data.unpaired_index.tolist() == [1, 3, 5]
    batch = data.batch(torch.tensor([1, 2]))
    assert batch["image"].dtype == torch.float32 and float(batch["image"].max()) == 1.0
    assert batch["label"].dtype == torch.int64 and batch["label"].tolist() == [1, 2]
    assert list(data.batch(torch.tensor([0]), names=["label"])) == ["label"]
    sub = data.subset(torch.tensor([0, 1]))
    assert len(sub) == 2 and sub.paired.tolist() == [True, False]
    moved = data.to("cpu")
    assert moved.tensors["image"].dtype == torch.uint8
    assert bool(MultimodalDataset(dict(data.tensors), data.specs).paired.all())


# --- CelebA ------------------------------------------------------------------------------------------


def test_celeba_fixture_loads(tmp_path):
    folder = write_celeba_fixture(tmp_path, n=24)
    config = DataConfig(name="celeba", root=str(tmp_path), paired_fraction=0.5)
    messages = []
    splits = load_splits(config, seed=0, progress=messages.append)
    assert [spec.name for spec in splits.specs] == ["image", "attributes"]
    assert splits.specs[1].shape == (18,) and splits.specs[1].names == CELEBA_ATTRIBUTES
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 4)
    assert int(splits.train.paired.sum()) == 8 and bool(splits.val.paired.all())
    image = splits.train.tensors["image"]
    assert image.dtype == torch.uint8 and image.shape == (16, 3, 64, 64)
    lines = (folder / "list_attr_celeba.txt").read_text().splitlines()
    first_test = lines[2 + 20].split()[1:]
    expected = [int(first_test[CELEBA_ALL_ATTRIBUTES.index(name)] == "1") for name in CELEBA_ATTRIBUTES]
    assert splits.test.tensors["attributes"][0].tolist() == expected
    batch = splits.test.batch(torch.arange(2))
    assert batch["attributes"].dtype == torch.float32 and batch["image"].shape == (2, 3, 64, 64)
    assert (folder / "cache_64.pt").is_file() and messages

    messages.clear()
    again = load_splits(
        DataConfig(name="celeba", root=str(tmp_path), train_size=5), seed=0, progress=messages.append
    )
    assert not messages, "the second load must come from the cache"
    assert len(again.train) == 5 and torch.equal(again.train.tensors["image"], image[:5])


def test_celeba_small_images_and_cache_rebuild(tmp_path):
    folder = write_celeba_fixture(tmp_path, n=6, size=(100, 120))
    config = DataConfig(name="celeba", root=str(tmp_path))
    assert load_splits(config, seed=0, progress=lambda m: None).val.tensors["image"].shape == (1, 3, 64, 64)
    write_celeba_fixture(tmp_path, n=12, size=(100, 120))
    messages = []
    assert len(load_splits(config, seed=0, progress=messages.append).train) == 8
    assert messages, "a changed listing must rebuild the cache"
    (folder / "img_align_celeba" / "000003.jpg").unlink()
    (folder / "cache_64.pt").unlink()
    with pytest.raises(UserError, match="000003.jpg"):
        load_splits(config, seed=0, progress=lambda m: None)


def test_celeba_missing(tmp_path):
    with pytest.raises(UserError, match="list_attr_celeba.txt"):
        load_splits(DataConfig(name="celeba", root=str(tmp_path)), seed=0)


# --- errors, fetch and checksums on fake files ---------------------------------------------------------


def test_unknown_dataset():
    with pytest.raises(UserError, match="celeba, fmnist, mnist, npz"):
        load_splits(DataConfig(name="cifar"), seed=0)
    with pytest.raises(UserError, match="unknown dataset"):
        fetch("cifar", Path("unused"))
    with pytest.raises(UserError, match="by hand"):
        fetch("celeba", Path("unused"))
    with pytest.raises(UserError, match="your own"):
        fetch("npz", Path("unused"))


def test_missing_data_folder(tmp_path):
    with pytest.raises(UserError, match=r"MNIST not found in .*mnist; run `dmvae data fetch mnist`"):
        load_splits(DataConfig(name="mnist", root=str(tmp_path)), seed=0)


def test_default_root(monkeypatch):
    monkeypatch.delenv("DMVAE_DATA", raising=False)
    assert default_root() == Path("data")
    monkeypatch.setenv("DMVAE_DATA", "/somewhere")
    assert default_root() == Path("/somewhere")


def _fake_files(folder: Path) -> dict[str, str]:
    """Four small files; returns their true checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for i, name in enumerate(IDX_NAMES):
        data = bytes([i]) * (100 + i)
        (folder / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def test_checksum_mismatch(tmp_path, monkeypatch):
    digests = _fake_files(tmp_path / "mnist")
    wrong = dict(digests, **{"t10k-labels-idx1-ubyte": "0" * 64})
    monkeypatch.setitem(fetch_module.CHECKSUMS, "mnist", wrong)
    with pytest.raises(
        UserError, match=r"t10k-labels-idx1-ubyte: expected sha256 0{64}, got [0-9a-f]{64}.*fetch"
    ):
        load_splits(DataConfig(name="mnist", root=str(tmp_path)), seed=0)


def test_verified_marker_detects_changed_files(tmp_path, monkeypatch):
    folder = tmp_path / "fmnist"
    monkeypatch.setitem(fetch_module.CHECKSUMS, "fmnist", _fake_files(folder))
    fetch_module.require_verified("fmnist", tmp_path)
    assert (folder / ".verified").is_file()
    with monkeypatch.context() as patch:
        patch.setattr(checksums, "sha256_file", _fail_hash)
        fetch_module.require_verified("fmnist", tmp_path)  # unchanged files: trusted from the marker
    target = folder / "train-images-idx3-ubyte"
    target.write_bytes(b"\x07" * 100)  # same size, new content
    os.utime(target, ns=(10**18, 10**18))  # and surely a new mtime
    with pytest.raises(UserError, match="checksum mismatch .*train-images-idx3-ubyte"):
        fetch_module.require_verified("fmnist", tmp_path)


def _fail_hash(path):
    raise AssertionError(f"{path} was hashed again although unchanged")


def test_fetch_from_debian_folder_is_idempotent(tmp_path, monkeypatch):
    source = tmp_path / "debian"
    digests = _fake_files(tmp_path / "plain")
    source.mkdir()
    for name in IDX_NAMES:
        (source / f"{name}.gz").write_bytes(gzip.compress((tmp_path / "plain" / name).read_bytes()))
    monkeypatch.setattr(sources, "DEBIAN_FMNIST", source)
    monkeypatch.setitem(fetch_module.CHECKSUMS, "fmnist", digests)
    monkeypatch.setitem(fetch_module.SOURCES, "fmnist", [sources.fmnist_from_debian])
    root = tmp_path / "data"
    messages = []
    folder = fetch("fmnist", root, progress=messages.append)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*IDX_NAMES, ".verified"])
    assert "verified" in messages[-1]
    messages.clear()
    fetch("fmnist", root, progress=messages.append)
    assert messages == [f"Fashion-MNIST is already present and verified in {folder}"]
    report = {entry["name"]: entry for entry in check(root)}
    assert report["fmnist"]["verified"] and not report["mnist"]["present"]
    assert report["celeba"]["present"] is False and "img_align_celeba" in report["celeba"]["detail"]


def test_fetch_reports_every_failed_source(tmp_path, monkeypatch):
    def broken(temp, progress):
        raise sources.SourceFailed("no network")

    def corrupt(temp, progress):
        files = {}
        for name in IDX_NAMES:
            (temp / name).write_bytes(b"junk")
            files[name] = temp / name
        return files

    monkeypatch.setitem(fetch_module.SOURCES, "mnist", [broken, corrupt])
    with pytest.raises(UserError, match="no network.*checksum mismatch"):
        fetch("mnist", tmp_path, progress=lambda m: None)
    assert not any(p.suffix == ".part" for p in (tmp_path / "mnist").iterdir())


# --- the real data -------------------------------------------------------------------------------------


def _real(name):
    root = default_root()
    if not all((root / name / file).is_file() for file in IDX_NAMES):
        pytest.skip(f"{name} not fetched in {root}; run `dmvae data fetch {name}` (the Makefile does)")
    return root


MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist():
    root = _real("mnist")
    splits = load_splits(DataConfig(name="mnist", root=str(root), paired_fraction=0.01), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50_000, 10_000, 10_000)
    assert splits.train.tensors["image"].shape == (50_000, 1, 28, 28)
    assert int(splits.train.paired.sum()) == 500 and splits.specs[1].names[3] == "3"
    all_train = torch.cat([splits.train.tensors["label"], splits.val.tensors["label"]])
    assert torch.bincount(all_train, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(splits.test.tensors["label"], minlength=10).tolist() == MNIST_TEST_COUNTS
    assert splits.train.batch(torch.arange(100))["image"].mean().item() == pytest.approx(0.13, abs=0.03)
    small = load_splits(DataConfig(name="mnist", root=str(root), train_size=1000), seed=0)
    assert len(small.train) == 1000 and len(small.val) == 10_000


def test_real_fmnist():
    root = _real("fmnist")
    splits = load_splits(DataConfig(name="fmnist", root=str(root)), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50_000, 10_000, 10_000)
    assert splits.specs[1].names[9] == "Ankle boot"
    all_train = torch.cat([splits.train.tensors["label"], splits.val.tensors["label"]])
    assert torch.bincount(all_train, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(splits.test.tensors["label"], minlength=10).tolist() == [1000] * 10
    assert all(entry["verified"] for entry in check(root) if entry["name"] == "fmnist")


# --- class-balanced paired subsets (issue 7, point 2c) ------------------------------------------------
def test_balanced_paired_mask_spreads_the_pairs_evenly_over_classes():
    from dmvae.data.types import balanced_paired_mask

    labels = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)[
        torch.randperm(1000, generator=torch.Generator().manual_seed(3))
    ]
    mask = balanced_paired_mask(labels, 0.02, seed=5)  # 20 pairs over 3 classes: 7, 7, 6 in some order
    assert int(mask.sum()) == 20
    assert sorted(torch.bincount(labels[mask], minlength=3).tolist()) == [6, 7, 7]
    assert torch.equal(mask, balanced_paired_mask(labels, 0.02, seed=5))  # seeded
    assert not torch.equal(mask, balanced_paired_mask(labels, 0.02, seed=6))
    rare = torch.tensor([0] * 98 + [1] * 2)  # a class with too few examples gives all it has
    assert torch.bincount(rare[balanced_paired_mask(rare, 0.1, seed=0)], minlength=2).tolist() == [5, 2]


def test_mnist_balanced_pairs_option(real_data_root):
    from dmvae.config import DataConfig
    from dmvae.data import load_splits

    root = str(real_data_root("mnist"))
    plain = load_splits(DataConfig(root=root, paired_fraction=0.002), seed=0, with_test=False)
    balanced = load_splits(
        DataConfig(root=root, paired_fraction=0.002, balanced_pairs=True), seed=0, with_test=False
    )
    counts = torch.bincount(balanced.train.tensors["label"][balanced.train.paired], minlength=10)
    assert counts.tolist() == [10] * 10  # 100 pairs of 50,000: ten per digit
    plain_counts = torch.bincount(plain.train.tensors["label"][plain.train.paired], minlength=10)
    assert int(plain_counts.sum()) == 100 and plain_counts.tolist() != [10] * 10  # the default is unchanged
