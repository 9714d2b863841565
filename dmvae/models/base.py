"""What DMVAE and MVAE share: per-modality encoders and decoders, private and shared latents, PoE inference.

Subclasses define `loss(batch, dataset_size, kl_weight)`; everything else (inference with any subset of
modalities, cross-generation, sampling) lives here so both models are evaluated the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmvae.config import ModelConfig, ObjectiveConfig
from dmvae.data.types import ModalitySpec
from dmvae.models.latents import GaussianLatent, make_shared_latent
from dmvae.models.networks import build_decoder, build_encoder


def modality_size(spec: ModalitySpec) -> int:
    """The number of values a modality's decoder predicts, each one log-likelihood term: an image's pixels
    (C x H x W, or D), a label's classes (its one-hot), the attributes."""
    return math.prod(spec.shape)


def resolve_recon_weights(specs: list[ModalitySpec], configured: dict[str, float]) -> dict[str, float]:
    """lambda_i of Eq. 4 for every modality: the configured `objective.recon_weight.<i>` when there is one,
    else (size of the largest modality) / (size of modality i), so that a small modality's log-likelihood is
    not drowned by a large one's. MNIST: image 784 / 784 = 1, label 784 / 10 = 78.4."""
    largest = max(modality_size(spec) for spec in specs)
    return {
        spec.name: float(configured[spec.name]) if spec.name in configured else largest / modality_size(spec)
        for spec in specs
    }


@dataclass
class Encoding:
    private: Tensor | None  # Gaussian (mean, log-variance) of z_p, or None when the private latent has size 0
    shared: Tensor  # this modality's expert for z_s


