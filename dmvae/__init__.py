"""dmvae: the disentangled multimodal VAE (Lee & Pavlovic, NeurIPS 2020) and its MVAE baseline.

from dmvae import RunConfig, Trainer
config = RunConfig.from_yaml("configs/mnist_dmvae.yaml")
final = Trainer(config, out_dir="runs/example").fit()
"""

from dmvae.config import RunConfig, load_config
from dmvae.errors import UserError
from dmvae.training import Trainer

__all__ = ["RunConfig", "Trainer", "UserError", "load_config"]
__version__ = "0.1.0"
