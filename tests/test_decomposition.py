"""The beta-TCVAE decomposition: MI + TC + DW is the KL estimate; TC on aggregates with a known answer."""

from __future__ import annotations

import math

import pytest
import torch

from dmvae.models.decomposition import KLTerms, decompose_kl, stratified_log_weights
from dmvae.models.latents import BinaryLatent, CategoricalLatent, GaussianLatent

LATENTS = {
    "gaussian": lambda: GaussianLatent(4),
    "categorical": lambda: CategoricalLatent(6, 0.66),
    "categorical_argmax": lambda: CategoricalLatent(6, 0.66, density="argmax"),
    "binary": lambda: BinaryLatent(5, 0.66),
}


@pytest.mark.parametrize("estimator", ["mws", "mss"])
@pytest.mark.parametrize("kind", sorted(LATENTS))
def test_parts_add_up_to_the_kl_estimate(kind: str, estimator: str) -> None:
    latent = LATENTS[kind]()
    generator = torch.Generator().manual_seed(1)
    params = 2 * torch.randn(32, latent.param_dim, generator=generator, dtype=torch.float64)
    torch.manual_seed(0)
    point = latent.rsample(params).point
    matrix = latent.log_density_matrix(params, point)
    prior = latent.prior_log_density(point)
    assert matrix.shape == (32, 32, latent.num_factors) and prior.shape == (32, latent.num_factors)
    terms = decompose_kl(matrix.transpose(1, 2), prior, dataset_size=1000, estimator=estimator)
    kl = (latent.log_density(params, point).sum(-1) - prior.sum(-1)).mean()
    torch.testing.assert_close(terms.total, kl, rtol=0, atol=1e-9)
    torch.testing.assert_close(terms.weighted(1.0, 1.0, 1.0), kl, rtol=0, atol=1e-9)
    torch.testing.assert_close(terms.weighted(2.0, 3.0, 0.5), 2 * terms.mi + 3 * terms.tc + 0.5 * terms.dw)
    if latent.num_factors == 1:  # one factor: the joint is its own product, so no total correlation
        assert abs(terms.tc.item()) < 1e-9


def aggregate_terms(rho: float, estimator: str, batch: int = 2000, seed: int = 0) -> KLTerms:
    """The terms estimated for q(z|x) = N(x, 0.1^2 I), x ~ N(0, [[1, rho], [rho, 1]]), dataset = the batch."""
    generator = torch.Generator().manual_seed(seed)
    scale = torch.linalg.cholesky(torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64))
    x = torch.randn(batch, 2, generator=generator, dtype=torch.float64) @ scale.T
    params = torch.cat([x, torch.full_like(x, math.log(0.01))], -1)
    z = x + 0.1 * torch.randn(batch, 2, generator=generator, dtype=torch.float64)
    latent = GaussianLatent(2)
    terms = decompose_kl(latent.log_density_factors(params, z), latent.prior_log_density(z), batch, estimator)
    return terms


def test_total_correlation_of_known_aggregates() -> None:
    """The aggregate is N(0, Sigma + 0.01 I); its TC is -0.5 log det(correlation matrix)."""
    batch = 2000
    correlation = 0.9 / 1.01
    closed_form = -0.5 * math.log(1 - correlation**2)  # 0.790
    mss_independent = aggregate_terms(0.0, "mss", batch).tc.item()
    mss_correlated = aggregate_terms(0.9, "mss", batch).tc.item()
    # observed: 0.069 (finite-batch bias of the minibatch aggregate) and 0.828
    assert abs(mss_independent) < 0.1
    assert abs(mss_correlated - closed_form) < 0.1
    assert mss_correlated - mss_independent > 0.6
    mws_independent = aggregate_terms(0.0, "mws", batch)
    mws_correlated = aggregate_terms(0.9, "mws", batch)
    # MWS (Chen et al.'s formula, 1/(N M)) underestimates log q(z) and each marginal by about log N where
    # the posteriors overlap: a TC offset of (factors - 1) * log N.
    # observed: 7.670 and 8.429, difference 0.759
    assert abs(mws_independent.tc.item() - math.log(batch)) < 0.2
    assert abs((mws_correlated.tc - mws_independent.tc).item() - closed_form) < 0.1
    # the logged TC drops that offset: about the MSS estimate
    assert abs(mws_independent.logged()["tc"].item()) < 0.1
    assert abs(mws_correlated.logged()["tc"].item() - closed_form) < 0.1


