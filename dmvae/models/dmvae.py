"""DMVAE (Lee & Pavlovic, 2020): private latents per modality, one shared latent, the objective of Eq. 4
with every KL decomposed as in Eq. 5."""

from __future__ import annotations

import torch
from torch import Tensor

from dmvae.models.base import MultimodalVAE
from dmvae.models.decomposition import KLTerms, decompose_kl


class DMVAE(MultimodalVAE):
    def __init__(self, specs, model, objective, architecture):
        super().__init__(specs, model, objective, architecture)
        self.objective = objective

    def _decomposed_kl(self, latent, params: Tensor, dataset_size: int) -> tuple[Tensor, KLTerms]:
        sample = latent.rsample(params)
        terms = decompose_kl(
            latent.log_density_factors(params, sample.point),
            latent.prior_log_density(sample.point),
            dataset_size,
            self.objective.estimator,
        )
        return sample.value, terms

    def loss(self, batch: dict[str, Tensor], dataset_size: int, kl_weight: float = 1.0):
        """Negative Eq. 4 for a batch whose examples all have the modalities in `batch`.

        For each present modality i and each source s of z_s (the PoE of all present modalities, and each
        present modality j alone): lambda_i E[log p(x_i | z_p_i, z_s)] - KL(z_p_i) - KL(z_s), each KL as
        mi_weight * MI + beta_i * TC + dw_weight * dimension-wise KL. With one modality present the PoE
        source is that modality, so the batch has the one self term."""
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

        total = torch.zeros((), device=next(iter(batch.values())).device)
        terms: dict[str, Tensor] = {}
        for name in names:
            log_lik = self.source_log_likelihoods(
                name, batch[name], z_private.get(name), list(z_shared.values())
            )
            beta_shared = o.beta_shared.get(name, 1.0)
            private = (
                private_kl[name].weighted(o.mi_weight, o.beta_private.get(name, 1.0), o.dw_weight)
                if name in private_kl
                else 0.0
            )
            for key, source_log_lik in zip(z_shared, log_lik, strict=True):
                shared = shared_kl[key].weighted(o.mi_weight, beta_shared, o.dw_weight)
                total = total - (
                    o.recon_weight.get(name, 1.0) * source_log_lik - kl_weight * (private + shared)
                )
            terms[f"recon_{name}"] = -log_lik.mean()
            if name in private_kl:
                for part in ("mi", "tc", "dw"):
                    terms[f"{part}_private_{name}"] = getattr(private_kl[name], part)
        for key, kl in shared_kl.items():
            for part in ("mi", "tc", "dw"):
                terms[f"{part}_shared_{key}"] = getattr(kl, part)
        terms["loss"] = total
        return total, terms
