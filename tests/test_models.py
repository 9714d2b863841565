"""DMVAE and MVAE built from configs on synthetic data: losses, loss terms, gradient flow, short training."""

from __future__ import annotations

import math

import pytest
import torch

from dmvae.config import RunConfig
from dmvae.data.types import ModalitySpec
from dmvae.errors import UserError
from dmvae.models import DMVAE, MVAE, build_model
from dmvae.models.base import resolve_recon_weights
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


FMNIST_SPECS = [ModalitySpec("image", "image", (1, 28, 28)), ModalitySpec("label", "label", (10,))]


def test_batch_norm_follows_each_convolution_of_the_fmnist_networks() -> None:
    config = make_config(("image", "label"), architecture="fmnist", private_dim={"image": 3})
    plain = build_model(config, FMNIST_SPECS)
    normed = build_model(config.with_overrides(["model.batch_norm=true"]), FMNIST_SPECS)

    def norms(network: torch.nn.Module) -> int:
        return sum(isinstance(layer, torch.nn.BatchNorm2d) for layer in network.modules())

    assert (norms(plain.encoders["image"]), norms(plain.decoders["image"])) == (0, 0)
    assert (norms(normed.encoders["image"]), norms(normed.decoders["image"])) == (4, 3)
    layers = list(normed.encoders["image"])
    assert [type(layer).__name__ for layer in layers[:3]] == ["Conv2d", "ReLU", "BatchNorm2d"]

    images = torch.rand(6, 1, 28, 28)
    encoder = normed.encoders["image"]
    encoder.train()
    for dropout in (layer for layer in layers if isinstance(layer, torch.nn.Dropout)):
        dropout.eval()  # so that only batch norm can make an example depend on its batch
    alone, together = encoder(images[:2]), encoder(images)[:2]
    assert not torch.allclose(alone, together, atol=1e-4)  # batch statistics while training
    assert float(layers[2].running_mean.abs().sum()) > 0
    encoder.eval()
    assert torch.allclose(encoder(images[:2]), encoder(images)[:2], atol=1e-5)  # running statistics


def test_batch_norm_is_refused_outside_the_fmnist_networks() -> None:
    config = make_config(("image", "label")).with_overrides(["model.batch_norm=true"])
    with pytest.raises(UserError, match="model.batch_norm applies to .* fmnist"):
        build_model(config, FMNIST_SPECS)
    with pytest.raises(UserError, match="model.batch_norm must be true or false"):
        make_config(("image", "label"), batch_norm="yes").validate()


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


# --- lambda: configured, or balanced to the modality sizes ---------------------------------------------


def test_default_recon_weights_balance_modality_sizes() -> None:
    label = ModalitySpec("label", "label", (10,))
    mnist = [ModalitySpec("image", "image", (1, 28, 28)), label]
    assert resolve_recon_weights(mnist, {}) == {"image": 1.0, "label": 78.4}
    assert resolve_recon_weights([ModalitySpec("image", "image", (784,)), label], {})["label"] == 78.4
    assert resolve_recon_weights(mnist, {"label": 50}) == {"image": 1.0, "label": 50.0}  # explicit wins
    assert resolve_recon_weights(mnist, {"image": 2.0}) == {"image": 2.0, "label": 78.4}
    celeba = [ModalitySpec("image", "image", (3, 64, 64)), ModalitySpec("attributes", "attributes", (18,))]
    assert resolve_recon_weights(celeba, {}) == {"image": 1.0, "attributes": pytest.approx(12288 / 18)}


@pytest.mark.parametrize("case", ["dmvae_categorical", "mvae"])
def test_the_models_weigh_an_unset_lambda_by_the_default(case: str, synthetic_splits) -> None:
    splits = synthetic_splits(n_train=64)
    batch = splits.train.batch(torch.arange(20), ["image", "label"])
    losses = {}
    for weights in ("{}", "{image: 1.0, label: 6.4}", "{label: 1.0}"):  # 8 x 8 pixels / 10 classes = 6.4
        config = make_config(("image", "label"), **MODELS[case])
        torch.manual_seed(0)
        model = build_model(config.with_overrides([f"objective.recon_weight={weights}"]), splits.specs)
        torch.manual_seed(1)
        losses[weights] = model.loss(batch, dataset_size=64)[0].item()
    assert model.recon_weight == {"image": 1.0, "label": 1.0}
    assert losses["{}"] == losses["{image: 1.0, label: 6.4}"] != losses["{label: 1.0}"]


# --- Eq. 4 as a list of terms ---------------------------------------------------------------------------


