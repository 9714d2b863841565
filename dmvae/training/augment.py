"""Augmentations of training images, each example its own way, zeros filling what a move uncovers: a
left-right mirror with probability 1/2 (`train.augment_flip`), a random rotation by at most
`train.augment_rotate` degrees (bilinear), then a random translation by a whole number of pixels, at most
`train.augment_shift` along each axis."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def augment_images(batch: dict[str, Tensor], specs, train, generator: torch.Generator) -> dict[str, Tensor]:
    """The batch with train's augmentations applied to each image modality (specs: name -> ModalitySpec)."""
    for name in batch:
        if specs[name].kind == "image":
            mirrored = random_flip(batch[name], generator) if train.augment_flip else batch[name]
            rotated = random_rotation(mirrored, train.augment_rotate, generator)
            batch[name] = random_shift(rotated, train.augment_shift, generator)
    return batch


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """images [B, C, H, W], each mirrored left to right with probability 1/2."""
    mirror = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(mirror[:, None, None, None], images.flip(-1), images)


def random_rotation(images: Tensor, degrees: float, generator: torch.Generator) -> Tensor:
    """images [B, C, H, W] rotated about their centre by angles uniform in [-degrees, degrees]."""
    if degrees <= 0:
        return images
    angles = (torch.rand(images.shape[0], generator=generator) * 2 - 1) * (degrees * torch.pi / 180)
    return rotate(images, angles)


def rotate(images: Tensor, angles: Tensor) -> Tensor:
    """images [B, C, H, W], each turned clockwise (as displayed, row 0 at the top) by its angle in radians."""
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    # affine_grid maps each output pixel to where it samples the input: the inverse (anticlockwise) turn
    theta = torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


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
