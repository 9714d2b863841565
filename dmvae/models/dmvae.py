"""DMVAE (Lee & Pavlovic, 2020): private latents per modality, one shared latent, the objective of Eq. 4
with every KL decomposed as in Eq. 5."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dmvae.models.base import MultimodalVAE
from dmvae.models.decomposition import KLTerms, decompose_kl


@dataclass(frozen=True)
class Eq4Term:
    """One term of Eq. 4: lambda_i E[log p(x_i | z_p_i, z_s)] - KL(z_p_i) - KL(z_s), z_s inferred from
    `members`. Each KL is MI + beta * TC + dimension-wise KL (Eq. 5), weighted by mi_weight and dw_weight."""

    target: str  # i, the modality reconstructed
    source: str  # "joint" (the PoE of all present modalities) or the one modality j that z_s comes from
    members: tuple[str, ...]
    recon_weight: float  # lambda_i
    private_beta: float | None  # TC weight of KL(q(z_p_i | x_i)); None when z_p_i has size 0
    shared_beta: float  # TC weight of KL(q(z_s | x_source))


class DMVAE(MultimodalVAE):
    def __init__(self, specs, model, objective, architecture):
        super().__init__(specs, model, objective, architecture)
        self.objective = objective
        self._terms: dict[tuple[str, ...], list[Eq4Term]] = {}  # eq4_terms per set of present modalities

    def shared_beta(self, members: tuple[str, ...]) -> float:
        """Eq. 5 ties beta to the posterior: q(z_s | x_j) takes modality j's beta_shared. The joint posterior
        (the PoE of several modalities) takes the mean of its members' betas, so with equal betas every
        shared KL has that one weight."""
        betas = [self.objective.beta_shared.get(name, 1.0) for name in members]
        return sum(betas) / len(betas)

    def eq4_terms(self, names: list[str]) -> list[Eq4Term]:
        """Eq. 4 for a batch whose examples have the modalities `names`: for each target i, the joint term
        and one term per source modality j (self for j = i, cross otherwise). With one modality present the
        joint posterior is that modality's, so there is the one self term."""
        if tuple(names) in self._terms:
            return self._terms[tuple(names)]
        o = self.objective
        terms = []
        for target in names:
            private_beta = o.beta_private.get(target, 1.0) if self.private[target].dim else None
            for source, members in self.shared_sources(names).items():
                members = tuple(members)
                terms.append(
                    Eq4Term(
                        target,
                        source,
                        members,
                        self.recon_weight[target],
                        private_beta,
                        self.shared_beta(members),
                    )  # fmt: skip
                )
        self._terms[tuple(names)] = terms
        return terms

    def _decomposed_kl(self, latent, params: Tensor, dataset_size: int) -> tuple[Tensor, KLTerms]:
        sample = latent.rsample(params)
        terms = decompose_kl(
            latent.log_density_factors(params, sample.point),
            latent.prior_log_density(sample.point),
            dataset_size,
            self.objective.estimator,
        )
        return sample.value, terms

    def loss(self, batch: dict[str, Tensor], dataset_size: int, kl_weight: float | Tensor = 1.0):
        """Negative Eq. 4 (summed over `eq4_terms`) for a batch whose examples all have the modalities in
        `batch`; one sample of each private latent and of z_s from each source serves every term."""
        o = self.objective
        names = [name for name in self.names if name in batch]
        encodings = {name: self.encode(name, batch[name]) for name in names}
        sources = self.shared_sources(names)

        z_private, private_kl = {}, {}
        for name in names:
            if encodings[name].private is not None:
                z_private[name], private_kl[name] = self._decomposed_kl(
                    self.private[name], encodings[name].private, dataset_size
                )
        z_shared, shared_kl = {}, {}
        for key, members in sources.items():
            params = self.shared_posterior(encodings, members)
            z_shared[key], shared_kl[key] = self._decomposed_kl(self.shared, params, dataset_size)

        # all decoder calls of one modality (one per source of z_s) in one batched call
        log_lik = {
            name: dict(
                zip(
                    z_shared,
                    self.source_log_likelihoods(
                        name, batch[name], z_private.get(name), list(z_shared.values())
                    ),
                    strict=True,
                )
            )
            for name in names
        }
        total = torch.zeros((), device=next(iter(batch.values())).device)
        for term in self.eq4_terms(names):
            kl = shared_kl[term.source].weighted(o.mi_weight, term.shared_beta, o.dw_weight)
            if term.private_beta is not None:
                kl = kl + private_kl[term.target].weighted(o.mi_weight, term.private_beta, o.dw_weight)
            total = total - (term.recon_weight * log_lik[term.target][term.source] - kl_weight * kl)

        terms: dict[str, Tensor] = {}
        for name in names:
            terms[f"recon_{name}"] = -torch.stack(list(log_lik[name].values())).mean()
            if name in private_kl:
                for part, value in private_kl[name].logged().items():
                    terms[f"{part}_private_{name}"] = value
        for key, kl in shared_kl.items():
            for part, value in kl.logged().items():
                terms[f"{part}_shared_{key}"] = value
        terms["loss"] = total
        return total, terms
