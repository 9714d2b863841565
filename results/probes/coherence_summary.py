"""results/probes/coherence.csv: why label-to-image coherence is low while the label is read well. For each
probe (the protocols.csv runs, data seeds never reported), at its best-validation weights, the fraction of
images generated from label k that the coherence classifier calls k, averaged over the ten digits, with z_s
and the image's private latent z_p taken three ways:
  reported:        z_s the mode of q(z_s | k), z_p drawn from its prior (final.json's metric; paper Fig. 2a)
  zs_sampled:      z_s a relaxed sample of q(z_s | k), z_p drawn from its prior
  zp_prior_mean:   z_s a relaxed sample of q(z_s | k), z_p = 0 (the prior's mean)
No data split is read: the images are generated, the classifier was trained on the training split."""

import csv
from pathlib import Path

import torch

from dmvae.data import default_root
from dmvae.evaluation.coherence import coherence_per_class, load_or_train_classifier
from dmvae.evaluation.figures import _decoded_images, _target_shared
from dmvae.training.saved_run import load_run

ROWS = 100  # images per digit
torch.set_num_threads(2)
classifier = load_or_train_classifier("mnist", default_root(), print)


@torch.no_grad()
def coherence_with(model, z_private_of) -> torch.Tensor:
    """[10] per digit; z_s sampled from q(z_s | digit), z_p = z_private_of(count, dim)."""
    classes = torch.arange(10)
    torch.manual_seed(0)
    params = _target_shared(model, "label", classes).repeat(ROWS, 1)
    z_shared = model.shared.rsample(params).value
    images = _decoded_images(model, "image", z_private_of(len(params), model.private["image"].dim), z_shared)
    predicted = classifier.predict(images.float()).view(ROWS, 10)
    return (predicted == classes).float().mean(0)


rows = []
for run in sorted(Path("runs/probes").glob("exp-*")):
    if not (run / "final.json").is_file():
        continue
    model = load_run(run, "best").model.eval()
    per_class = coherence_per_class(model, classifier, "image", "label", ROWS, seed=0)
    at_prior_mean = coherence_with(model, torch.zeros)
    row = {
        "probe": run.name,
        "reported": round(per_class.mean().item(), 3),
        "zs_sampled": round(coherence_with(model, lambda n, d: torch.randn(n, d)).mean().item(), 3),
        "zp_prior_mean": round(at_prior_mean.mean().item(), 3),
        "digits_below_half_at_zp_prior_mean": " ".join(
            str(digit) for digit in (at_prior_mean < 0.5).nonzero().flatten().tolist()
        ),
        "classifier_test_accuracy": round(classifier.test_accuracy, 4),
    }
    rows.append(row)
    print(row)
with open("results/probes/coherence.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
