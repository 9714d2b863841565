"""Encoders and decoders by architecture and modality kind (supplement Tables 3-5, MVAE, generic MLPs).

Encoders map a modality's input to `out_dim` posterior parameters; decoders map a latent vector to the
likelihood's logits (the Sigmoid / softmax of the tables lives in the likelihood).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from dmvae.data.types import ModalitySpec
from dmvae.errors import UserError

ARCHITECTURES = ("mnist", "fmnist", "celeba", "mlp", "mvae_mlp")


def _flat_dim(spec: ModalitySpec) -> int:
    return math.prod(spec.shape)


def _mlp(
    sizes: list[int], activation: Callable[[], nn.Module] = nn.ReLU, dropout: float = 0.0
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Dropout(nn.Dropout):
    """nn.Dropout whose mask costs one random byte per element, drawn 8 at a time from 64-bit integers,
    where p is a multiple of 1/256 (0.25 and 0.5 in Table 4): then P(byte < 256 p) = p exactly. CPU
    Bernoulli sampling draws one generator call per element and took ~9 % of a Fashion-MNIST step here.
    Other p, or an input that is neither contiguous nor channels-last, use torch's own dropout."""

    def forward(self, x: Tensor) -> Tensor:
        threshold = self.p * 256
        dense = x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
        if not self.training or not 0 < self.p < 1 or threshold != int(threshold) or not dense:
            return super().forward(x)
        words = torch.randint(
            -(2**63), 2**63 - 1, ((x.numel() + 7) // 8,), dtype=torch.int64, device=x.device
        )
        random_bytes = words.view(torch.uint8)[: x.numel()].as_strided(x.shape, x.stride())
        return x * (random_bytes >= int(threshold)) * (1 / (1 - self.p))


class Unflatten(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


def _conv_relu(channels_in: int, channels_out: int, batch_norm: bool) -> list[nn.Module]:
    """A 3x3 convolution and its ReLU, then BatchNorm2d where `model.batch_norm` asks for it (the order of
    the authors' Fashion-MNIST code)."""
    layers = [nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.ReLU(inplace=True)]
    return layers + [nn.BatchNorm2d(channels_out)] if batch_norm else layers


def fmnist_image_encoder(out_dim: int, batch_norm: bool = False) -> nn.Module:
    """Table 4: conv 32-32-pool-64-64-pool with dropout 0.25, FC 3136-512, dropout 0.5."""
    return nn.Sequential(
        *_conv_relu(1, 32, batch_norm), *_conv_relu(32, 32, batch_norm), nn.MaxPool2d(2), Dropout(0.25),
        *_conv_relu(32, 64, batch_norm), *_conv_relu(64, 64, batch_norm), nn.MaxPool2d(2), Dropout(0.25),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(inplace=True), Dropout(0.5),
        nn.Linear(512, out_dim),
    )  # fmt: skip


def fmnist_image_decoder(in_dim: int, batch_norm: bool = False) -> nn.Module:
    """Table 4: FC to 64x7x7, then upsampling 3x3 convolutions 64-32 and 32-1."""
    return nn.Sequential(
        nn.Linear(in_dim, 512), nn.ReLU(inplace=True), nn.Linear(512, 64 * 7 * 7), nn.ReLU(inplace=True),
        Unflatten((64, 7, 7)),
        nn.Upsample(scale_factor=2), *_conv_relu(64, 64, batch_norm), *_conv_relu(64, 32, batch_norm),
        nn.Upsample(scale_factor=2), *_conv_relu(32, 32, batch_norm),
        nn.Conv2d(32, 1, 3, padding=1),
    )  # fmt: skip


def celeba_image_encoder(out_dim: int, channels: int = 3) -> nn.Module:
    """Table 5: four 4x4 stride-2 convolutions 32-64-128-256, FC 512 with dropout 0.1 (64x64 input)."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(), nn.Conv2d(128, 256, 4, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(256 * 4 * 4, 512), nn.ReLU(), Dropout(0.1), nn.Linear(512, out_dim),
    )  # fmt: skip


def celeba_image_decoder(in_dim: int, channels: int = 3) -> nn.Module:
    """Table 5: FC to 256x4x4, then 4x4 stride-2 transposed convolutions 256-128-64-32-channels."""
    return nn.Sequential(
        nn.Linear(in_dim, 256 * 4 * 4), nn.ReLU(), Unflatten((256, 4, 4)),
        nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, channels, 4, 2, 1),
    )  # fmt: skip


def _conv_pair(architecture: str, spec: ModalitySpec, batch_norm: bool = False):
    """(encoder factory, decoder factory) of the convolutional image networks, or None for MLPs."""
    if spec.kind != "image" or len(spec.shape) != 3 or architecture not in ("fmnist", "celeba"):
        return None
    if architecture == "fmnist" and spec.shape == (1, 28, 28):
        return (lambda out: fmnist_image_encoder(out, batch_norm)), (
            lambda dim: fmnist_image_decoder(dim, batch_norm)
        )
    if architecture == "celeba" and spec.shape[1:] == (64, 64):
        channels = spec.shape[0]
        return (lambda out: celeba_image_encoder(out, channels)), (
            lambda dim: celeba_image_decoder(dim, channels)
        )
    raise UserError(f"architecture {architecture} does not fit images of shape {spec.shape}; use mlp")


def build_encoder(
    architecture: str, spec: ModalitySpec, out_dim: int, hidden: int = 256, batch_norm: bool = False
) -> nn.Module:
    """Image encoders take [B, C, H, W] in [0, 1]; label and attribute encoders take [B, n]."""
    size = _flat_dim(spec)
    conv = _conv_pair(architecture, spec, batch_norm)
    if conv:
        return conv[0](out_dim)
    if architecture == "mvae_mlp":
        return nn.Sequential(nn.Flatten(), _mlp([size, 512, 512, out_dim], nn.SiLU))
    if architecture in ("mnist", "fmnist", "celeba"):  # Tables 3-5: one hidden layer of 256
        return nn.Sequential(nn.Flatten(), _mlp([size, 256, out_dim]))
    return nn.Sequential(nn.Flatten(), _mlp([size, hidden, hidden, out_dim]))


def build_decoder(
    architecture: str, spec: ModalitySpec, in_dim: int, hidden: int = 256, batch_norm: bool = False
) -> nn.Module:
    """Decoders return logits shaped like the modality (images [B, C, H, W], others [B, n])."""
    size = _flat_dim(spec)
    conv = _conv_pair(architecture, spec, batch_norm)
    if conv:
        return conv[1](in_dim)
    if architecture == "mvae_mlp":
        body = _mlp([in_dim, 512, 512, size], nn.SiLU)
    elif architecture in ("mnist", "fmnist", "celeba"):
        body = _mlp([in_dim, 256, size])
    else:
        body = _mlp([in_dim, hidden, hidden, size])
    return nn.Sequential(body, Unflatten(spec.shape)) if spec.kind == "image" else body


def default_architecture(model_kind: str, dataset: str) -> str:
    if dataset == "celeba":
        return "celeba"
    if dataset in ("mnist", "fmnist"):
        return dataset if model_kind == "dmvae" else "mvae_mlp"
    return "mlp"
