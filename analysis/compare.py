"""DMVAE vs MVAE vs the paper: per dataset x paired fraction x model, statistics over seeds of final runs.

Input: the DataFrame of `analysis.load.load_runs` (columns dataset, paired_fraction, model, seed, epochs,
discarded_epochs, seconds and final.json's test_accuracy / test_f1, and test_coherence /
coherence_classifier_accuracy where the runs have them). Output: one row per dataset x paired fraction x
model x metric with n seeds, mean, std (ddof=1; NaN for a single seed), the paper's value and table, ours
minus the paper's, the coherence's mean and std over the same seeds and the coherence classifier's own test
accuracy (NaN without), the mean epochs of the kept model and of the initialisations train.restarts
discarded, and mean wall seconds (both count).
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.markdown import cell, markdown_table
from analysis.paper import paper_value

MODEL_ORDER = {"DMVAE_disc": 0, "DMVAE_cont": 1, "MVAE": 2}
METRICS = {"accuracy": "test_accuracy", "f1": "test_f1"}  # metric -> final.json key (f1: CelebA only)
COLUMNS = [
    "dataset", "paired_fraction", "model", "metric", "n", "seeds", "mean", "std", "paper", "diff",
    "paper_table", "coherence", "coherence_std", "coherence_classifier_accuracy", "epochs",
    "discarded_epochs", "seconds",
]  # fmt: skip


def compare(runs: pd.DataFrame, paper_table: str = "1") -> pd.DataFrame:
    rows = []
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    keys = ["dataset", "paired_fraction", "model"]
    for (dataset, fraction, model), group in runs.groupby(keys, sort=False, dropna=False):
        for metric, column in METRICS.items():
            if column not in group or group[column].dropna().empty:
                continue
            values = group[column].dropna().astype(float)
            paper = paper_value(dataset, model, fraction, metric, paper_table)
            mean = float(values.mean())
            coherence = group["test_coherence"].dropna().astype(float) if "test_coherence" in group else []
            rows.append({
                "dataset": dataset, "paired_fraction": float(fraction), "model": model, "metric": metric,
                "n": int(len(values)),
                "seeds": " ".join(str(int(s)) for s in sorted(group.loc[values.index, "seed"].dropna())),
                "mean": mean,
                "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                "paper": paper[0] if paper else math.nan,
                "diff": mean - paper[0] if paper else math.nan,
                "paper_table": paper[1] if paper else None,
                "coherence": float(coherence.mean()) if len(coherence) else math.nan,
                "coherence_std": float(coherence.std(ddof=1)) if len(coherence) > 1 else math.nan,
                "coherence_classifier_accuracy": _mean(group, "coherence_classifier_accuracy"),
                "epochs": _mean(group, "epochs"), "discarded_epochs": _mean(group, "discarded_epochs"),
                "seconds": _mean(group, "seconds"),
            })  # fmt: skip
    frame = pd.DataFrame(rows, columns=COLUMNS)
    order = frame["model"].map(lambda m: MODEL_ORDER.get(m, len(MODEL_ORDER)))
    frame = frame.assign(_order=order).sort_values(["dataset", "paired_fraction", "_order", "metric"])
    return frame.drop(columns="_order").reset_index(drop=True)


def _mean(group: pd.DataFrame, column: str) -> float:
    if column not in group or group[column].dropna().empty:
        return math.nan
    return float(group[column].dropna().astype(float).mean())


def _percent(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:g} %"


def _signed(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.3f}"


def _seconds(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def to_markdown(comparison: pd.DataFrame) -> str:
    headers = [
        "dataset", "paired", "model", "metric (test)", "seeds", "mean", "std", "paper", "ours - paper",
        "paper table", "epochs", "wall s / run",
    ]  # fmt: skip
    columns = [
        "dataset", "paired_fraction", "model", "metric", "seeds", "mean", "std", "paper", "diff",
        "paper_table", "epochs_shown", "seconds",
    ]  # fmt: skip
    formats = {
        "paired_fraction": _percent, "diff": _signed, "seconds": _seconds, "paper_table": lambda v: cell(v),
    }  # fmt: skip
    epochs = zip(comparison["epochs"], comparison["discarded_epochs"], strict=True)
    comparison = comparison.assign(epochs_shown=[_epochs(kept, discarded) for kept, discarded in epochs])
    if has_coherence(comparison):
        comparison = comparison.assign(
            coherence_shown=[
                _mean_std(m, s)
                for m, s in zip(comparison["coherence"], comparison["coherence_std"], strict=True)
            ]
        )
        at = columns.index("paper_table") + 1
        columns.insert(at, "coherence_shown")
        headers.insert(at, "coherence (test)")
    return markdown_table(comparison, columns, headers, formats)


def _epochs(epochs, discarded) -> str:
    """The kept model's mean epochs, + those of the initialisations train.restarts discarded (if any)."""
    return cell(epochs, 1) + (f" + {discarded:.1f}" if discarded > 0 else "")  # NaN > 0 is False


def has_coherence(comparison: pd.DataFrame) -> bool:
    return "coherence" in comparison and bool(comparison["coherence"].notna().any())


def _mean_std(mean, std) -> str:
    """'0.912 ± 0.010'; the mean alone for one seed; '-' without a value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return cell(mean) if isinstance(std, float) and math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def coherence_note(comparison: pd.DataFrame) -> str:
    """What the coherence column is, and each dataset's classifier test accuracy ('' without coherence)."""
    if not has_coherence(comparison):
        return ""
    rows = comparison.dropna(subset=["coherence_classifier_accuracy"])
    accuracies = []
    for dataset, group in rows.groupby("dataset", sort=False):
        values = sorted({round(float(v), 4) for v in group["coherence_classifier_accuracy"]})
        accuracies.append(f"{dataset} {' / '.join(f'{v:.4f}' for v in values)}")
    return (
        "`coherence (test)`: the fraction of images cross-synthesised from each label (z_s from the label "
        "alone, the private latent from its prior; MVAE samples z_s) that a separate classifier assigns to "
        "that label, averaged over classes (paper Table 2a's last column), with the best-validation weights; "
        "mean ± std over seeds. The coherence classifiers' own test accuracy: "
        + ", ".join(accuracies)
        + ".\n"
    )


def to_csv(comparison: pd.DataFrame, path) -> None:
    comparison.to_csv(path, index=False)
