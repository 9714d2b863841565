"""results/probes/knobs_0p2.csv: the runs of knobs_0p2.sh, best validation accuracy (1,000 labels) after
15 epochs on the tuning data seed, beside the base config's (k02-base)."""

import csv
import json
import re
from pathlib import Path

rows = []
for run in sorted(Path("runs/probes").glob("k02-*")):
    final_file = run / "final.json"
    if not run.is_dir() or not final_file.is_file():
        continue
    final = json.loads(final_file.read_text())
    script = Path("results/probes/knobs_0p2.sh").read_text()
    override = re.search(rf"run {re.escape(run.name)}(.*?)(?:&|;|$)", script, re.M).group(1).strip()
    rows.append({
        "probe": run.name, "override": override.replace("--set ", "") or "(base)",
        "val_best": final["val_accuracy"], "best_epoch": final["best_epoch"], "epochs": final["epochs"],
        "val_labels": final["val_labels"], "lost_classes": "; ".join(final.get("val_lost_classes", [])),
        "weakest_class": min(range(10), key=lambda k: final["val_class_accuracy"][k]),
    })  # fmt: skip
with open("results/probes/knobs_0p2.csv", "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
for row in rows:
    print(row)
