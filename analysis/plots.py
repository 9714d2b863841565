"""PNG figures with matplotlib's object API (matplotlib.figure.Figure, Agg canvas; pyplot is not used).

Each function writes one PNG and returns its path, or returns None and a note saying why it was skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.paper import paper_table

COLORS = {"DMVAE_disc": "tab:blue", "DMVAE_cont": "tab:green", "MVAE": "tab:red"}
PAPER_STYLE = {"DMVAE_disc": ("DMVAE (paper)", "tab:blue"), "MVAE": ("MVAE (paper)", "tab:red")}
BASELINES = {"NN": "v", "LOGREG": "^", "RBM": "s", "VAE": "d", "JMVAE": "P"}  # Table 1's other rows: marker
DPI = 120
Result = tuple[Path | None, str]


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def accuracy_vs_paired(comparison: pd.DataFrame, dataset: str, metric: str, path: Path) -> Result:
    """Our models (mean, error bars = std over seeds) and the paper's Table 1 rows against the paired %."""
    ours = comparison[(comparison["dataset"] == dataset) & (comparison["metric"] == metric)]
    paper = paper_table()
    paper = paper[(paper["dataset"] == dataset) & (paper["metric"] == metric) & (paper["table"] == "1")]
    if ours.empty:
        return None, f"no runs of {dataset} with test {metric}"
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.add_subplot()
    for model, group in ours.groupby("model", sort=False):
        group = group.sort_values("paired_fraction")
        errors = group["std"].fillna(0.0)
        axes.errorbar(
            100 * group["paired_fraction"], group["mean"], yerr=errors, marker="o", capsize=4,
            color=COLORS.get(model), label=f"{model} (ours, n={int(group['n'].max())})",
        )  # fmt: skip
    for label, (name, color) in PAPER_STYLE.items():
        rows = paper[paper["label"] == label].sort_values("paired_fraction")
        if not rows.empty:
            axes.plot(100 * rows["paired_fraction"], rows["value"], "--", marker="x", color=color, alpha=0.7,
                      label=name)  # fmt: skip
    for model, marker in BASELINES.items():
        rows = paper[paper["model"] == model].sort_values("paired_fraction")
        if not rows.empty:
            axes.plot(100 * rows["paired_fraction"], rows["value"], ":", marker=marker, color="0.55",
                      markersize=4, linewidth=0.8, label=f"{model} (paper)")  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("paired data (%)")
    axes.set_ylabel(f"test {metric}")
    axes.set_title(f"{dataset}: {metric} against paired fraction")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    note = "" if not paper.empty else f"the paper has no {dataset} {metric} row with known paired fractions"
    return _save(figure, path), note


def search_history(trials: pd.DataFrame, path: Path, mode: str = "max") -> Result:
    """Each trial's validation metric in order of creation, errored trials marked, and the best so far."""
    if trials.empty:
        return None, "the experiment has no trials"
    trials = trials.sort_values("trial_number")
    metric = str(trials["metric"].iloc[0])
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    values = trials["metric_last"].astype(float)
    styles = {"TERMINATED": ("o", "tab:blue"), "STOPPED": ("v", "tab:gray"), "RUNNING": ("s", "tab:green"),
              "PAUSED": ("s", "tab:olive")}  # fmt: skip
    for state, (marker, color) in styles.items():
        rows = trials[trials["state"] == state]
        if not rows.empty:
            label = f"{state.lower()} ({len(rows)})" + (" by ASHA" if state == "STOPPED" else "")
            axes.scatter(rows["trial_number"], rows["metric_last"].astype(float), marker=marker, color=color,
                         zorder=3, label=label)  # fmt: skip
    errored = trials[trials["state"] == "ERROR"]
    if not errored.empty:
        axes.scatter(errored["trial_number"], [0.0] * len(errored), marker="x", color="black", zorder=3,
                     label=f"error ({len(errored)}), at 0")  # fmt: skip
    best = values.cummax() if mode == "max" else values.cummin()
    axes.step(trials["trial_number"], best, where="post", color="tab:orange", label="best so far")
    axes.set_xlabel("trial (order of creation)")
    axes.set_ylabel(metric)
    axes.set_title(f"search history: {trials['experiment'].iloc[0]}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path), ""


def importance(storage: str, study_name: str, path: Path, title: str = "") -> Result:
    """Hyperparameter importance of the stored Optuna study (tune.results.param_importances: Optuna's
    PED-ANOVA over every completed or stopped trial); the note says what was ranked and Optuna's caveats."""
    import optuna

    from tune.results import param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except Exception as error:  # noqa: BLE001 - a missing or unreadable storage is reported as a note
        return None, f"cannot open Optuna study {study_name} ({type(error).__name__}: {error})"
    scores, note = param_importances(study)
    if not scores:
        return None, note
    return importance_bars(scores, path, title), note


def importance_bars(scores: dict[str, float], path: Path, title: str = "") -> Path:
    """A bar per hyperparameter: importances as computed (and archived) by tune.results.param_importances."""
    names = list(scores)[::-1]
    figure = Figure(figsize=(6.4, 0.5 * len(names) + 1.5))
    axes = figure.add_subplot()
    axes.barh(names, [scores[name] for name in names], color="tab:purple")
    axes.set_xlabel("importance (Optuna PED-ANOVA)")
    axes.set_title(title or "hyperparameter importance")
    axes.grid(True, axis="x", alpha=0.3)
    return _save(figure, path)


def copy_run_figures(run: Path, out_dir: Path, prefix: str) -> list[Path]:
    """Copy RUN/figures/*.png to out_dir as <prefix>-<name>.png; regenerate them if the run has none."""
    source = Path(run) / "figures"
    if not source.is_dir() or not any(source.glob("*.png")):
        source = _regenerate(Path(run))
    copied = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for png in sorted(source.glob("*.png")) if source else []:
        target = out_dir / f"{prefix}-{png.name}"
        shutil.copyfile(png, target)
        copied.append(target)
    return copied


def _regenerate(run: Path) -> Path | None:
    """Load the run's saved weights and write its figures (needs the dataset); None if that is impossible."""
    if not (run / "checkpoints").is_dir():
        return None
    from dmvae.errors import UserError
    from dmvae.evaluation.figures import write_figures
    from dmvae.training.saved_run import load_run

    try:
        trainer = load_run(run, weights="best")
    except (UserError, FileNotFoundError):
        return None
    write_figures(trainer, run / "figures")
    return run / "figures"
