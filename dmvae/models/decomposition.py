"""The beta-TCVAE decomposition of a KL term (Eq. 2 and 5), estimated on one minibatch.

E_p(x) KL(q(z|x) || p(z)) = MI(x; z) + TC(z) + sum_k KL(q(z_k) || p(z_k)); the aggregate posterior q(z)
and its marginals q(z_k) are estimated from the minibatch with minibatch-weighted sampling (MWS) or
minibatch-stratified sampling (MSS) of Chen et al. (2018), both with the true dataset size N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class KLTerms:
    """mi, tc, dw: the estimates as they enter the loss (`weighted`).

    MWS divides each sum over the batch by N M where the batch, as a sample of the aggregate posterior,
    needs M: with K factors its MI is log N too high, its TC (K - 1) log N too high and its dimension-wise
    KL K log N too low. `log_shifts` holds the constants that undo this in what is logged (`logged`): exact
    where the batch's posteriors overlap (identical factorised posteriors give a logged MI and TC of 0);
    where they do not, the logged MI stays below log M and the TC keeps up to log(N / M). The shifts sum
    to 0, so the KL is unchanged; the loss is left as it was (its value and gradients: the MWS estimates)."""

    mi: Tensor
    tc: Tensor
    dw: Tensor
    log_shifts: tuple[float, float, float] = (0.0, 0.0, 0.0)  # added to mi, tc, dw when logged

    @property
    def total(self) -> Tensor:
        return self.mi + self.tc + self.dw

    def weighted(self, mi_weight: float, tc_weight: float, dw_weight: float) -> Tensor:
        return mi_weight * self.mi + tc_weight * self.tc + dw_weight * self.dw

    def logged(self) -> dict[str, Tensor]:
        """{"mi", "tc", "dw"}, free of the MWS offsets (see the class docstring)."""
        parts = (self.mi, self.tc, self.dw)
        return {
            name: part + shift if shift else part
            for name, part, shift in zip(("mi", "tc", "dw"), parts, self.log_shifts, strict=True)
        }


def stratified_log_weights(batch_size: int, dataset_size: int, device=None) -> Tensor:
    """log of the MSS importance weights [n, m] (Chen et al., 2018, Sec. C.2)."""
    m = batch_size - 1
    n = dataset_size
    weights = torch.full((batch_size, batch_size), 1.0 / m, device=device)
    weights.fill_diagonal_(1.0 / n)
    stratum = (n - m) / (n * m)
    rows = torch.arange(batch_size, device=device)
    weights[rows, (rows + 1) % batch_size] = stratum
    return weights.log()


def decompose_kl(
    log_q_factors: Tensor, log_prior: Tensor, dataset_size: int, estimator: str = "mws"
) -> KLTerms:
    """Estimate MI, TC and dimension-wise KL from per-factor log-densities.

    log_q_factors: [n, factor, m], log q(z_n,k | x_m) for the sample z_n of example n under the posterior
    of example m (a latent's `log_density_factors`); its n = m entries hold log q(z_n | x_n).
    log_prior: [n, factor], log p(z_n,k).
    """
    batch = log_q_factors.shape[0]
    dataset_size = max(dataset_size, batch)
    log_q_own = torch.diagonal(log_q_factors, dim1=0, dim2=2).sum(0)  # [n]
    log_q_pairs = log_q_factors.sum(1)  # [n, m]: log q(z_n | x_m) over all factors
    single_factor = log_q_factors.shape[1] == 1  # (a categorical z_s): q(z) is its own product, TC = 0
    if estimator == "mss" and batch > 1:
        log_w = stratified_log_weights(batch, dataset_size, log_q_factors.device)
        log_q_joint = torch.logsumexp(log_q_pairs + log_w, dim=-1)
        log_q_product = (
            log_q_joint if single_factor else torch.logsumexp(log_q_factors + log_w.unsqueeze(1), -1).sum(-1)
        )
        log_shifts = (0.0, 0.0, 0.0)
    else:
        log_norm = math.log(batch * dataset_size)
        log_q_joint = torch.logsumexp(log_q_pairs, dim=-1) - log_norm
        log_q_product = (
            log_q_joint if single_factor else (torch.logsumexp(log_q_factors, dim=-1) - log_norm).sum(-1)
        )
        factors = log_q_factors.shape[1]
        log_n = math.log(dataset_size)
        log_shifts = (-log_n, -(factors - 1) * log_n, factors * log_n)
    return KLTerms(
        mi=(log_q_own - log_q_joint).mean(),
        tc=(log_q_joint - log_q_product).mean(),
        dw=(log_q_product - log_prior.sum(-1)).mean(),
        log_shifts=log_shifts,
    )
