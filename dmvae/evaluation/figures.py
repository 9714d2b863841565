"""Figures of a trained model on test data (paper Fig. 2, 10-14): cross-synthesis, traversal, embeddings.

Image grids are saved with torchvision, scatter plots with matplotlib's Agg canvas (pyplot is not used, so
no global backend is touched). Every random choice comes from a generator seeded 0; library calls that draw
from torch's global RNG run inside `torch.random.fork_rng`, so the caller's RNG state is left as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import Tensor
from torchvision.utils import make_grid, save_image

from dmvae.evaluation.metrics import seeded_eval
from dmvae.models import MultimodalVAE


class TrainedRun(Protocol):
    """What the figures need of a trained run (a dmvae.training.Trainer is one)."""

    scored_model: MultimodalVAE  # the weights to draw (the averaged ones under train.ema)
    splits: Any  # DatasetSplits with a test split
    source: str
    target: str
    device: torch.device


PRIOR_DRAWS = 8
EXAMPLE_IMAGES = 8
MAX_ATTRIBUTES_SHOWN = 8
MAX_TRAVERSED_DIMS = 10
EMBEDDED_EXAMPLES = 1000
GRID_PADDING = 2
GRID_ROWS = 6


def write_figures(trainer: TrainedRun, out_dir: Path) -> list[Path]:
    """Write the PNGs that make sense for this model and data under out_dir; return their paths."""
    model, device = trainer.scored_model, trainer.device
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad(), seeded_eval(model, device, seed=0):
        return _write_all(trainer, out_dir, generator)


def _write_all(trainer: TrainedRun, out_dir: Path, generator: torch.Generator) -> list[Path]:
    model, source, target, test = trainer.scored_model, trainer.source, trainer.target, trainer.splits.test
    written: list[Path] = []
    if len(test) == 0:
        return written
    source_spec = model.specs[source]
    image_source = source_spec.kind == "image" and len(source_spec.shape) == 3
    values = target_values(model, target, trainer.device)
    has_private = model.private[source].dim > 0
    examples = torch.randperm(len(test), generator=generator)[:EXAMPLE_IMAGES]
    images = test.batch(examples, [source])[source]
    if image_source and values is not None:
        written.append(_cross_synthesis_prior(model, source, target, values, generator, out_dir))
        if has_private:
            written.append(_cross_synthesis_style(model, source, target, values, images, out_dir))
    if image_source:
        written.append(_traversal(model, source, images, out_dir))
    embedded = torch.randperm(len(test), generator=generator)[:EMBEDDED_EXAMPLES]
    written.append(_embedding(model, trainer, embedded, out_dir))
    return written


def target_values(model: MultimodalVAE, target: str, device: torch.device) -> Tensor | None:
    """Every class of a label target; for attributes, all off then each of the first few alone on."""
    spec = model.specs[target]
    if spec.kind == "label":
        return torch.arange(spec.shape[0], device=device)
    if spec.kind == "attributes":
        count = spec.shape[0]
        shown = torch.eye(count, device=device)[:MAX_ATTRIBUTES_SHOWN]
        return torch.cat([torch.zeros(1, count, device=device), shown])
    return None


def _target_shared(model: MultimodalVAE, target: str, values: Tensor) -> Tensor:
    """Parameters of q(z_s | target value) for each value."""
    return model.shared_posterior({target: model.encode(target, values)}, [target])


def _decoded_images(model: MultimodalVAE, source: str, z_private: Tensor | None, z_shared: Tensor) -> Tensor:
    return model.mean_output(source, model.decode(source, z_private, z_shared)).clamp(0, 1)


def _save_grid(images: Tensor, columns: int, path: Path) -> Path:
    save_image(make_grid(images.float().cpu(), nrow=columns, padding=GRID_PADDING, pad_value=1.0), path)
    return path


def _private_mean(model: MultimodalVAE, source: str, x: Tensor) -> Tensor | None:
    encoding = model.encode(source, x)
    return model.private[source].split(encoding.private)[0] if encoding.private is not None else None


def cross_synthesis_from_prior(
    model: MultimodalVAE, source: str, target: str, values: Tensor, rows: int, generator: torch.Generator
) -> Tensor:
    """[rows * values, ...] images: row r decodes every target value with the r-th draw of z_p from its
    prior (the same draw in every column); z_s is the mode of q(z_s | value). Without a private latent
    (MVAE) the rows are samples of q(z_s | value) instead."""
    params = _target_shared(model, target, values)
    private_dim = model.private[source].dim
    if private_dim:
        draws = torch.randn(rows, private_dim, generator=generator).to(params.device)
        z_private = draws.repeat_interleave(len(values), dim=0)
        z_shared = model.shared.mode(params).repeat(rows, 1)
    else:
        z_private = None
        z_shared = model.shared.rsample(params.repeat(rows, 1)).value
    return _decoded_images(model, source, z_private, z_shared)


def _cross_synthesis_prior(model, source, target, values, generator, out_dir: Path) -> Path:
    images = cross_synthesis_from_prior(model, source, target, values, PRIOR_DRAWS, generator)
    return _save_grid(images, len(values), out_dir / "cross_synthesis_prior.png")


@torch.no_grad()
def cross_synthesis_grid(
    model: MultimodalVAE, source: str, target: str, device: torch.device
) -> Tensor | None:
    """The prior cross-synthesis as one (3, H, W) image in [0, 1] (TensorBoard's image grids), or None when
    the source is not an image or the target has no values. The caller's RNG state is left as it was."""
    spec = model.specs[source]
    values = target_values(model, target, device)
    if spec.kind != "image" or len(spec.shape) != 3 or values is None:
        return None
    was_training = model.training
    model.eval()
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(0)
            generator = torch.Generator().manual_seed(0)
            images = cross_synthesis_from_prior(model, source, target, values, GRID_ROWS, generator)
    finally:
        model.train(was_training)
    return make_grid(images.float().cpu(), nrow=len(values), padding=GRID_PADDING, pad_value=1.0)


def _cross_synthesis_style(model, source, target, values, images: Tensor, out_dir: Path) -> Path:
    """Rows: test images giving z_p (shown first); then one column per target value."""
    z_shared = model.shared.mode(_target_shared(model, target, values))
    style = _private_mean(model, source, images)
    rows, value_count = len(images), len(values)
    synthesized = _decoded_images(
        model, source, style.repeat_interleave(value_count, dim=0), z_shared.repeat(rows, 1)
    ).view(rows, value_count, *images.shape[1:])
    grid = torch.cat([images.unsqueeze(1), synthesized], dim=1).flatten(0, 1)
    return _save_grid(grid, value_count + 1, out_dir / "cross_synthesis_style.png")


def shared_traversal(model: MultimodalVAE, z_shared: Tensor) -> Tensor:
    """[rows, steps, dim]: z_s set to each class (categorical), a dim at +2 (Gaussian) or a bit flipped."""
    kind, dim = model.shared.kind, model.shared.dim
    if kind == "categorical":
        return torch.eye(dim, device=z_shared.device).expand(len(z_shared), dim, dim)
    steps = min(dim, MAX_TRAVERSED_DIMS)
    moved = z_shared.unsqueeze(1).repeat(1, steps, 1)
    index = torch.arange(steps, device=z_shared.device)
    moved[:, index, index] = 2.0 if kind == "gaussian" else 1.0 - moved[:, index, index]
    return moved


def _traversal(model, source, images: Tensor, out_dir: Path) -> Path:
    """Rows: test images; columns: the image, its reconstruction, then the shared-latent traversal."""
    z_private = _private_mean(model, source, images)
    params = model.shared_posterior({source: model.encode(source, images)}, [source])
    z_shared = model.shared.mode(params)
    moved = shared_traversal(model, z_shared)
    rows, steps = moved.shape[:2]
    all_shared = torch.cat([z_shared.unsqueeze(1), moved], dim=1).flatten(0, 1)
    all_private = None if z_private is None else z_private.repeat_interleave(steps + 1, dim=0)
    decoded = _decoded_images(model, source, all_private, all_shared).view(rows, steps + 1, *images.shape[1:])
    grid = torch.cat([images.unsqueeze(1), decoded], dim=1).flatten(0, 1)
    return _save_grid(grid, steps + 2, out_dir / "traversal.png")


def project_2d(features: Tensor) -> Tensor:
    """[n, 2]: the first two principal components (zero-padded when there are fewer)."""
    features = features.double().cpu()
    components = min(2, *features.shape)
    centered = features - features.mean(0)
    if components == 0:
        return torch.zeros(len(features), 2)
    _, _, basis = torch.pca_lowrank(centered, q=components, center=False)
    return F.pad((centered @ basis).float(), (0, 2 - components))


def shared_features(model: MultimodalVAE, params: Tensor) -> Tensor:
    """What to embed of q(z_s): class or bit probabilities for discrete latents, the mean for Gaussian."""
    if model.shared.kind == "categorical":
        return params.softmax(-1)
    if model.shared.kind == "binary":
        return params.sigmoid()
    return model.shared.mode(params)


def _embedding(model, trainer: TrainedRun, index: Tensor, out_dir: Path, chunk: int = 250) -> Path:
    source, target, test = trainer.source, trainer.target, trainer.splits.test
    private, shared, colours = [], [], []
    for start in range(0, len(index), chunk):
        batch = test.batch(index[start : start + chunk], [source, target])
        encoding = model.encode(source, batch[source])
        if encoding.private is not None:
            private.append(model.private[source].split(encoding.private)[0])
        shared.append(shared_features(model, model.shared_posterior({source: encoding}, [source])))
        colours.append(batch[target])
    panels = [("shared latent z_s (from the image alone)", torch.cat(shared))]
    if private:
        panels.insert(0, (f"private latent z_p of {source} (mean)", torch.cat(private)))
    figure = Figure(figsize=(5 * len(panels), 4.5))
    spec = model.specs[target]
    colour_values = torch.cat(colours).cpu()
    for position, (title, features) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), position)
        points = project_2d(features)
        _scatter_by_target(axes, points, colour_values, spec)
        axes.set_title(f"PCA of the {title}", fontsize=9)
        axes.set_xlabel("PC 1")
        axes.set_ylabel("PC 2")
    figure.tight_layout()
    path = out_dir / "embedding.png"
    figure.savefig(path, dpi=100)
    return path


def _scatter_by_target(axes, points: Tensor, values: Tensor, spec) -> None:
    """Label target: one colour per class; attributes: coloured by the first attribute; else one colour."""
    if spec.kind == "label":
        class_names = [spec.names[c] if c < len(spec.names) else str(c) for c in range(spec.shape[0])]
        groups = [(values == c, name) for c, name in enumerate(class_names)]
        legend_title = spec.name
    elif spec.kind == "attributes":
        first_on = values[:, 0] > 0.5
        groups = [(~first_on, "False"), (first_on, "True")]
        legend_title = spec.names[0] if spec.names else f"{spec.name} 0"
    else:
        axes.scatter(points[:, 0], points[:, 1], s=4, alpha=0.6)
        return
    palette = colormaps["tab10"]
    for number, (mask, label) in enumerate(groups):
        if mask.any():
            colour = palette(number % 10)
            axes.scatter(points[mask, 0], points[mask, 1], s=4, alpha=0.6, color=colour, label=label)
    axes.legend(title=legend_title, fontsize=7, title_fontsize=7, markerscale=2, loc="best")
