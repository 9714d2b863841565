"""Evaluation protocols (eval.protocol): the `expected` predictive against a brute-force sum over the
categories, a digit that only the predictive recovers, and evaluation that repeats itself and leaves the
training run's random stream where it was."""

from __future__ import annotations

import pytest
import torch
from fixtures_training import tiny_config, without_timing

from dmvae.config import RunConfig
from dmvae.errors import UserError
from dmvae.evaluation.metrics import evaluate_cross_generation
from dmvae.models import build_model
from dmvae.training import Trainer


def _model(synthetic_splits, temperature: float):
    splits = synthetic_splits(n_eval=64)
    config = tiny_config(model=tiny_config().model.to_dict() | {"temperature": temperature})
    torch.manual_seed(0)
    return build_model(config, splits.specs).eval(), splits


def test_expected_is_the_predictive_summed_over_the_categories(synthetic_splits) -> None:
    # As T -> 0 a Concrete sample is the one-hot vertex k with probability pi_k, so the average over relaxed
    # samples of p(y | z_s) tends to sum_k pi_k p(y | e_k), which is computed here category by category.
    model, splits = _model(synthetic_splits, temperature=0.02)
    images = splits.val.batch(torch.arange(len(splits.val)), ["image"])["image"]
    with torch.no_grad():
        pi = model.shared_posterior({"image": model.encode("image", images)}).softmax(-1)
        per_vertex = model.decode("label", None, torch.eye(10)).softmax(-1)  # [category, class]
        brute_force = pi @ per_vertex
        torch.manual_seed(1)
        predictive = model.cross_generate({"image": images}, "label", "expected", samples=4000).exp()
    assert torch.allclose(predictive.sum(-1), torch.ones(len(images)), atol=1e-5)
    assert (predictive - brute_force).abs().max() < 0.03
    with torch.no_grad():
        mode = model.cross_generate({"image": images}, "label", "mode")
    assert torch.equal(mode.argmax(-1), per_vertex[pi.argmax(-1)].argmax(-1))


def test_a_class_between_two_categories_is_found_only_by_the_predictive() -> None:
    # Two categories, equally likely under q(z_s | x); the label decoder gives (0.6, 0.4, 0) at vertex 0 and
    # (0, 0.4, 0.6) at vertex 1. The predictive is (0.3, 0.4, 0.3): class 1, which no vertex predicts.
    class Model:
        specs = {"label": type("Spec", (), {"kind": "label"})()}

    from dmvae.models.base import MultimodalVAE
    from dmvae.models.latents import CategoricalLatent

    table = torch.tensor([[0.6, 0.4, 1e-9], [1e-9, 0.4, 0.6]]).log()
    model = Model()
    model.shared = CategoricalLatent(2, temperature=0.01)
    model.private = {"label": type("Private", (), {"dim": 0})()}
    model.encode = lambda name, x: x
    model.shared_posterior = lambda encodings: torch.zeros(len(encodings["image"]), 2)
    model.decode = lambda name, z_private, z_shared: z_shared @ table  # the vertices' logits, linearly mixed
    model.mean_output = lambda name, logits: MultimodalVAE.mean_output(model, name, logits)
    x = {"image": torch.zeros(5, 1)}
    torch.manual_seed(0)
    expected = MultimodalVAE.cross_generate.__wrapped__(model, x, "label", "expected", 2000)
    assert expected.argmax(-1).tolist() == [1] * 5
    assert torch.allclose(expected.exp(), torch.tensor([0.3, 0.4, 0.3]).expand(5, 3), atol=0.04)
    mode = MultimodalVAE.cross_generate.__wrapped__(model, x, "label", "mode", 1)
    assert set(mode.argmax(-1).tolist()) <= {0, 2}


@pytest.mark.parametrize("protocol", ["expected", "sampled", "mode"])
def test_evaluation_repeats_itself_and_leaves_the_random_stream_alone(synthetic_splits, protocol) -> None:
    model, splits = _model(synthetic_splits, temperature=0.66)
    state = torch.get_rng_state()
    first = evaluate_cross_generation(model, splits.val, "image", "label", protocol, samples=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert evaluate_cross_generation(model, splits.val, "image", "label", protocol, samples=8) == first


def test_the_protocol_changes_what_is_scored_not_how_the_run_trains(synthetic_splits) -> None:
    histories = {}
    for protocol in ("mode", "expected"):
        config = tiny_config(eval={"figures": False, "protocol": protocol, "samples": 4})
        trainer = Trainer(config, splits=synthetic_splits(), progress=None)
        trainer.fit()
        histories[protocol] = [
            {k: v for k, v in m.items() if k.startswith("train/")} for m in without_timing(trainer.history)
        ]
    assert histories["mode"] == histories["expected"]


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"protocol": "mean"}, "eval.protocol must be one of expected, mode, sampled"),
        ({"samples": 0}, "eval.samples must be a whole number >= 1, got 0"),
    ],
)
def test_bad_protocol_settings_are_one_line_errors(setting, message) -> None:
    values = tiny_config().to_dict()
    values["eval"] |= setting
    with pytest.raises(UserError, match=message):
        RunConfig.from_dict(values)
