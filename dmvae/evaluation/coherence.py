"""Coherence (paper Table 2a, last column; MultiVae's CoherenceEvaluator): the fraction of images
cross-synthesised from label k that a separate image classifier assigns to class k, averaged over classes.

The classifier is a small convnet of this project, trained once per dataset on the training split (its
images and labels; never the validation or test split), with a fixed seed, and cached beside the data as
`<data root>/<dataset>/coherence_classifier.pt` together with its test accuracy and its training settings.
Later runs load it. Datasets without one (CelebA, your own npz data) get no coherence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dmvae.config import DataConfig
from dmvae.data.loaders import load_splits
from dmvae.data.types import MultimodalDataset
from dmvae.errors import UserError
from dmvae.evaluation.figures import cross_synthesis_from_prior
from dmvae.models import MultimodalVAE

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

CLASSIFIER_FILE = "coherence_classifier.pt"
DATASETS_WITH_CLASSIFIER = ("mnist", "fmnist")
FILE_FORMAT = 1
EVALUATION_BATCH = 2000
GENERATED_ROWS_PER_CHUNK = 50  # rows of one image per class decoded at once


@dataclass(frozen=True)
class ClassifierSettings:
    """How the coherence classifier is trained (stored in its file)."""

    epochs: int = 3
    train_size: int | None = None  # the first N training examples (None: the whole training split)
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


class ImageClassifier(nn.Sequential):
    """Two 3x3 convolutions (32 and 64 channels), each followed by ReLU and 2x2 max pooling, then a
    hidden layer of 128 and the class logits."""

    def __init__(self, image_shape: tuple[int, ...], classes: int):
        channels, height, width = image_shape
        super().__init__(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (height // 4) * (width // 4), 128), nn.ReLU(),
            nn.Linear(128, classes),
        )  # fmt: skip


@dataclass
class CoherenceClassifier:
    """A trained image classifier and what is known about it."""

    network: nn.Module
    image_shape: tuple[int, ...]
    classes: int
    test_accuracy: float
    dataset: str = ""
    settings: dict = dataclasses.field(default_factory=dict)

    def to(self, device: torch.device | str) -> CoherenceClassifier:
        self.network.to(device)
        return self

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Class ids of images in [0, 1] (float, [n, C, H, W])."""
        self.network.eval()
        return torch.cat([self.network(chunk).argmax(-1) for chunk in images.split(EVALUATION_BATCH)])

    def fits(self, model: MultimodalVAE, source: str, target: str) -> bool:
        """Whether it can score `source` images cross-synthesised from `target` labels."""
        source_spec, target_spec = model.specs[source], model.specs[target]
        return (
            source_spec.kind == "image" and tuple(source_spec.shape) == tuple(self.image_shape)
            and target_spec.kind == "label" and target_spec.shape[0] == self.classes
        )  # fmt: skip


# --- the metric ---------------------------------------------------------------------------------------------
@torch.no_grad()
def coherence_per_class(
    model: MultimodalVAE,
    classifier: CoherenceClassifier,
    source: str,
    target: str,
    samples_per_class: int = 100,
    seed: int = 0,
) -> Tensor:
    """[classes]: for each label k, the fraction of `samples_per_class` source images generated from k that
    the classifier assigns to k. z_s comes from the label alone (its mode), the private latent from its prior
    (`cross_synthesis_from_prior`; MVAE, without one, samples z_s). Seeded; the caller's RNG state is kept."""
    if not classifier.fits(model, source, target):
        raise ValueError(f"the coherence classifier does not score {source} images of {target} labels")
    device = next(model.parameters()).device
    classifier.to(device)
    classes = torch.arange(classifier.classes, device=device)
    correct = torch.zeros(len(classes), device=device)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, samples_per_class, GENERATED_ROWS_PER_CHUNK):
                rows = min(GENERATED_ROWS_PER_CHUNK, samples_per_class - start)
                images = cross_synthesis_from_prior(model, source, target, classes, rows, generator)
                predicted = classifier.predict(images.float()).view(rows, len(classes))
                correct += (predicted == classes).sum(0)
    finally:
        model.train(was_training)
    return (correct / samples_per_class).cpu()


def coherence(
    model: MultimodalVAE,
    classifier: CoherenceClassifier,
    source: str,
    target: str,
    samples_per_class: int = 100,
    seed: int = 0,
) -> float:
    """The mean over classes of `coherence_per_class`."""
    return coherence_per_class(model, classifier, source, target, samples_per_class, seed).mean().item()


# --- training, caching, loading -----------------------------------------------------------------------------
def classifier_path(dataset: str, data_root: str | Path) -> Path:
    return Path(data_root) / dataset / CLASSIFIER_FILE


def _image_and_label(dataset: MultimodalDataset) -> tuple[str, str]:
    image = next(spec.name for spec in dataset.specs if spec.kind == "image")
    label = next(spec.name for spec in dataset.specs if spec.kind == "label")
    return image, label


@torch.no_grad()
def accuracy(classifier: CoherenceClassifier, dataset: MultimodalDataset) -> float:
    image, label = _image_and_label(dataset)
    device = next(classifier.network.parameters()).device
    correct = 0
    for start in range(0, len(dataset), EVALUATION_BATCH):
        index = torch.arange(start, min(start + EVALUATION_BATCH, len(dataset)))
        batch = dataset.batch(index, [image, label])
        correct += (classifier.predict(batch[image].to(device)) == batch[label].to(device)).sum().item()
    return correct / len(dataset)