def test_eq4_has_a_joint_and_a_per_source_term_for_every_target(synthetic_splits) -> None:
    config = make_config(("image", "label", "attributes"), shared="gaussian", shared_dim=4)
    config = config.with_overrides(["objective.beta_shared={image: 2.0, label: 4.0, attributes: 9.0}"])
    model = build_model(config, synthetic_splits(("image", "label", "attributes")).specs)
    terms = model.eq4_terms(["image", "label", "attributes"])
    assert len(terms) == 3 * 4  # targets x (joint + one per source modality)
    assert {(t.target, t.source) for t in terms} == {
        (i, j) for i in ("image", "label", "attributes") for j in ("joint", "image", "label", "attributes")
    }
    beta = {t.source: t.shared_beta for t in terms}
    assert beta == {"image": 2.0, "label": 4.0, "attributes": 9.0, "joint": 5.0}  # Eq. 5: by posterior
    assert {t.target: t.private_beta for t in terms} == {"image": 1.0, "label": None, "attributes": 1.0}
    two = model.eq4_terms(["image", "label"])
    assert len(two) == 6 and {t.shared_beta for t in two if t.source == "joint"} == {3.0}
    (single,) = model.eq4_terms(["image"])  # an image-only batch: the one self term
    assert (single.target, single.source, single.members) == ("image", "image", ("image",))


def test_the_paired_loss_is_eq4_computed_by_hand(synthetic_splits) -> None:
    """The loss equals Eq. 4 written out term by term, each decoder called on its own source."""
    config = make_config(("image", "label"), shared="gaussian", shared_dim=4)
    config = config.with_overrides(
        ["objective.beta_shared={image: 3.0, label: 0.5}", "objective.beta_private={image: 2.0}",
         "objective.recon_weight={label: 7.0}", "objective.mi_weight=0.7", "objective.dw_weight=1.3"]
    )  # fmt: skip
    splits = synthetic_splits(n_train=64, paired_fraction=1.0)
    model = build_model(config, splits.specs)
    batch = splits.train.batch(torch.arange(24), ["image", "label"])
    torch.manual_seed(5)
    loss, _ = model.loss(batch, dataset_size=64)

    from dmvae.models.decomposition import decompose_kl

    def kl(latent, params, tc_weight):
        sample = latent.rsample(params)
        terms = decompose_kl(
            latent.log_density_factors(params, sample.point), latent.prior_log_density(sample.point), 64
        )
        return sample.value, 0.7 * terms.mi + tc_weight * terms.tc + 1.3 * terms.dw

    torch.manual_seed(5)
    enc = {name: model.encode(name, batch[name]) for name in ("image", "label")}
    z_p, kl_p = kl(model.private["image"], enc["image"].private, 2.0)
    z_s, kl_s = {}, {}
    for source, members, beta in (
        ("joint", ["image", "label"], 1.75),
        ("image", ["image"], 3.0),
        ("label", ["label"], 0.5),
    ):
        z_s[source], kl_s[source] = kl(model.shared, model.shared_posterior(enc, members), beta)
    expected = torch.zeros(())
    for source in ("joint", "image", "label"):
        image_ll = model.log_likelihood(
            "image", model.decode("image", z_p, z_s[source]), batch["image"]
        ).mean()
        label_ll = model.log_likelihood(
            "label", model.decode("label", None, z_s[source]), batch["label"]
        ).mean()
        expected += -(1.0 * image_ll - kl_p - kl_s[source])  # target image: private and shared KL
        expected += -(7.0 * label_ll - kl_s[source])  # target label: no private latent
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-4)


def test_swapping_beta_shared_between_modalities_changes_the_paired_loss(synthetic_splits) -> None:
    """Each shared KL takes the beta of the modality its posterior conditions on, so (1, 5) and (5, 1)
    are different objectives (weighting by the reconstructed modality made them the same): with the same
    draws they differ by 2 targets x 4 x (TC of z_s from the label - TC of z_s from the image)."""
    splits = synthetic_splits(n_train=64, paired_fraction=1.0)
    batch = splits.train.batch(torch.arange(32), ["image", "label"])
    results = []
    for betas in ("{image: 1.0, label: 5.0}", "{image: 5.0, label: 1.0}"):
        config = make_config(("image", "label"), shared="gaussian", shared_dim=4)
        torch.manual_seed(0)
        model = build_model(config.with_overrides([f"objective.beta_shared={betas}"]), splits.specs)
        with torch.no_grad():  # make q(z_s | label) far from q(z_s | image), so their TCs differ
            for parameter in model.encoders["label"].parameters():
                parameter.mul_(6)
        torch.manual_seed(1)
        loss, terms = model.loss(batch, dataset_size=64)
        results.append((loss.double(), terms["tc_shared_image"].double(), terms["tc_shared_label"].double()))
    (loss_a, tc_image, tc_label), (loss_b, *_) = results
    assert abs(tc_label - tc_image) > 1e-3
    torch.testing.assert_close(loss_a - loss_b, 8 * (tc_label - tc_image), rtol=1e-3, atol=2e-4)
