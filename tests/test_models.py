"""DMVAE and MVAE built from configs on synthetic data: losses, loss terms, gradient flow, short training."""

from __future__ import annotations

import math

import pytest
import torch

from dmvae.config import RunConfig
from dmvae.errors import UserError
from dmvae.models import DMVAE, MVAE, build_model
from dmvae.training import Trainer

MODELS = {
    "dmvae_gaussian": {"shared": "gaussian", "shared_dim": 4},
    "dmvae_categorical": {"shared": "categorical", "shared_dim": 10},
    "dmvae_binary": {"shared": "binary", "shared_dim": 6},
    "mvae": {"kind": "mvae", "shared": "gaussian", "shared_dim": 4, "private_dim": {}},
}


def make_config(names: tuple[str, ...], **model) -> RunConfig:
    private = {"image": 3, "attributes": 2} if model.get("kind", "dmvae") == "dmvae" else {}
    values = {
        "device": "cpu",
        "data": {"name": "npz", "path": "unused.npz"},
        "model": {"architecture": "mlp", "hidden_dim": 32,
                  "private_dim": {n: size for n, size in private.items() if n in names}} | model,
        "train": {"epochs": 1, "batch_size": 20, "lr": 3e-3, "checkpoint_every": 0},
        "eval": {"figures": False},
    }  # fmt: skip
    return RunConfig.from_dict(values)


def expected_terms(model, present: list[str]) -> set[str]:
    keys = {"loss"} | {f"recon_{name}" for name in present}
    sources = ["joint", *present] if len(present) > 1 else present
    if isinstance(model, MVAE):
        return keys | {f"kl_{source}" for source in sources}
    for name in present:
        if model.private[name].dim:
            keys |= {f"{part}_private_{name}" for part in ("mi", "tc", "dw")}
    return keys | {f"{part}_shared_{source}" for part in ("mi", "tc", "dw") for source in sources}


MODALITIES = {"two": ("image", "label"), "three": ("image", "label", "attributes")}


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "unpaired"])
@pytest.mark.parametrize("modalities", sorted(MODALITIES))
@pytest.mark.parametrize("case", sorted(MODELS))
def test_loss_terms_and_gradient_flow(case: str, modalities: str, paired: bool, synthetic_splits) -> None:
    names = MODALITIES[modalities]
    splits = synthetic_splits(names)
    config = make_config(names, **MODELS[case])
    torch.manual_seed(0)
    model = build_model(config, splits.specs)
    assert isinstance(model, MVAE if case == "mvae" else DMVAE)
    assert model.names == list(names)
    present = list(names) if paired else [names[0]]
    batch = splits.train.batch(torch.arange(16), present)
    loss, terms = model.loss(batch, dataset_size=len(splits.train))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(terms) == expected_terms(model, present)
    assert all(torch.isfinite(value) for value in terms.values())
    assert torch.equal(terms["loss"], loss)
    loss.backward()
    for name in names:
        for network in (model.encoders[name], model.decoders[name]):
            grads = [parameter.grad for parameter in network.parameters()]
            if name in present:
                assert all(grad is not None for grad in grads), f"{name} network without gradient"
                assert any(grad.abs().sum() > 0 for grad in grads), f"{name} network with zero gradient"
            else:
                assert all(grad is None for grad in grads), f"absent modality {name} got a gradient"


def test_shared_posterior_is_the_poe_over_present_modalities(synthetic_splits) -> None:
    names = MODALITIES["three"]
    splits = synthetic_splits(names)
    model = build_model(make_config(names, **MODELS["dmvae_gaussian"]), splits.specs)
    batch = splits.train.batch(torch.arange(5))
    encodings = {name: model.encode(name, batch[name]) for name in names}
    assert encodings["label"].private is None and encodings["image"].private.shape == (5, 6)
    joint = model.shared_posterior(encodings)
    expected = model.shared.product_of_experts([encodings[n].shared for n in names])
    torch.testing.assert_close(joint, expected)
    pair = model.shared_posterior(encodings, ["image", "attributes"])
    torch.testing.assert_close(
        pair, model.shared.product_of_experts([encodings["image"].shared, encodings["attributes"].shared])
    )
    assert not torch.allclose(pair, joint)


def test_kl_weight_scales_only_the_kl_part(synthetic_splits) -> None:
    splits = synthetic_splits()
    model = build_model(make_config(("image", "label"), **MODELS["mvae"]), splits.specs)
    batch = splits.train.batch(torch.arange(16))
    torch.manual_seed(0)
    full, terms = model.loss(batch, 64, kl_weight=1.0)
    torch.manual_seed(0)
    none, _ = model.loss(batch, 64, kl_weight=0.0)
    kl = terms["kl_joint"] + terms["kl_image"] + terms["kl_label"]
    torch.testing.assert_close(full - none, kl)


def test_three_modality_dmvae_trains(synthetic_splits) -> None:
    names = MODALITIES["three"]
    splits = synthetic_splits(names, n_train=200, paired_fraction=0.5)
    config = make_config(names, **MODELS["dmvae_categorical"])
    trainer = Trainer(config, splits=splits, progress=None)
    assert (trainer.source, trainer.target) == ("image", "label")
    losses = []
    for _ in range(4):  # 10 steps per epoch, each with an image-only and a paired part
        metrics = trainer.train_epoch()
        trainer.epoch += 1
        losses.append(metrics["train/loss"])
        assert "train/paired/recon_attributes" in metrics and "train/unpaired/recon_image" in metrics
        assert "train/unpaired/recon_label" not in metrics
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.9 * losses[0], losses
    scores = trainer.evaluate("val")
    assert 0 <= scores["accuracy"] <= 1


@pytest.mark.parametrize(
    "group", ["model.private_dim.audio=3", "objective.recon_weight.audio=2", "objective.beta_private.audio=2",
              "objective.beta_shared.audio=2"],
)  # fmt: skip
def test_build_model_rejects_unknown_modalities(group: str, synthetic_splits) -> None:
    splits = synthetic_splits()
    config = make_config(("image", "label")).with_overrides([group])
    with pytest.raises(UserError, match="audio"):
        build_model(config, splits.specs)


def test_build_model_rejects_unknown_architecture(synthetic_splits) -> None:
    config = make_config(("image", "label")).with_overrides(["model.architecture=resnet"])
    with pytest.raises(UserError, match="architecture"):
        build_model(config, synthetic_splits().specs)


def test_bf16_precision_runs_networks_in_bfloat16_and_keeps_the_loss_close(synthetic_splits) -> None:
    splits = synthetic_splits(n_train=64, paired_fraction=1.0)
    config = make_config(("image", "label"), shared="categorical", shared_dim=10)
    batch = splits.train.batch(torch.arange(32), ["image", "label"])
    losses = {}
    for precision in ("fp32", "bf16"):
        model = build_model(config, splits.specs)
        model.precision = precision  # the trainer sets it from train.precision
        if precision == "fp32":
            reference_state = model.state_dict()
        else:
            model.load_state_dict(reference_state)
        torch.manual_seed(1)
        losses[precision], _ = model.loss(batch, dataset_size=64)
        assert losses[precision].dtype == torch.float32
    assert torch.isfinite(losses["bf16"])
    assert losses["bf16"].item() == pytest.approx(losses["fp32"].item(), rel=0.02)
    assert losses["bf16"].item() != losses["fp32"].item()