def train_classifier(
    train: MultimodalDataset,
    test: MultimodalDataset,
    settings: ClassifierSettings | None = None,
    progress: Callable[[str], None] = print,
    device: torch.device | str = "cpu",
    dataset: str = "",
) -> CoherenceClassifier:
    """Train on every example of `train` (or its first `settings.train_size`) for a fixed number of epochs
    (no selection on any split), then measure the accuracy on `test`. Seeded; the caller's RNG is kept."""
    settings = settings or ClassifierSettings()
    device = torch.device(device)
    image, label = _image_and_label(train)
    spec = train.spec(image)
    classes = train.spec(label).shape[0]
    size = len(train) if settings.train_size is None else min(settings.train_size, len(train))
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        network = ImageClassifier(spec.shape, classes).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.lr)
    name = f"coherence classifier{' ' + dataset if dataset else ''}"
    for epoch in range(1, settings.epochs + 1):
        start, loss_sum, correct = time.perf_counter(), 0.0, 0
        network.train()
        order = torch.randperm(size, generator=generator)
        for index in order.split(settings.batch_size):
            batch = train.batch(index, [image, label])
            x, y = batch[image].to(device), batch[label].to(device)
            logits = network(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(index)
            correct += (logits.argmax(-1) == y).sum().item()
        progress(
            f"{name}: epoch {epoch}/{settings.epochs}  loss {loss_sum / size:.4f}  "
            f"train acc {correct / size:.4f}  {time.perf_counter() - start:.1f}s"
        )
    trained_with = dataclasses.asdict(settings) | {"train_examples": size}
    classifier = CoherenceClassifier(network, tuple(spec.shape), classes, 0.0, dataset, trained_with)
    classifier.test_accuracy = accuracy(classifier, test)
    progress(f"{name}: test accuracy {classifier.test_accuracy:.4f} ({len(test)} test images)")
    return classifier


def save_classifier(classifier: CoherenceClassifier, path: str | Path) -> None:
    """Write atomically (a temporary file, then a rename): concurrent runs never read half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contents = {
        "format": FILE_FORMAT,
        "dataset": classifier.dataset,
        "image_shape": list(classifier.image_shape),
        "classes": classifier.classes,
        "test_accuracy": classifier.test_accuracy,
        "settings": classifier.settings,
        "state_dict": {key: value.cpu() for key, value in classifier.network.state_dict().items()},
    }
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(contents, temporary)
    os.replace(temporary, path)


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> CoherenceClassifier:
    path = Path(path)
    fix = f"delete it and the next final run trains a new one: rm {path}"
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(contents, dict) or contents.get("format") != FILE_FORMAT:
            raise ValueError("not a coherence classifier file of this version")
        shape, classes = tuple(contents["image_shape"]), int(contents["classes"])
        network = ImageClassifier(shape, classes)
        network.load_state_dict(contents["state_dict"])
        classifier = CoherenceClassifier(
            network, shape, classes, float(contents["test_accuracy"]), str(contents["dataset"]),
            dict(contents["settings"]),
        )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UserError(
            f"the coherence classifier {path} is corrupt ({type(error).__name__}); {fix}"
        ) from None
    return classifier.to(device)


def load_or_train_classifier(
    dataset_name: str,
    data_root: str | Path,
    progress: Callable[[str], None] = print,
    settings: ClassifierSettings | None = None,
    path: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> CoherenceClassifier | None:
    """The cached classifier of a dataset (`path`, default `<data_root>/<dataset>/coherence_classifier.pt`),
    or None for a dataset without one. A missing file is trained (with `settings`, default
    ClassifierSettings()) and cached first. Without `settings` any cached classifier is taken as it is (its
    settings and test accuracy are in the file); with them, one trained otherwise is replaced."""
    if dataset_name not in DATASETS_WITH_CLASSIFIER:
        return None
    path = Path(path) if path is not None else classifier_path(dataset_name, data_root)
    classifier, note = _cached(path, dataset_name, settings, device)
    if classifier is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path.with_name(path.name + ".lock")):  # parallel final runs train it once
            classifier, note_now = _cached(path, dataset_name, settings, device)
            if classifier is None:
                if note:
                    progress(note)
                splits = load_splits(
                    DataConfig(name=dataset_name, root=str(data_root)), seed=0, progress=progress
                )
                classifier = train_classifier(
                    splits.train, splits.test, settings, progress, device, dataset_name
                )
                save_classifier(classifier, path)
                progress(f"coherence classifier: saved to {path}")
                return classifier
            note = note_now
    progress(note)
    return classifier


def _cached(
    path: Path, dataset_name: str, settings: ClassifierSettings | None, device: torch.device | str
) -> tuple[CoherenceClassifier | None, str]:
    """The cached classifier when there is one to use (else None), and a line saying what was found."""
    if not path.is_file():
        return None, ""
    classifier = load_classifier(path, device)
    if classifier.dataset != dataset_name:
        raise UserError(
            f"the coherence classifier {path} is one of {classifier.dataset!r}, not of {dataset_name!r}; "
            f"delete it and the next final run trains a new one: rm {path}"
        )
    wanted = dataclasses.asdict(settings) if settings is not None else None
    stored = {key: classifier.settings.get(key) for key in wanted or {}}
    if wanted is not None and stored != wanted:
        return None, f"coherence classifier: {path} was trained with other settings ({stored}); training anew"
    return classifier, f"coherence classifier: {path} (test accuracy {classifier.test_accuracy:.4f})"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on lock_path (where the platform has fcntl; elsewhere, no lock)."""
    if fcntl is None:
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
