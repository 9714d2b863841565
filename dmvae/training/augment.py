"""Random translation of training images (train.augment_shift): each example moves by its own whole number
of pixels, at most `shift` along each axis, with zeros filling the border it uncovers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(images: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """images [B, C, H, W]; the offsets come from `generator` (a CPU one, so runs repeat on any device)."""
    if shift <= 0:
        return images
    batch, _, height, width = images.shape
    offsets = torch.randint(0, 2 * shift + 1, (2, batch), generator=generator).to(images.device)
    padded = F.pad(images, (shift, shift, shift, shift))
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # [B, H] rows of `padded`
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)  # [B, W]
    examples = torch.arange(batch, device=images.device)[:, None, None]
    # advanced indexing puts the indexed dims first: [B, H, W, C] -> [B, C, H, W]
    return padded.permute(0, 2, 3, 1)[examples, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