def identical_posteriors(factors: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log_q_factors and log_prior for a batch whose examples share one factorised Gaussian posterior: the
    aggregate is that posterior, so MI = 0 and TC = 0 exactly."""
    latent = GaussianLatent(factors)
    generator = torch.Generator().manual_seed(3)
    mean = 0.5 * torch.randn(1, factors, generator=generator, dtype=torch.float64)
    params = torch.cat([mean, torch.full_like(mean, math.log(0.3))], -1).expand(batch, -1)
    torch.manual_seed(0)
    point = latent.rsample(params).point
    return latent.log_density_factors(params, point), latent.prior_log_density(point)


@pytest.mark.parametrize("factors", [1, 4, 10])
def test_logged_mws_terms_are_free_of_the_normalisation_offsets(factors: int) -> None:
    batch, dataset = 100, 50_000
    log_q_factors, log_prior = identical_posteriors(factors, batch)
    terms = decompose_kl(log_q_factors, log_prior, dataset, "mws")
    # what enters the loss: MWS's 1/(N M) leaves MI log N and TC (K - 1) log N too high
    assert terms.mi.item() == pytest.approx(math.log(dataset), abs=1e-9)
    assert terms.tc.item() == pytest.approx((factors - 1) * math.log(dataset), abs=1e-9)
    logged = terms.logged()
    assert abs(logged["mi"].item()) < 1e-9 and abs(logged["tc"].item()) < 1e-9
    true_kl = (torch.diagonal(log_q_factors, dim1=0, dim2=2).sum(0) - log_prior.sum(-1)).mean()
    torch.testing.assert_close(logged["dw"], true_kl, rtol=0, atol=1e-9)  # all of the KL is dimension-wise
    torch.testing.assert_close(logged["mi"] + logged["tc"] + logged["dw"], terms.total, rtol=0, atol=1e-9)
    mss = decompose_kl(log_q_factors, log_prior, dataset, "mss")
    assert mss.log_shifts == (0.0, 0.0, 0.0)
    for part in ("mi", "tc", "dw"):
        torch.testing.assert_close(mss.logged()[part], getattr(mss, part), rtol=0, atol=0)


def test_the_loss_still_weighs_the_mws_estimates() -> None:
    """The shift is for the logs only: `weighted` (the loss) is the same function of the same estimates."""
    log_q_factors, log_prior = identical_posteriors(4, 50)
    log_q_factors.requires_grad_(True)
    terms = decompose_kl(log_q_factors, log_prior, 1000, "mws")
    loss = terms.weighted(0.5, 3.0, 1.5)
    expected = 0.5 * terms.mi + 3.0 * terms.tc + 1.5 * terms.dw
    assert loss.item() == expected.item()
    assert sum(terms.log_shifts) == pytest.approx(0.0, abs=1e-12)


def test_stratified_weights_follow_chen_et_al() -> None:
    batch, dataset = 6, 100
    m = batch - 1
    weights = stratified_log_weights(batch, dataset).exp()
    assert weights.shape == (batch, batch)
    torch.testing.assert_close(torch.diagonal(weights), torch.full((batch,), 1 / dataset))
    stratum = (dataset - m) / (dataset * m)
    for row in range(batch):
        torch.testing.assert_close(weights[row, (row + 1) % batch], torch.tensor(stratum))
        others = [col for col in range(batch) if col not in (row, (row + 1) % batch)]
        torch.testing.assert_close(weights[row, others], torch.full((batch - 2,), 1 / m))
    # each row is an importance-weighted estimate of an average over the N examples: weights sum to 1
    torch.testing.assert_close(weights.sum(1), torch.ones(batch))
    # when the batch is the whole data set, the stratum weight is 1 / (N (N - 1))
    whole = stratified_log_weights(batch, batch).exp()
    torch.testing.assert_close(whole[0, 1], torch.tensor(1 / (batch * m)))


def test_mss_with_the_whole_data_set_is_nearly_the_exact_aggregate() -> None:
    """With N = batch, MSS log q(z_n) is close to log (1/N) sum_m q(z_n | x_m), the true aggregate."""
    latent = GaussianLatent(3)
    params = torch.randn(50, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.manual_seed(0)
    point = latent.rsample(params).point
    matrix = latent.log_density_matrix(params, point)
    prior = latent.prior_log_density(point)
    terms = decompose_kl(matrix.transpose(1, 2), prior, 50, "mss")
    exact_joint = torch.logsumexp(matrix.sum(-1), 1) - math.log(50)
    exact_product = (torch.logsumexp(matrix, 1) - math.log(50)).sum(-1)
    own = torch.diagonal(matrix, dim1=0, dim2=1).sum(0)
    assert abs(terms.mi.item() - (own - exact_joint).mean().item()) < 0.05
    assert abs(terms.tc.item() - (exact_joint - exact_product).mean().item()) < 0.05
    # a batch of one falls back to MWS (no strata to weigh)
    single = decompose_kl(matrix[:1, :1].transpose(1, 2), prior[:1], 50, "mss")
    torch.testing.assert_close(single.total, own[0] - prior[0].sum())
