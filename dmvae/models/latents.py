"""Latent families of DMVAE: posteriors, product of experts (Eq. 3, 8), samples and log-densities.

Every family exposes its log-densities *per factor* for every (sample n, posterior m) pair, which is what
the beta-TCVAE estimators of Eq. 2 need. Factors are the units of the total correlation: each dimension
of a Gaussian, each binary variable, the one categorical variable. `log_density_factors` lays them out as
[n, factor, m]: the posterior index innermost, so the reductions over m and over factors run over
contiguous memory (the layout that compiled kernels vectorise); `log_density_matrix` is its [n, m, factor]
view.

Concrete samples are drawn and scored in log space (log z, or the logit of a binary z): the change of
variables from z adds the same Jacobian term to log q(z|x), log q(z) and log p(z), so every KL estimate
(a difference of these at one sample) is unchanged, and log space does not underflow at low temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Sample:
    value: Tensor  # what the decoder sees
    point: Tensor  # where densities are evaluated (log z for Concrete, the logit for binary Concrete)


class GaussianLatent:
    """Diagonal Gaussian with an N(0, I) prior; parameters are (mean, log-variance) concatenated."""

    kind = "gaussian"

    def __init__(self, dim: int):
        self.dim = dim
        self.param_dim = 2 * dim
        self.num_factors = dim

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = params.chunk(2, dim=-1)
        return mean, logvar.clamp(-12.0, 8.0)

    def product_of_experts(self, experts: list[Tensor]) -> Tensor:
        """Eq. 3 in closed form with the prior expert N(0, I): precisions add, means weighted by them."""
        precision = torch.ones_like(experts[0][..., : self.dim])
        weighted_mean = torch.zeros_like(precision)
        for params in experts:
            mean, logvar = self.split(params)
            expert_precision = torch.exp(-logvar)
            precision = precision + expert_precision
            weighted_mean = weighted_mean + mean * expert_precision
        return torch.cat([weighted_mean / precision, -torch.log(precision)], dim=-1)

    def rsample(self, params: Tensor) -> Sample:
        mean, logvar = self.split(params)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        return Sample(z, z)

    def mode(self, params: Tensor) -> Tensor:
        return self.split(params)[0]

    def log_density_factors(self, params: Tensor, point: Tensor) -> Tensor:
        """[n, factor, m]: log N(z_n,k | mean_m,k, var_m,k)."""
        mean, logvar = self.split(params)
        mean, logvar = mean.t(), logvar.t()
        diff = point.unsqueeze(-1) - mean
        return -0.5 * (math.log(2 * math.pi) + logvar + diff * diff * torch.exp(-logvar))

    def log_density_matrix(self, params: Tensor, point: Tensor) -> Tensor:
        return self.log_density_factors(params, point).transpose(1, 2)

    def log_density(self, params: Tensor, point: Tensor) -> Tensor:
        """[n, factor]: log q(z_n | x_n)."""
        mean, logvar = self.split(params)
        return -0.5 * (math.log(2 * math.pi) + logvar + (point - mean) ** 2 * torch.exp(-logvar))

    def prior_log_density(self, point: Tensor) -> Tensor:
        return -0.5 * (math.log(2 * math.pi) + point**2)

    def prior_sample(self, n: int, device=None) -> Tensor:
        return torch.randn(n, self.dim, device=device)

    def analytic_kl(self, params: Tensor) -> Tensor:
        """[n]: KL(N(mean, var) || N(0, I)) in closed form."""
        mean, logvar = self.split(params)
        return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).sum(-1)


class CategoricalLatent:
    """One categorical variable of n classes relaxed as Concrete(pi, T) (Eq. 6, 7); uniform prior."""

    kind = "categorical"
    num_factors = 1

    def __init__(self, dim: int, temperature: float, density: str = "exact"):
        self.dim = dim
        self.param_dim = dim
        self.temperature = temperature
        self.density = density  # "exact" Concrete density, or "argmax": the categorical pmf at argmax z

    def product_of_experts(self, experts: list[Tensor]) -> Tensor:
        """Eq. 8: the normalised product of class probabilities (the uniform prior expert is a no-op)."""
        return torch.log_softmax(sum(F.log_softmax(params, dim=-1) for params in experts), dim=-1)

    def rsample(self, params: Tensor) -> Sample:
        uniform = torch.rand_like(params).clamp(1e-10, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(uniform))
        log_z = F.log_softmax((F.log_softmax(params, -1) + gumbel) / self.temperature, dim=-1)
        return Sample(log_z.exp(), log_z)

    def mode(self, params: Tensor) -> Tensor:
        return F.one_hot(params.argmax(-1), self.dim).to(params.dtype)

    def _log_density(self, log_probs: Tensor, log_z: Tensor) -> Tensor:
        if self.density == "argmax":
            index = log_z.argmax(-1, keepdim=True).expand(
                *torch.broadcast_shapes(log_z.shape[:-1], log_probs.shape[:-1]), 1
            )
            return torch.gather(log_probs.expand(*index.shape[:-1], self.dim), -1, index)
        # Density of log z under ExpConcrete(pi, T): Eq. 7 up to the Jacobian of z -> log z.
        n, t = self.dim, self.temperature
        scores = log_probs - t * log_z
        return (
            math.lgamma(n) + (n - 1) * math.log(t) + scores.sum(-1) - n * torch.logsumexp(scores, -1)
        ).unsqueeze(-1)

    def log_density_factors(self, params: Tensor, point: Tensor) -> Tensor:
        """[n, 1, m]: the density of sample n's log z under posterior m (the classes reduced outside the
        innermost dimension)."""
        log_probs = F.log_softmax(params, -1)
        if self.density == "argmax":
            return log_probs.t()[point.argmax(-1)].unsqueeze(1)
        n, t = self.dim, self.temperature
        scores = log_probs.t() - t * point.unsqueeze(-1)  # [n, class, m]
        summed = log_probs.sum(-1) - t * point.sum(-1, keepdim=True)  # sum over classes of the scores
        constant = math.lgamma(n) + (n - 1) * math.log(t)
        return (constant + summed - n * torch.logsumexp(scores, dim=1)).unsqueeze(1)

    def log_density_matrix(self, params: Tensor, point: Tensor) -> Tensor:
        return self.log_density_factors(params, point).transpose(1, 2)

    def log_density(self, params: Tensor, point: Tensor) -> Tensor:
        return self._log_density(F.log_softmax(params, -1), point)

    def prior_log_density(self, point: Tensor) -> Tensor:
        uniform = torch.full((self.dim,), -math.log(self.dim), device=point.device, dtype=point.dtype)
        return self._log_density(uniform, point)

    def prior_sample(self, n: int, device=None) -> Tensor:
        return self.rsample(torch.zeros(n, self.dim, device=device)).value


class BinaryLatent:
    """K independent binary variables, each relaxed as a binary Concrete at temperature T; prior p = 1/2."""

    kind = "binary"

    def __init__(self, dim: int, temperature: float, density: str = "exact"):
        self.dim = dim
        self.param_dim = dim
        self.num_factors = dim
        self.temperature = temperature
        self.density = density

    def product_of_experts(self, experts: list[Tensor]) -> Tensor:
        """Normalised product of Bernoulli experts: logits add (the uniform prior expert is a no-op)."""
        return sum(experts)

    def rsample(self, params: Tensor) -> Sample:
        u = torch.rand_like(params).clamp(1e-6, 1 - 1e-6)
        logit = (params + torch.log(u) - torch.log1p(-u)) / self.temperature
        return Sample(torch.sigmoid(logit), logit)

    def mode(self, params: Tensor) -> Tensor:
        return (params > 0).to(params.dtype)

    def _log_density(self, logits: Tensor, point: Tensor) -> Tensor:
        if self.density == "argmax":
            return -F.softplus(torch.where(point > 0, -logits, logits))
        # Density of the logit of a binary Concrete sample (Maddison et al., 2017).
        diff = logits - self.temperature * point
        return math.log(self.temperature) + diff - 2 * F.softplus(diff)

    def log_density_factors(self, params: Tensor, point: Tensor) -> Tensor:
        """[n, factor, m]."""
        return self._log_density(params.t(), point.unsqueeze(-1))

    def log_density_matrix(self, params: Tensor, point: Tensor) -> Tensor:
        return self.log_density_factors(params, point).transpose(1, 2)

    def log_density(self, params: Tensor, point: Tensor) -> Tensor:
        return self._log_density(params, point)

    def prior_log_density(self, point: Tensor) -> Tensor:
        return self._log_density(torch.zeros_like(point), point)

    def prior_sample(self, n: int, device=None) -> Tensor:
        return self.rsample(torch.zeros(n, self.dim, device=device)).value


def make_shared_latent(kind: str, dim: int, temperature: float, density: str = "exact"):
    if kind == "gaussian":
        return GaussianLatent(dim)
    if kind == "categorical":
        return CategoricalLatent(dim, temperature, density)
    if kind == "binary":
        return BinaryLatent(dim, temperature, density)
    raise ValueError(f"unknown shared latent kind {kind!r}")
