from dmvae.training.callbacks import Callback, Hook, Progress, RunFolder, SharedLatentCheck
from dmvae.training.hardware import resolve_device, resolve_precision
from dmvae.training.trainer import Trainer, TrainingDiverged

__all__ = [
    "Callback",
    "Hook",
    "Progress",
    "RunFolder",
    "SharedLatentCheck",
    "Trainer",
    "TrainingDiverged",
    "resolve_device",
    "resolve_precision",
]
