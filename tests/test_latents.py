"""Latent families: products of experts, Concrete densities, samples and the Gaussian KL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, RelaxedOneHotCategorical, kl_divergence
from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

from dmvae.models.latents import BinaryLatent, CategoricalLatent, GaussianLatent, make_shared_latent

T = 0.66


def gaussian_experts(count: int, batch: int, dim: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.cat([2 * torch.rand(batch, dim, generator=generator, dtype=torch.float64) - 1,
                   2 * torch.rand(batch, dim, generator=generator, dtype=torch.float64) - 1], -1)
        for _ in range(count)
    ]  # fmt: skip


# --- products of experts -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3])
def test_gaussian_poe_is_the_precision_weighted_closed_form(count: int) -> None:
    latent = GaussianLatent(4)
    experts = gaussian_experts(count, batch=6, dim=4, seed=count)
    mean, logvar = latent.split(latent.product_of_experts(experts))
    precision = torch.ones(6, 4, dtype=torch.float64)  # the prior expert N(0, I)
    weighted = torch.zeros(6, 4, dtype=torch.float64)
    for params in experts:
        mu, lv = params.chunk(2, -1)
        precision += 1 / lv.exp()
        weighted += mu / lv.exp()
    torch.testing.assert_close(logvar, -precision.log())
    torch.testing.assert_close(mean, weighted / precision)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_gaussian_poe_matches_a_numerical_product_of_densities(count: int) -> None:
    latent = GaussianLatent(1)
    grid = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    for seed in range(3):
        experts = [3 * params for params in gaussian_experts(count, batch=1, dim=1, seed=10 * count + seed)]
        log_density = Normal(0.0, 1.0).log_prob(grid)  # the prior expert
        for params in experts:
            mu, lv = params[0]
            log_density = log_density + Normal(mu, (0.5 * lv).exp()).log_prob(grid)
        weights = (log_density - log_density.max()).exp()
        weights = weights / weights.sum()
        numeric_mean = (weights * grid).sum()
        numeric_var = (weights * (grid - numeric_mean) ** 2).sum()
        mean, logvar = latent.split(latent.product_of_experts(experts))
        assert abs(mean.item() - numeric_mean.item()) < 1e-4
        assert abs(logvar.exp().item() - numeric_var.item()) < 1e-4


def test_categorical_poe_is_the_normalised_product_of_class_probabilities() -> None:
    latent = CategoricalLatent(5, T)
    generator = torch.Generator().manual_seed(0)
    experts = [3 * torch.randn(7, 5, generator=generator, dtype=torch.float64) for _ in range(3)]
    product = torch.ones(7, 5, dtype=torch.float64)
    for params in experts:
        product = product * params.softmax(-1)
    expected = product / product.sum(-1, keepdim=True)
    got = latent.product_of_experts(experts)
    torch.testing.assert_close(got.exp(), expected)
    torch.testing.assert_close(got.exp().sum(-1), torch.ones(7, dtype=torch.float64))
    shifted = [experts[0] + torch.randn(7, 1, generator=generator, dtype=torch.float64) * 10, *experts[1:]]
    torch.testing.assert_close(latent.product_of_experts(shifted), got)
    # one expert alone: its own class probabilities (the uniform prior expert changes nothing)
    torch.testing.assert_close(latent.product_of_experts(experts[:1]).exp(), experts[0].softmax(-1))


def test_binary_poe_is_the_normalised_product_of_bernoulli_probabilities() -> None:
    latent = BinaryLatent(4, T)
    generator = torch.Generator().manual_seed(0)
    experts = [2 * torch.randn(5, 4, generator=generator, dtype=torch.float64) for _ in range(3)]
    got = torch.sigmoid(latent.product_of_experts(experts))
    # brute force over the two values of each variable
    mass = {value: torch.ones(5, 4, dtype=torch.float64) for value in (0, 1)}
    for params in experts:
        p = torch.sigmoid(params)
        mass[1] = mass[1] * p
        mass[0] = mass[0] * (1 - p)
    torch.testing.assert_close(got, mass[1] / (mass[0] + mass[1]))


# --- Concrete densities --------------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 5, 10])
def test_categorical_density_is_the_exp_concrete_density_of_log_z(classes: int) -> None:
    latent = CategoricalLatent(classes, T)
    generator = torch.Generator().manual_seed(classes)
    params = 2 * torch.randn(50, classes, generator=generator, dtype=torch.float64)
    torch.manual_seed(classes)
    point = latent.rsample(params).point
    expected = ExpRelaxedCategorical(torch.tensor(T, dtype=torch.float64), logits=params).log_prob(point)
    got = latent.log_density(params, point)
    assert got.shape == (50, 1)
    torch.testing.assert_close(got.squeeze(-1), expected)
    # the matrix [sample n, posterior m] holds the same numbers
    matrix = latent.log_density_matrix(params, point)
    assert matrix.shape == (50, 50, 1)
    torch.testing.assert_close(torch.diagonal(matrix[..., 0]), expected)
    other = ExpRelaxedCategorical(torch.tensor(T, dtype=torch.float64), logits=params[3]).log_prob(point)
    torch.testing.assert_close(matrix[:, 3, 0], other)
    # the prior: the same density with uniform class probabilities
    uniform = torch.zeros(classes, dtype=torch.float64)
    prior = ExpRelaxedCategorical(torch.tensor(T, dtype=torch.float64), logits=uniform).log_prob(point)
    torch.testing.assert_close(latent.prior_log_density(point).squeeze(-1), prior)


def test_categorical_density_becomes_the_concrete_density_on_the_simplex_and_integrates_to_one() -> None:
    """Eq. 7 for n = 2: p(z) = p_log(log z) / (z_1 z_2); its integral over z_1 in (0, 1) is 1."""
    latent = CategoricalLatent(2, T)
    logits = torch.tensor([0.8, -0.4], dtype=torch.float64)
    # torch's RelaxedOneHotCategorical is the Concrete density of z on the simplex
    generator = torch.Generator().manual_seed(0)
    z1 = torch.rand(20, generator=generator, dtype=torch.float64) * 0.98 + 0.01
    z = torch.stack([z1, 1 - z1], -1)
    concrete = RelaxedOneHotCategorical(torch.tensor(T, dtype=torch.float64), logits=logits).log_prob(z)
    converted = latent.log_density(logits.expand(20, 2), z.log()).squeeze(-1) - z.log().sum(-1)
    torch.testing.assert_close(converted, concrete)
    # integrate over the logit y of z_1 (z_1 = sigmoid(y), dz_1 = z_1 z_2 dy): smooth, exponential tails
    y = torch.linspace(-80, 80, 160001, dtype=torch.float64)
    log_z = torch.stack([F.logsigmoid(y), F.logsigmoid(-y)], -1)
    log_p_z = latent.log_density(logits.expand(len(y), 2), log_z).squeeze(-1) - log_z.sum(-1)
    integrand = (log_p_z + log_z.sum(-1)).exp()
    assert abs(torch.trapezoid(integrand, y).item() - 1) < 1e-6
    # that logit is a binary Concrete variable with logit log(pi_1 / pi_2): BinaryLatent's density
    binary = BinaryLatent(1, T).log_density((logits[0] - logits[1]).expand(len(y), 1), y.unsqueeze(-1))
    torch.testing.assert_close(integrand.log(), binary.squeeze(-1))


def test_binary_density_is_the_logit_relaxed_bernoulli_density() -> None:
    latent = BinaryLatent(6, T)
    generator = torch.Generator().manual_seed(0)
    params = 2 * torch.randn(40, 6, generator=generator, dtype=torch.float64)
    torch.manual_seed(0)
    point = latent.rsample(params).point
    expected = LogitRelaxedBernoulli(torch.tensor(T, dtype=torch.float64), logits=params).log_prob(point)
    torch.testing.assert_close(latent.log_density(params, point), expected)
    matrix = latent.log_density_matrix(params, point)
    assert matrix.shape == (40, 40, 6)
    torch.testing.assert_close(torch.diagonal(matrix, dim1=0, dim2=1).T, expected)
    prior = LogitRelaxedBernoulli(torch.tensor(T, dtype=torch.float64), logits=torch.zeros_like(params))
    torch.testing.assert_close(latent.prior_log_density(point), prior.log_prob(point))
    y = torch.linspace(-80, 80, 160001, dtype=torch.float64)
    density = latent.log_density(params[0].expand(len(y), 6), y.unsqueeze(-1).expand(len(y), 6)).exp()
    torch.testing.assert_close(torch.trapezoid(density, y, dim=0), torch.ones(6, dtype=torch.float64))


def test_argmax_surrogates_are_the_pmf_at_the_argmax() -> None:
    generator = torch.Generator().manual_seed(0)
    params = 2 * torch.randn(30, 6, generator=generator)
    categorical = CategoricalLatent(6, T, density="argmax")
    torch.manual_seed(0)
    point = categorical.rsample(params).point
    expected = F.log_softmax(params, -1).gather(-1, point.argmax(-1, keepdim=True))
    torch.testing.assert_close(categorical.log_density(params, point), expected)
    matrix = categorical.log_density_matrix(params, point)
    torch.testing.assert_close(matrix[:, 4], F.log_softmax(params[4], -1)[point.argmax(-1)].unsqueeze(-1))
    torch.testing.assert_close(categorical.prior_log_density(point), torch.full((30, 1), -math.log(6)))
    binary = BinaryLatent(6, T, density="argmax")
    point = binary.rsample(params).point
    expected = torch.where(point > 0, F.logsigmoid(params), F.logsigmoid(-params))
    torch.testing.assert_close(binary.log_density(params, point), expected)


# --- samples -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "binary"])
def test_samples_have_the_right_shape_and_are_reproducible(kind: str) -> None:
    latent = make_shared_latent(kind, 5, T)
    params = torch.randn(8, latent.param_dim, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    first = latent.rsample(params)
    torch.manual_seed(3)
    second = latent.rsample(params)
    third = latent.rsample(params)
    assert first.value.shape == first.point.shape == (8, 5)
    assert torch.equal(first.value, second.value) and torch.equal(first.point, second.point)
    assert not torch.equal(second.value, third.value)
    assert latent.mode(params).shape == (8, 5)
    assert latent.prior_sample(4).shape == (4, 5)
    if kind == "gaussian":
        assert torch.equal(first.value, first.point)
        assert torch.equal(latent.mode(params), params[:, :5])
    elif kind == "categorical":
        assert (first.value >= 0).all()
        torch.testing.assert_close(first.value.sum(-1), torch.ones(8))
        torch.testing.assert_close(first.point, first.value.log())
        mode = latent.mode(params)
        assert torch.equal(mode.sum(-1), torch.ones(8)) and set(mode.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(mode.argmax(-1), params.argmax(-1))
    else:
        assert ((first.value > 0) & (first.value < 1)).all()
        torch.testing.assert_close(first.value, torch.sigmoid(first.point))
        assert torch.equal(latent.mode(params), (params > 0).float())


def test_concrete_samples_follow_the_class_probabilities_and_sharpen_at_low_temperature() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    params = probs.log().expand(40000, 4)
    torch.manual_seed(0)
    sample = CategoricalLatent(4, T).rsample(params).value
    frequencies = torch.bincount(sample.argmax(-1), minlength=4).float() / 40000  # Gumbel-max: exact
    torch.testing.assert_close(frequencies, probs, atol=0.01, rtol=0)
    cold = CategoricalLatent(4, 0.05).rsample(params).value
    assert cold.max(-1).values.mean() > 0.95 > sample.max(-1).values.mean()
    torch.manual_seed(0)
    binary = BinaryLatent(1, T).rsample(torch.full((40000, 1), math.log(0.3 / 0.7))).value
    assert abs((binary > 0.5).float().mean().item() - 0.3) < 0.01


def test_gaussian_analytic_kl_matches_torch() -> None:
    latent = GaussianLatent(3)
    params = torch.randn(10, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, logvar = params.chunk(2, -1)
    expected = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(latent.analytic_kl(params), expected)
    assert latent.analytic_kl(torch.zeros(2, 6)).abs().max() == 0
