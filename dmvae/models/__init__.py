"""Models: DMVAE and its MVAE baseline, built from one config."""

from dmvae.config import RunConfig
from dmvae.data.types import ModalitySpec
from dmvae.errors import UserError
from dmvae.models.base import Encoding, MultimodalVAE
from dmvae.models.dmvae import DMVAE
from dmvae.models.mvae import MVAE
from dmvae.models.networks import ARCHITECTURES, default_architecture


def build_model(config: RunConfig, specs: list[ModalitySpec]) -> MultimodalVAE:
    architecture = config.model.architecture
    if architecture == "auto":
        architecture = default_architecture(config.model.kind, config.data.name)
    if architecture not in ARCHITECTURES:
        raise UserError(
            f"model.architecture must be auto or one of {', '.join(ARCHITECTURES)}; got {architecture!r}"
        )
    if config.model.batch_norm and architecture != "fmnist":
        raise UserError(
            "model.batch_norm applies to the Fashion-MNIST convolutional networks only (architecture"
            f" fmnist), not {architecture}; set model.batch_norm=false"
        )
    names = {spec.name for spec in specs}
    for group, values in (
        ("model.private_dim", config.model.private_dim),
        ("objective.recon_weight", config.objective.recon_weight),
        ("objective.beta_private", config.objective.beta_private),
        ("objective.beta_shared", config.objective.beta_shared),
    ):
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(
                f"{group} names modality {unknown[0]!r}, but the data has {', '.join(sorted(names))}"
            )
    model_class = DMVAE if config.model.kind == "dmvae" else MVAE
    model = model_class(specs, config.model, config.objective, architecture)
    return model


__all__ = ["DMVAE", "MVAE", "Encoding", "MultimodalVAE", "build_model"]