class MultimodalVAE(nn.Module):
    def __init__(
        self, specs: list[ModalitySpec], model: ModelConfig, objective: ObjectiveConfig, architecture: str
    ):
        super().__init__()
        if len(specs) < 2:
            raise ValueError("a multimodal VAE needs at least two modalities")
        self.architecture = architecture
        self.precision = "fp32"  # set by the trainer from train.precision
        self.specs = {spec.name: spec for spec in specs}
        self.names = [spec.name for spec in specs]
        self.recon_weight = resolve_recon_weights(specs, objective.recon_weight)
        self.shared = make_shared_latent(
            model.shared, model.shared_dim, model.temperature, objective.concrete_density
        )
        self.private = {name: GaussianLatent(model.private_dim.get(name, 0)) for name in self.names}
        self.encoders = nn.ModuleDict(
            {
                name: build_encoder(
                    architecture,
                    self.specs[name],
                    self.private[name].param_dim + self.shared.param_dim,
                    model.hidden_dim,
                    model.batch_norm,
                )
                for name in self.names
            }
        )
        self.decoders = nn.ModuleDict(
            {
                name: build_decoder(
                    architecture,
                    self.specs[name],
                    self.private[name].dim + self.shared.dim,
                    model.hidden_dim,
                    model.batch_norm,
                )
                for name in self.names
            }
        )

    # --- inference -----------------------------------------------------------------------------------------
    def encoder_input(self, name: str, x: Tensor) -> Tensor:
        spec = self.specs[name]
        if spec.kind == "label":
            return F.one_hot(x, spec.shape[0]).float()
        return x

    def _network(self, network: nn.Module, x: Tensor) -> Tensor:
        """Run an encoder or decoder, in bfloat16 under autocast when `train.precision` is bf16; the
        latents, densities and losses stay in float32."""
        if self.precision == "bf16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return network(x).float()
        return network(x)

    def encode(self, name: str, x: Tensor) -> Encoding:
        params = self._network(self.encoders[name], self.encoder_input(name, x))
        private_size = self.private[name].param_dim
        private = params[:, :private_size] if private_size else None
        return Encoding(private, params[:, private_size:])

    def shared_posterior(self, encodings: dict[str, Encoding], names: list[str] | None = None) -> Tensor:
        """Eq. 3: the PoE over the modalities present (with the prior expert)."""
        names = list(encodings) if names is None else names
        return self.shared.product_of_experts([encodings[name].shared for name in names])

    # --- generation ----------------------------------------------------------------------------------------
    def decode(self, name: str, z_private: Tensor | None, z_shared: Tensor) -> Tensor:
        z = z_shared if z_private is None else torch.cat([z_private, z_shared], dim=-1)
        return self._network(self.decoders[name], z)

    def log_likelihood(self, name: str, logits: Tensor, x: Tensor) -> Tensor:
        """log p(x | z) summed over the modality's dimensions (Bernoulli or categorical).

        logits may carry extra leading dimensions (e.g. one per shared-latent source); x is broadcast."""
        lead = logits.shape[: logits.dim() - x.dim() - (1 if self.specs[name].kind == "label" else 0)]
        if self.specs[name].kind == "label":
            nll = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), x.expand(*lead, *x.shape).reshape(-1), reduction="none"
            )
            return -nll.view(*lead, x.shape[0])
        per_dim = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        return -per_dim.flatten(len(lead) + 1).sum(-1)

    def source_log_likelihoods(
        self, name: str, x: Tensor, z_private: Tensor | None, z_shared: list[Tensor]
    ) -> Tensor:
        """[source]: batch-mean log p(x | z_p, z_s) for each shared sample, in one decoder call."""
        count, batch = len(z_shared), x.shape[0]
        z_p = None if z_private is None else z_private.repeat(count, 1)
        logits = self.decode(name, z_p, torch.cat(z_shared))
        logits = logits.view(count, batch, *logits.shape[1:])
        return self.log_likelihood(name, logits, x).mean(-1)

    def shared_sources(self, names: list[str]) -> dict[str, list[str]]:
        """The sets of modalities z_s is inferred from: all present (PoE) and each alone."""
        if len(names) == 1:
            return {names[0]: names}
        return {"joint": names} | {name: [name] for name in names}

    def mean_output(self, name: str, logits: Tensor) -> Tensor:
        """Images and attributes as probabilities in [0, 1]; labels as class probabilities."""
        return logits.softmax(-1) if self.specs[name].kind == "label" else torch.sigmoid(logits)

    def private_prior(self, name: str, n: int, device=None) -> Tensor | None:
        return self.private[name].prior_sample(n, device) if self.private[name].dim else None

    @torch.no_grad()
    def cross_generate(
        self, batch: dict[str, Tensor], target: str, protocol: str = "mode", samples: int = 32
    ) -> Tensor:
        """Logits of `target` decoded from z_s inferred from the modalities in `batch` (the target's own
        private latent at its prior mean, 0). z_s is the mode of q(z_s | batch) (`mode`), one relaxed sample
        of it (`sampled`), or, with `expected`, the decoder's output probabilities are averaged over
        `samples` relaxed samples: the predictive p(target | batch) = E_q(z_s | batch) p(target | z_s),
        returned as logits (log-probabilities of labels, log-odds of attributes and pixels). Sampling draws
        from torch's global generator: callers that must not move it fork it (cross_generated)."""
        encodings = {name: self.encode(name, x) for name, x in batch.items()}
        params = self.shared_posterior(encodings)
        size = self.private[target].dim
        z_private = torch.zeros(params.shape[0], size, device=params.device) if size else None
        if protocol == "mode":
            return self.decode(target, z_private, self.shared.mode(params))
        if protocol == "sampled":
            return self.decode(target, z_private, self.shared.rsample(params).value)
        mean = (
            sum(
                self.mean_output(target, self.decode(target, z_private, self.shared.rsample(params).value))
                for _ in range(samples)
            )
            / samples
        )
        if self.specs[target].kind == "label":
            return mean.clamp_min(1e-12).log()
        return torch.logit(mean, eps=1e-6)

    def loss(self, batch: dict[str, Tensor], dataset_size: int, kl_weight: float = 1.0):
        raise NotImplementedError
