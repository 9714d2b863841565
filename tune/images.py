"""Image grids for TensorBoard: cross-synthesis from every value of the target modality.

Columns are the target's values (each class of a label; for attributes: all off, then each of the first few
on alone); z_s is the mode of q(z_s | value). Rows are draws of the source's private latent z_p from its
prior (the same draws in every column and at every epoch), or, for a model without a private latent (MVAE),
draws of z_s from q(z_s | value).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.utils import make_grid

from dmvae.evaluation.figures import target_values

ROWS = 6
PADDING = 2


def image_epochs(max_epochs: int, grace_period: int, reduction_factor: int, every: int) -> set[int]:
    """Epochs that get an image: every `every`-th, the last, and each ASHA milestone (where ASHA may stop a
    trial: grace_period * reduction_factor**k), so every trial that is not errored ends with an image."""
    epochs = {max_epochs}
    if every:
        epochs |= set(range(every, max_epochs + 1, every))
    milestone = grace_period
    while milestone <= max_epochs:
        epochs.add(milestone)
        milestone *= reduction_factor
    return epochs


@torch.no_grad()
def cross_synthesis_grid(
    model, source: str, target: str, device: torch.device, rows: int = ROWS
) -> Tensor | None:
    """A (3, H, W) grid in [0, 1], or None when the source is not an image or the target has no values."""
    spec = model.specs[source]
    values = target_values(model, target, device)
    if spec.kind != "image" or len(spec.shape) != 3 or values is None:
        return None
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(0)
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):  # the trainer's RNG stream is left as it was
            torch.manual_seed(0)
            params = model.shared_posterior({target: model.encode(target, values)}, [target])
            count = len(values)
            private_dim = model.private[source].dim
            if private_dim:
                draws = torch.randn(rows, private_dim, generator=generator).to(device)
                z_private = draws.repeat_interleave(count, dim=0)
                z_shared = model.shared.mode(params).repeat(rows, 1)
            else:
                z_private = None
                z_shared = model.shared.rsample(params.repeat(rows, 1)).value
            images = model.mean_output(source, model.decode(source, z_private, z_shared)).clamp(0, 1)
    finally:
        model.train(was_training)
    return make_grid(images.float().cpu(), nrow=count, padding=PADDING, pad_value=1.0)
