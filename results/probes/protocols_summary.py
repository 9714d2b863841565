"""results/probes/protocols.csv: each probe's best validation accuracy under eval.protocol expected and, at
the same weights, the mode protocol's, with the classes each loses (validation labels only)."""

import csv
import json
from pathlib import Path

import torch

from dmvae.evaluation.metrics import confusion_matrix, cross_generated, lost_classes
from dmvae.training.saved_run import load_run

torch.set_num_threads(2)
old = {r["probe"]: r for r in csv.DictReader(open("results/probes/lost_classes_seeds.csv"))}
rows = []
for run in sorted(Path("runs/probes").glob("exp-*")):
    if not (run / "final.json").is_file():
        continue
    final = json.loads((run / "final.json").read_text())
    trainer = load_run(run, "best")
    row = {
        "probe": run.name,
        "data_seed": trainer.config.seed,
        "private_dim": trainer.config.model.private_dim["image"],
        "epochs": final["epochs"],
        "val_labels": final["val_labels"],
        "val_best_expected": round(final["val_accuracy"], 4),
        "best_epoch_expected": final["best_epoch"],
    }
    for protocol in ("expected", "mode"):
        pred, truth = cross_generated(
            trainer.model, trainer.splits.val, trainer.source, trainer.target, protocol, 32
        )
        row[f"val_{protocol}_at_these_weights"] = round((pred == truth).double().mean().item(), 4)
        row[f"lost_classes_{protocol}"] = "; ".join(lost_classes(confusion_matrix(pred, truth, 10)))
    before = old.get(run.name.replace("exp-", ""))
    row["val_best_mode_selected"] = before["val_best_accuracy"] if before else ""
    row["lost_classes_mode_selected"] = before["lost_classes"] if before else ""
    rows.append(row)
    print(row)
with open("results/probes/protocols.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
