"""Per-class accuracy of cross-generated labels: the confusion matrix against a loop, a lost class named with
where its examples went, classes that the shared latent gives one code, and the final.json of a run and its
progress warnings."""

from __future__ import annotations

import pytest
import torch
from fixtures_training import tiny_config
from torch import nn

from dmvae.evaluation.metrics import class_accuracy, confusion_matrix, lost_classes, merged_classes
from dmvae.training import Trainer
from dmvae.training.callbacks import Progress


def test_confusion_matrix_and_class_accuracy_match_a_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    truths = torch.randint(0, 4, (300,), generator=generator)  # class 4 of 5 has no example
    predictions = torch.randint(0, 5, (300,), generator=generator)
    confusion = confusion_matrix(predictions, truths, 5)
    for true in range(5):
        for predicted in range(5):
            expected = sum(1 for t, p in zip(truths, predictions, strict=True) if (t, p) == (true, predicted))
            assert confusion[true, predicted] == expected
    accuracies = class_accuracy(confusion)
    assert accuracies[4] is None
    for k in range(4):
        assert accuracies[k] == round(float((predictions[truths == k] == k).double().mean()), 4)


def test_a_class_predicted_as_others_is_named_with_where_it_went() -> None:
    # class 1 (named "four"): 2 of 10 predicted as it, 7 as "nine", 1 as "zero"; classes 0 and 2 recovered
    truths = torch.tensor([0] * 5 + [1] * 10 + [2] * 4)
    predictions = torch.tensor([0] * 5 + [2] * 7 + [1] * 2 + [0] + [2, 2, 2, 1])
    confusion = confusion_matrix(predictions, truths, 3)
    assert lost_classes(confusion, ("zero", "four", "nine")) == [
        "class four: 20 % of its examples are predicted as it, 70 % to nine and 10 % to zero"
    ]
    assert lost_classes(confusion, below=0.8) == [
        "class 1: 20 % of its examples are predicted as it, 70 % to 2 and 10 % to 0",
        "class 2: 75 % of its examples are predicted as it, 25 % to 1",
    ]


def test_final_json_has_the_validation_accuracy_of_each_class(synthetic_splits) -> None:
    splits = synthetic_splits(n_eval=40)
    lines: list[str] = []
    trainer = Trainer(tiny_config(train={"epochs": 1}), splits=splits, progress=lines.append)
    final = trainer.fit()
    truths = splits.val.tensors["label"]
    counts = torch.bincount(truths, minlength=10)
    accuracies = final["val_class_accuracy"]
    assert len(accuracies) == 10
    weighted = sum(a * int(n) for a, n in zip(accuracies, counts, strict=True) if a is not None) / len(truths)
    assert abs(weighted - final["val_accuracy"]) < 1e-3
    lost = [k for k, a in enumerate(accuracies) if a is not None and a < 0.5]
    assert [line.split(":")[0] for line in final["val_lost_classes"]] == [f"class {k}" for k in lost]
    warned = [line for line in lines if line.startswith("warning: class")]
    assert len(warned) == len(lost)


def test_progress_warns_of_each_lost_class(synthetic_splits) -> None:
    lines: list[str] = []
    trainer = Trainer(tiny_config(train={"epochs": 1}), splits=synthetic_splits(), progress=None)
    final = {"val_lost_classes": ["class 4: 10 % of its examples are predicted as it, 80 % to 9"]}
    Progress(lines.append).on_fit_end(trainer, final)
    assert lines[0] == (
        "warning: class 4: 10 % of its examples are predicted as it, 80 % to 9 (validation; another seed or "
        "train.restarts may give it a category)"
    )


def one_hot_map(targets: list[int]) -> nn.Linear:
    """A linear map from a one-hot input k to logits that put 20 nats on class targets[k]."""
    layer = nn.Linear(len(targets), 10, bias=False)
    with torch.no_grad():
        layer.weight.copy_(20 * nn.functional.one_hot(torch.tensor(targets), 10).T.float())
    return layer


@pytest.mark.parametrize("protocol", ["mode", "expected"])
def test_classes_that_share_a_code_of_the_shared_latent_are_named(synthetic_splits, protocol) -> None:
    model = Trainer(tiny_config(), splits=synthetic_splits(), progress=None).model
    identity = list(range(10))
    model.encoders["label"], model.decoders["label"] = one_hot_map(identity), one_hot_map(identity)
    assert merged_classes(model, "label", protocol) == []
    # labels 2 and 4 both go to category 3, which decodes as 4; category 5 holds no label
    model.encoders["label"] = one_hot_map([0, 1, 3, 2, 3, 4, 6, 7, 8, 9])
    model.decoders["label"] = one_hot_map([0, 1, 3, 4, 5, 2, 6, 7, 8, 9])
    assert merged_classes(model, "label", protocol) == [
        "the shared latent gives classes 2 and 4 one code: z_s inferred from the label itself decodes as 4"
    ]
    model.encoders["label"] = one_hot_map([0, 1, 3, 2, 3, 3, 6, 7, 8, 9])  # and label 5 joins them
    assert merged_classes(model, "label", protocol) == [
        "the shared latent gives classes 2, 4 and 5 one code: z_s inferred from the label itself decodes as 4"
    ]
    assert merged_classes(model, "image", protocol) == []  # not a label


def test_final_json_and_progress_name_classes_that_share_a_code(synthetic_splits) -> None:
    lines: list[str] = []
    trainer = Trainer(tiny_config(train={"epochs": 1}), splits=synthetic_splits(), progress=lines.append)
    # fixed label networks (the optimizer holds the ones they replace) that give labels 2 and 4 one code
    trainer.model.encoders["label"] = one_hot_map([0, 1, 3, 2, 3, 4, 6, 7, 8, 9])
    trainer.model.decoders["label"] = one_hot_map([0, 1, 3, 4, 5, 2, 6, 7, 8, 9])
    final = trainer.fit()
    merged = (
        "the shared latent gives classes 2 and 4 one code: z_s inferred from the label itself decodes as 4"
    )
    assert final["val_merged_classes"] == [merged]
    assert [line for line in lines if "the shared latent gives" in line] == [
        f"warning: {merged} (no source can tell them apart; another seed or train.restarts may)"
    ]
