"""results/probes/NAME.csv from the runs of results/probes/NAME.sh (runs/probes/PREFIX*): each run's best
validation accuracy (1,000 labels), its epochs, lost and weakest digit, beside the override it was run with.

    .venv/bin/python results/probes/summarize.py knobs_0p2 k02
    .venv/bin/python results/probes/summarize.py balanced_0p2 b02
    .venv/bin/python results/probes/summarize.py ema e0
"""

import csv
import json
import re
import sys
from pathlib import Path

name, prefix = sys.argv[1:3]
script = Path(f"results/probes/{name}.sh").read_text()
rows = []
for run in sorted(Path("runs/probes").glob(f"{prefix}*")):
    final_file = run / "final.json"
    if not run.is_dir() or not final_file.is_file():
        continue
    final = json.loads(final_file.read_text())
    override = re.search(rf"run {re.escape(run.name)}(.*?)(?:&|;|$)", script, re.M).group(1).strip()
    rows.append({
        "probe": run.name, "override": override.replace("--set ", "") or "(base)",
        "val_best": final["val_accuracy"], "best_epoch": final["best_epoch"], "epochs": final["epochs"],
        "val_labels": final["val_labels"], "lost_classes": "; ".join(final.get("val_lost_classes", [])),
        "weakest_class": min(range(10), key=lambda k: final["val_class_accuracy"][k]),
    })  # fmt: skip
with open(f"results/probes/{name}.csv", "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
for row in rows:
    print(row)
