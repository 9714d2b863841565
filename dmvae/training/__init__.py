from dmvae.training.trainer import Trainer, TrainingDiverged, resolve_device

__all__ = ["Trainer", "TrainingDiverged", "resolve_device"]
