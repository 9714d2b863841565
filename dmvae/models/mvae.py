"""MVAE (Wu & Goodman, 2018): one shared Gaussian latent, PoE with the prior expert, and the sum of the
joint ELBO and each single-modality ELBO, with an annealed KL weight."""

from __future__ import annotations

from torch import Tensor

from dmvae.models.base import MultimodalVAE


class MVAE(MultimodalVAE):
    def __init__(self, specs, model, objective, architecture):
        super().__init__(specs, model, objective, architecture)
        self.objective = objective

    def loss(self, batch: dict[str, Tensor], dataset_size: int, kl_weight: float = 1.0):
        """Negative sum over sources s (all present modalities, each alone) of
        sum_{i in s} lambda_i E[log p(x_i | z)] - kl_weight * KL(q(z | x_s) || N(0, I)) (closed form)."""
        names = [name for name in self.names if name in batch]
        encodings = {name: self.encode(name, batch[name]) for name in names}
        sources = self.shared_sources(names)
        samples, kls = {}, {}
        for key, members in sources.items():
            params = self.shared_posterior(encodings, members)
            samples[key] = self.shared.rsample(params).value
            kls[key] = self.shared.analytic_kl(params).mean()

        total = kl_weight * sum(kls.values())
        terms: dict[str, Tensor] = {}
        for name in names:
            keys = [key for key, members in sources.items() if name in members]
            log_lik = self.source_log_likelihoods(name, batch[name], None, [samples[key] for key in keys])
            total = total - self.recon_weight[name] * log_lik.sum()
            terms[f"recon_{name}"] = -log_lik.mean()
        for key, kl in kls.items():
            terms[f"kl_{key}"] = kl
        terms["loss"] = total
        return total, terms
