"""The npz recipe for a user's own paired data: shapes, the split and paired arrays, and every bad input."""

import numpy as np
import pytest
import torch

from dmvae.config import DataConfig
from dmvae.data import load_splits
from dmvae.errors import UserError

# --- npz ---------------------------------------------------------------------------------------------


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_round_trip_with_paired_and_split(tmp_path):
    n = 20
    rng = np.random.default_rng(0)
    image = rng.random((n, 1, 4, 4), dtype=np.float32)
    label = np.arange(n) % 4
    split = np.array([0] * 12 + [1] * 4 + [2] * 4)
    paired = np.arange(n) % 3 == 0
    path = _write_npz(tmp_path / "d.npz", image=image, label=label, split=split, paired=paired)
    splits = load_splits(
        DataConfig(name="npz", path=path, kinds={"image": "image", "label": "label"}), seed=0
    )
    assert [(s.name, s.kind, s.shape) for s in splits.specs] == [
        ("image", "image", (1, 4, 4)),
        ("label", "label", (4,)),
    ]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 4)
    assert splits.train.paired.tolist() == paired[:12].tolist()
    assert bool(splits.val.paired.all())
    assert torch.allclose(splits.test.batch(torch.arange(4))["image"], torch.from_numpy(image[16:]))
    assert splits.val.tensors["label"].tolist() == label[12:16].tolist()


def test_npz_grayscale_images_without_a_channel_axis(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 5, 4), dtype=np.uint8)
    split = np.array([0] * 12 + [1] * 4 + [2] * 4)
    path = _write_npz(tmp_path / "d.npz", image=image, label=np.arange(20) % 3, split=split)
    kinds = {"image": "image", "label": "label"}
    splits = load_splits(DataConfig(name="npz", path=path, kinds=kinds), seed=0)
    assert splits.specs[0].shape == (1, 5, 4)
    assert torch.equal(splits.train.tensors["image"], torch.from_numpy(image[:12]).unsqueeze(1))


def test_npz_default_split_and_paired(tmp_path):
    n = 50
    path = _write_npz(
        tmp_path / "d.npz",
        attrs=np.random.default_rng(0).integers(0, 2, (n, 5)),
        image=np.random.default_rng(1).integers(0, 256, (n, 12), dtype=np.uint8),
    )
    config = DataConfig(
        name="npz", path=path, kinds={"image": "image", "attrs": "attributes"}, paired_fraction=0.1
    )
    a, b = load_splits(config, seed=0), load_splits(config, seed=1)
    assert [s.name for s in a.specs] == ["image", "attrs"] and a.specs[0].shape == (12,)
    assert a.specs[1].shape == (5,)
    assert (len(a.train), len(a.val), len(a.test)) == (40, 5, 5)
    assert torch.equal(a.test.tensors["image"], b.test.tensors["image"]), (
        "the split must not depend on the seed"
    )
    assert int(a.train.paired.sum()) == 4
    assert a.train.batch(torch.arange(3))["attrs"].dtype == torch.float32


@pytest.mark.parametrize(
    ("arrays", "kinds", "message"),
    [
        ({"image": np.zeros((5, 3))}, {"image": "image", "label": "label"}, "no array 'label'"),
        (
            {"image": np.zeros((5, 3)), "label": np.zeros(4, int)},
            {"image": "image", "label": "label"},
            "first axis",
        ),
        ({"image": np.full((5, 3), 2.0)}, {"image": "image"}, r"\[0, 1\]"),
        ({"image": np.zeros((5, 1, 3, 2, 2))}, {"image": "image"}, r"image must be .*\[n, H, W\]"),
        ({"image": np.zeros(5)}, {"image": "image"}, r"got shape \[5\]"),
        (
            {"image": np.zeros((5, 3)), "label": -np.ones(5, int)},
            {"image": "image", "label": "label"},
            ">= 0",
        ),
        ({"image": np.zeros((5, 3)), "label": np.zeros(5)}, {"image": "image", "label": "label"}, "integers"),
        ({"image": np.zeros((5, 3)), "a": np.full((5, 2), 3)}, {"image": "image", "a": "attributes"}, "0/1"),
        ({"image": np.zeros((5, 3)), "split": np.array([0, 1, 2, 3, 0])}, {"image": "image"}, "'split'"),
        (
            {"image": np.zeros((5, 3)), "split": np.array([0, 0, 2, 2, 0])},
            {"image": "image"},
            "no example in val",
        ),
        ({"image": np.zeros((5, 3)), "paired": np.full(5, 2)}, {"image": "image"}, "'paired'"),
        ({"image": np.zeros((2, 3))}, {"image": "image"}, "at least 3"),
        ({"image": np.zeros((5, 3))}, {}, "data.kinds is empty"),
    ],
)
def test_npz_bad_inputs(tmp_path, arrays, kinds, message):
    path = _write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(UserError, match=message):
        load_splits(DataConfig(name="npz", path=path, kinds=kinds), seed=0)


def test_npz_missing_or_unreadable_file(tmp_path):
    kinds = {"image": "image"}
    with pytest.raises(UserError, match="does not exist"):
        load_splits(DataConfig(name="npz", path=str(tmp_path / "absent.npz"), kinds=kinds), seed=0)
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(UserError, match="cannot read"):
        load_splits(DataConfig(name="npz", path=str(tmp_path / "bad.npz"), kinds=kinds), seed=0)
