"""results/probes/NAME.csv from the runs of results/probes/NAME.sh (runs/probes/PREFIX*): each run's best
validation accuracy (1,000 labels), its epochs, lost and weakest digit and merged classes (runs that record
them), beside the override it was run with.
Rows of probes whose run folders are gone (a fresh checkout) are kept from the CSV as it was.

    .venv/bin/python results/probes/summarize.py knobs_0p2 k02
    .venv/bin/python results/probes/summarize.py balanced_0p2 b02
    .venv/bin/python results/probes/summarize.py ema e0
    .venv/bin/python results/probes/summarize.py rotate_seeds r01s r05s r02s    # several prefixes
"""

import csv
import json
import re
import sys
from pathlib import Path

name, *prefixes = sys.argv[1:]
script = Path(f"results/probes/{name}.sh").read_text()
rows = []
for run in sorted(run for prefix in prefixes for run in Path("runs/probes").glob(f"{prefix}*")):
    final_file = run / "final.json"
    if not run.is_dir() or not final_file.is_file():
        continue
    final = json.loads(final_file.read_text())
    # the script's line `probe NAME $BASE --set KEY=VALUE ... &` (older scripts: `run NAME ...`)
    line = re.search(rf"(?:probe|run) {re.escape(run.name)}\b(.*?)(?:&|;|$)", script, re.M)
    override = re.sub(r"\$\w+", "", line.group(1)).strip()  # the base config's variable ($BASE, $B1, ...)
    merged = final.get("val_merged_classes", final.get("merged_classes"))  # (the key of the first runs)
    merged = {"merged_classes": "; ".join(merged)} if merged is not None else {}
    if "restart_merged_classes" in final:  # train.restarts: each initialisation's accuracy and merges
        each = zip(final["restart_val_accuracy"], final["restart_merged_classes"], strict=True)
        merged["restarts"] = " | ".join(f"{acc:.3f}: {'; '.join(lines) or 'no merge'}" for acc, lines in each)
    rows.append({
        "probe": run.name, "override": override.replace("--set ", "") or "(base)",
        "val_best": final["val_accuracy"], "best_epoch": final["best_epoch"], "epochs": final["epochs"],
        "val_labels": final["val_labels"], "lost_classes": "; ".join(final.get("val_lost_classes", [])),
        "weakest_class": min(range(10), key=lambda k: final["val_class_accuracy"][k]),
    } | merged)  # fmt: skip
output = Path(f"results/probes/{name}.csv")
if output.is_file():
    with output.open(newline="") as handle:
        measured = {row["probe"] for row in rows}
        rows += [row for row in csv.DictReader(handle) if row["probe"] not in measured]
    rows.sort(key=lambda row: row["probe"])
if not rows:
    sys.exit(f"no finished run matches runs/probes/{'|'.join(prefixes)}*; run results/probes/{name}.sh first")
with output.open("w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
    writer.writeheader()
    writer.writerows(rows)
for row in rows:
    print(row)
