"""Our DMVAE vs MultiVae's DMVAE (PyPI `multivae` 1.0.3): one fully paired MNIST training epoch of each.

    make bench-peer      # builds .venv-peer (torch 2.14.1 + multivae 1.0.3) when missing, then runs this:
    PYTHONPATH=. .venv-peer/bin/python bench/peer_multivae.py [--threads N] [--epochs 2] [--warmup 1]

The same work on both sides, on CPU: the 50,000 MNIST training images, every one with its label, batch 100,
Adam lr 1e-3; a Gaussian shared latent of 10 dimensions, a private latent of 10 for the image and none for the
label; the paper's Table 3 networks (encoders 784-256-40 and 10-256-20, decoders 20-256-784 and 10-256-10,
ReLU); Bernoulli image likelihood on logits, categorical label likelihood weighted 50; three sources of the
shared latent (PoE of image, label and the prior; image alone; label alone) each decoding both modalities.

Timed, after `--warmup` untimed epochs, the minimum over `--epochs` epochs of:
  ours           our Trainer.train_epoch() (data.paired_fraction=1.0, train.schedule=mixed)
  theirs_trainer MultiVae's BaseTrainer.train() as its users run it (DataLoader over MultimodalBaseDataset,
                 shuffled); an epoch is the span from its on_epoch_begin to its on_epoch_end callback
  theirs_bare    a bare loop of MultiVae's DMVAE forward, backward and Adam step over batches sliced in
                 memory before the epoch starts
MultiVae's Bernoulli log-likelihood goes through torch.distributions with argument validation (torch's
default), which rejects grey levels, so MultiVae gets the images binarised at 0.5 (the same arithmetic);
`theirs_bare_novalidate` adds the bare loop on our grey images with validation off.

Differences in the work that no setting removes: our KL terms are the beta-TCVAE decomposition (MI + TC +
dimension-wise KL, minibatch-weighted estimates over the 100 x 100 pairs of the batch) and theirs are the
closed-form KL to N(0, I); we draw one private sample per modality and decode the three shared sources in one
batched call per decoder, they draw a private sample per source and call each decoder three times.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

SHARED, PRIVATE = 10, {"image": 10, "label": 0}
HIDDEN, BATCH, LR, LABEL_WEIGHT, TRAIN_SIZE = 256, 100, 1e-3, 50.0, 50_000


# --- ours ---------------------------------------------------------------------------------------------------
def time_ours(threads: int, epochs: int, warmup: int = 1, extra: tuple[str, ...] = ()) -> dict:
    """Seconds of our trainer's train_epoch() on fully paired MNIST: min over `epochs` after `warmup`."""
    from dmvae.config import load_config
    from dmvae.data import load_splits
    from dmvae.training import Trainer

    overrides = [
        "device=cpu", "data.paired_fraction=1.0", "train.schedule=mixed", "train.paired_ratio=1.0",
        "model.kind=dmvae", "model.architecture=mnist", "model.shared=gaussian", f"model.shared_dim={SHARED}",
        f"model.private_dim.image={PRIVATE['image']}", f"model.private_dim.label={PRIVATE['label']}",
        "objective.recon_weight.image=1.0", f"objective.recon_weight.label={LABEL_WEIGHT}",
        f"train.batch_size={BATCH}", f"train.lr={LR}", f"train.threads={threads}", "eval.figures=false",
        *extra,
    ]  # fmt: skip
    config = load_config("configs/mnist_dmvae.yaml", overrides)
    splits = load_splits(config.data, config.seed)
    trainer = Trainer(config, splits=splits, progress=None)
    seconds = []
    for epoch in range(warmup + epochs):
        start = time.perf_counter()
        trainer.train_epoch()
        if epoch >= warmup:
            seconds.append(time.perf_counter() - start)
    parameters = sum(p.numel() for p in trainer.model.parameters())
    return {"seconds": seconds, "parameters": parameters}


# --- MultiVae -----------------------------------------------------------------------------------------------
def read_mnist(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 50,000 training images (float in [0, 1], [n, 1, 28, 28]) and labels (int64), from IDX."""
    images = np.frombuffer((root / "train-images-idx3-ubyte").read_bytes(), np.uint8, offset=16)
    labels = np.frombuffer((root / "train-labels-idx1-ubyte").read_bytes(), np.uint8, offset=8)
    images = torch.from_numpy(images.copy()).view(-1, 1, 28, 28)[:TRAIN_SIZE].float().div_(255)
    return images, torch.from_numpy(labels.copy())[:TRAIN_SIZE].long()


def build_multivae():
    """MultiVae's DMVAE with our Table 3 networks as its custom encoders and decoders."""
    from multivae.models import DMVAE, DMVAEConfig
    from multivae.models.nn.base_architectures import BaseDecoder, BaseMultilatentEncoder
    from pythae.models.base.base_utils import ModelOutput

    class Encoder(BaseMultilatentEncoder):
        def __init__(self, size: int, private: int):
            super().__init__()
            self.latent_dim, self.style_dim = SHARED, private
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(size, HIDDEN), nn.ReLU(),
                                     nn.Linear(HIDDEN, 2 * (SHARED + private)))  # fmt: skip

        def forward(self, x):
            mu, log_var, style_mu, style_log_var = self.net(x).split(
                [SHARED, SHARED, self.style_dim, self.style_dim], dim=-1
            )
            return ModelOutput(embedding=mu, log_covariance=log_var,
                               style_embedding=style_mu, style_log_covariance=style_log_var)  # fmt: skip

    class Decoder(BaseDecoder):
        def __init__(self, private: int, shape: tuple[int, ...]):
            super().__init__()
            self.shape = shape
            self.net = nn.Sequential(nn.Linear(SHARED + private, HIDDEN), nn.ReLU(),
                                     nn.Linear(HIDDEN, int(np.prod(shape))))  # fmt: skip

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).view(z.shape[0], *self.shape))

    shapes = {"image": (1, 28, 28), "label": (10,)}
    config = DMVAEConfig(
        n_modalities=2, latent_dim=SHARED, input_dims=shapes, modalities_specific_dim=dict(PRIVATE),
        decoders_dist={"image": "bernoulli", "label": "categorical"},
        uses_likelihood_rescaling=True, rescale_factors={"image": 1.0, "label": LABEL_WEIGHT},
    )  # fmt: skip
    encoders = {name: Encoder(int(np.prod(shape)), PRIVATE[name]) for name, shape in shapes.items()}
    decoders = {name: Decoder(PRIVATE[name], shape) for name, shape in shapes.items()}
    return DMVAE(config, encoders=encoders, decoders=decoders)


