"""Where and how a run computes: its device, its precision, its optimiser's kernel."""

from __future__ import annotations

import math
import platform
from pathlib import Path

import torch

from dmvae.errors import UserError


def resolve_precision(name: str, device: torch.device, model: torch.nn.Module) -> str:
    """`auto` is bf16 where it pays: on a CUDA GPU that supports it, and for convolutional networks on a
    CPU with native bfloat16 (AVX512-BF16/AMX, as oneDNN reports): there the convolutions run ~2x faster.
    The small MLPs of MNIST gain nothing from it on a CPU (their steps are bound by per-op overhead) and
    measured a little lower accuracy here, so they stay in fp32."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    convolutional = any(
        isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for module in model.modules()
    )
    return "bf16" if convolutional and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def make_optimizer(parameters, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with its fused kernel (one pass over all parameters) where torch has one for the device."""
    return torch.optim.Adam(parameters, lr=lr, fused=device.type in ("cpu", "cuda"))


def epoch_lr(lr: float, decay: str, epoch: int, epochs: int) -> float:
    """The learning rate of epoch `epoch` (0-based) of `epochs`: constant, or cosine-annealed from lr
    towards 0 over the run (Loshchilov & Hutter, SGDR, without restarts). A function of the epoch alone,
    so a resumed run and its restarts need no scheduler state."""
    if decay == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    return lr


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compute_description(device: torch.device) -> str:
    """What a run's floating-point results depend on beyond its code, config and packages: the GPU, or the
    CPU and the kernel set torch dispatches to on it (AVX2, AVX512, ...). The same seed and config repeat
    their numbers where this is the same; another kernel set rounds differently, and training amplifies it."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{cpu_model()} (torch CPU kernels {torch.backends.cpu.get_cpu_capability()})"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name} asked for, but torch sees no CUDA GPU; use device=cpu or auto")
    return torch.device(name)
