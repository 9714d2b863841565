"""Cross-generation metrics (paper Sec. 5): infer z_s from the source modality alone, decode the target."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from dmvae.data.types import MultimodalDataset
from dmvae.models import MultimodalVAE

EVAL_SEED = 0  # seed of the relaxed samples that the `sampled` and `expected` protocols draw


@contextmanager
def seeded_eval(model: torch.nn.Module, device: torch.device, seed: int = EVAL_SEED) -> Iterator[None]:
    """The model in eval mode, and torch's generator forked and seeded with `seed`; on exit, the model's mode
    and the caller's random stream are as they were."""
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield
    finally:
        model.train(was_training)


def default_source_target(model: MultimodalVAE, source: str | None, target: str | None) -> tuple[str, str]:
    source = source or model.names[0]
    if target is None:
        candidates = [
            n for n in model.names if n != source and model.specs[n].kind in ("label", "attributes")
        ]
        target = candidates[0] if candidates else next(n for n in model.names if n != source)
    return source, target


@torch.no_grad()
def cross_generated(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    source: str,
    target: str,
    protocol: str = "mode",
    samples: int = 32,
    batch_size: int = 2000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and truths of `target` cross-generated from `source` for every example of `dataset`
    (`protocol` and `samples`: MultimodalVAE.cross_generate). The relaxed samples of the sampling protocols
    come from a generator forked off torch's and seeded with EVAL_SEED: the same weights always score the
    same, and validating does not move the training run's random stream."""
    predictions, truths = [], []
    device = dataset.tensors[source].device
    with seeded_eval(model, device):
        for start in range(0, len(dataset), batch_size):
            index = torch.arange(start, min(start + batch_size, len(dataset)), device=device)
            batch = dataset.batch(index, [source, target])
            logits = model.cross_generate({source: batch[source]}, target, protocol, samples)
            if model.specs[target].kind == "label":
                predictions.append(logits.argmax(-1))
            else:
                predictions.append((logits > 0).to(batch[target].dtype))
            truths.append(batch[target])
    return torch.cat(predictions), torch.cat(truths)


def binary_scores(predictions: torch.Tensor, truths: torch.Tensor) -> dict[str, float]:
    """Mean over attributes of accuracy and F1 (an attribute never present nor predicted has F1 1)."""
    predictions, truths = predictions.bool(), truths.bool()
    tp = (predictions & truths).sum(0).double()
    fp = (predictions & ~truths).sum(0).double()
    fn = (~predictions & truths).sum(0).double()
    denominator = 2 * tp + fp + fn
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1), torch.ones_like(tp))
    accuracy = (predictions == truths).double().mean(0)
    return {"accuracy": accuracy.mean().item(), "f1": f1.mean().item()}


def confusion_matrix(predictions: torch.Tensor, truths: torch.Tensor, classes: int) -> torch.Tensor:
    """[classes, classes] counts: row = true class, column = predicted class."""
    pairs = truths.long() * classes + predictions.long()
    return torch.bincount(pairs.cpu(), minlength=classes * classes).view(classes, classes)


def class_accuracy(confusion: torch.Tensor) -> list[float | None]:
    """Per class, the share of its examples predicted as it (None for a class with no example)."""
    totals = confusion.sum(1)
    return [
        None if total == 0 else round(confusion[k, k].item() / total.item(), 4)
        for k, total in enumerate(totals)
    ]


def lost_classes(confusion: torch.Tensor, names: tuple[str, ...] = (), below: float = 0.5) -> list[str]:
    """A sentence per class that fewer than `below` of its examples are predicted as, naming where most go: a
    categorical shared latent that gave two digits one category shows up here, not in the mean accuracy."""
    names = names or tuple(str(k) for k in range(len(confusion)))
    lines = []
    for k, row in enumerate(confusion):
        total = row.sum().item()
        if total == 0 or row[k].item() >= below * total:
            continue
        others = sorted((count.item(), j) for j, count in enumerate(row) if j != k and count > 0)[::-1][:2]
        went = " and ".join(f"{100 * count / total:.0f} % to {names[j]}" for count, j in others)
        share = 100 * row[k].item() / total
        lines.append(f"class {names[k]}: {share:.0f} % of its examples are predicted as it, {went}")
    return lines


@torch.no_grad()
def merged_classes(model: MultimodalVAE, target: str, protocol: str = "mode", samples: int = 32) -> list[str]:
    """The label's round trip through the shared latent alone: class k is encoded by the label's own network
    and decoded from q(z_s | k) by the label decoder (`protocol` and `samples`: MultimodalVAE.cross_generate,
    seeded as in cross_generated). Classes that come back as one class share a code of z_s, so no source (an
    image either) can tell them apart, and accuracy from any source is capped below their share. A sentence
    per such group; none for a target that is not a label."""
    spec = model.specs[target]
    if spec.kind != "label":
        return []
    device = next(model.parameters()).device
    classes = torch.arange(spec.shape[0], device=device)
    with seeded_eval(model, device):
        decoded = model.cross_generate({target: classes}, target, protocol, samples).argmax(-1).tolist()
    names = spec.names or tuple(str(k) for k in classes.tolist())
    lines = []
    for named in sorted(set(decoded)):
        members = [k for k, d in enumerate(decoded) if d == named]
        if members == [named]:
            continue
        labels = [names[k] for k in members]
        listed = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
        given = f"classes {listed} one code" if len(members) > 1 else f"class {listed} no code of its own"
        lines.append(
            f"the shared latent gives {given}: z_s inferred from the {target} itself decodes as "
            f"{names[named]}"
        )
    return lines


def evaluate_cross_generation(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    source: str,
    target: str,
    protocol: str = "mode",
    per_class: bool = False,
    samples: int = 32,
) -> dict:
    """{"accuracy": ...} for a label target; {"accuracy", "f1"} (means over attributes) for attributes. With
    per_class, a label target also gets "class_accuracy", "lost_classes" and "merged_classes" (lists: not
    per-epoch scalars; the last depends on the weights only, not on `dataset`)."""
    predictions, truths = cross_generated(model, dataset, source, target, protocol, samples)
    spec = model.specs[target]
    if spec.kind != "label":
        return binary_scores(predictions, truths)
    scores = {"accuracy": (predictions == truths).double().mean().item()}
    if per_class:
        confusion = confusion_matrix(predictions, truths, spec.shape[0])
        scores |= {
            "class_accuracy": class_accuracy(confusion),
            "lost_classes": lost_classes(confusion, spec.names),
            "merged_classes": merged_classes(model, target, protocol, samples),
        }
    return scores