def time_theirs_trainer(data: dict, labels: torch.Tensor, threads: int, epochs: int, warmup: int) -> dict:
    """MultiVae's BaseTrainer.train() for warmup + epochs epochs; seconds of each epoch after the warm-up."""
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    from multivae.trainers.base.callbacks import TrainingCallback

    class EpochTimer(TrainingCallback):
        def __init__(self):
            self.seconds: list[float] = []

        def on_epoch_begin(self, training_config, **kwargs):
            self.start = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs):
            self.seconds.append(time.perf_counter() - self.start)

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_multivae()
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out:
        config = BaseTrainerConfig(
            output_dir=out, per_device_train_batch_size=BATCH, num_epochs=warmup + epochs,
            learning_rate=LR, no_cuda=True, seed=0,
        )  # fmt: skip
        dataset = MultimodalBaseDataset(data=data, labels=labels)
        BaseTrainer(model, train_dataset=dataset, training_config=config, callbacks=[timer]).train()
    return {"seconds": timer.seconds[warmup:], "parameters": sum(p.numel() for p in model.parameters())}


def time_theirs_bare(data: dict, threads: int, epochs: int, warmup: int, validate: bool = True) -> dict:
    """Bare loop over MultiVae's DMVAE: forward, backward, Adam step on batches sliced before each epoch."""
    from multivae.data.datasets.base import DatasetOutput

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(validate)
    model = build_multivae()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(0)
    seconds = []
    try:
        for epoch in range(warmup + epochs):
            order = torch.randperm(TRAIN_SIZE, generator=generator).split(BATCH)
            batches = [DatasetOutput(data={name: x[index] for name, x in data.items()}) for index in order]
            start = time.perf_counter()
            for batch in batches:
                loss = model(batch).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if epoch >= warmup:
                seconds.append(time.perf_counter() - start)
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)
    return {"seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs; the minimum is reported")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--data-root", type=Path, default=None, help="default: $DMVAE_DATA or ./data")
    parser.add_argument(
        "--ours-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="our config overrides, e.g. train.compile=true",
    )
    args = parser.parse_args()
    threads = args.threads or torch.get_num_threads()
    root = args.data_root or Path(os.environ.get("DMVAE_DATA", "data"))
    images, labels = read_mnist(root / "mnist")
    one_hot = nn.functional.one_hot(labels, 10).float()
    binary = {"image": (images > 0.5).float(), "label": one_hot}
    print(f"threads {threads}, {TRAIN_SIZE} paired images, batch {BATCH}, "
          f"{args.warmup} warm-up + {args.epochs} timed epochs each", flush=True)  # fmt: skip

    results = {}
    runs = {
        "ours": lambda: time_ours(threads, args.epochs, args.warmup, tuple(args.ours_set)),
        "theirs_trainer": lambda: time_theirs_trainer(binary, labels, threads, args.epochs, args.warmup),
        "theirs_bare": lambda: time_theirs_bare(binary, threads, args.epochs, args.warmup),
        "theirs_bare_novalidate": lambda: time_theirs_bare(
            {"image": images, "label": one_hot}, threads, args.epochs, args.warmup, validate=False
        ),
    }
    for name, run in runs.items():
        results[name] = run()
        seconds = results[name]["seconds"]
        print(f"{name:>22}: {min(seconds):7.2f} s per epoch  (epochs: "
              f"{', '.join(f'{s:.2f}' for s in seconds)})", flush=True)  # fmt: skip
    ours = min(results["ours"]["seconds"])
    summary = {
        "threads": threads,
        "images_per_epoch": TRAIN_SIZE,
        "batch_size": BATCH,
        "latent": {"shared_gaussian": SHARED, "private": PRIVATE},
        "label_weight": LABEL_WEIGHT,
        "parameters": {
            side: results[run]["parameters"] for side, run in (("ours", "ours"), ("theirs", "theirs_trainer"))
        },
        **{f"{name}_seconds_per_epoch": round(min(r["seconds"]), 3) for name, r in results.items()},
        **{
            f"ratio_ours_over_{name}": round(ours / min(r["seconds"]), 3)
            for name, r in results.items()
            if name != "ours"
        },
        "torch": torch.__version__,
        "multivae": metadata.version("multivae"),
        "cpu": platform.processor() or platform.machine(),
    }
    for name in runs:
        if name != "ours":
            print(f"ours / {name}: {summary[f'ratio_ours_over_{name}']:.3f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
