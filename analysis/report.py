"""`dmvae report`: DIR/report.md (comparison, paper's numbers, figures, searches, what was run) and
DIR/comparison.csv, from run folders and tune experiment folders."""

from __future__ import annotations

import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import compare as comparing
from analysis import environment, load, plots
from analysis.markdown import cell, markdown_table
from analysis.paper import SOURCES, paper_table
from tune.study import trials_word

FIGURES = "figures"
TITLES = {"1": "Table 1 — MNIST / FMNIST accuracy", "2a": "Table 2a — CelebA", "7": "Table 7 — readable rows",
          "8": "Table 8 — ablation"}  # fmt: skip
# a study as the report shows it: load.experiment_info's dict and load.load_experiment's rows
Search = tuple[dict[str, Any], pd.DataFrame]


def write_report(
    paths: list[str | Path],
    out_dir: str | Path,
    argv: list[str] | None = None,
    paper_table: str = "1",
    searches: Sequence[Search] = (),
) -> Path:
    """report.md over run folders and tune experiments; results are compared with the paper's table
    `paper_table` first (analysis.paper.paper_value). `searches`: studies whose experiment folders are gone,
    as (info, trials) in the shapes of load.experiment_info and load.load_experiment, with the archived
    importances in info["importance"] (`dmvae reproduce` in a fresh checkout: its results/ archive)."""
    started = time.perf_counter()
    run_dirs, experiment_dirs = load.find_inputs(paths)
    if not run_dirs and not experiment_dirs and not searches:
        from dmvae.errors import UserError

        raise UserError("no run folders or tune experiments found in " + " ".join(map(str, paths)))
    out = Path(out_dir).expanduser().resolve()
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    runs = load.load_runs(run_dirs)
    comparison = comparing.compare(runs, paper_table)
    comparing.to_csv(comparison, out / "comparison.csv")
    experiments = [(load.experiment_info(path), load.load_experiment(path)) for path in experiment_dirs]
    experiments += list(searches)

    parts = [_header(argv, run_dirs, experiment_dirs, len(searches))]
    parts.append(_results(comparison, out, paper_table))
    parts.append(_best_run_figures(runs, out))
    parts += [_search(info, trials, out) for info, trials in experiments]
    parts.append(_paper())
    parts.append(
        _what_was_run(argv, runs, experiments, run_dirs + experiment_dirs, time.perf_counter() - started)
    )
    path = out / "report.md"
    text = "\n".join(part.rstrip() + "\n" for part in parts if part)
    path.write_text(text.replace(f"{Path.cwd().resolve()}/", ""))  # paths under the current folder: relative
    return path


def _link(out: Path, path: Path, caption: str) -> str:
    return f"![{caption}]({path.relative_to(out).as_posix()})\n"


def _header(argv, run_dirs, experiment_dirs, archived: int = 0) -> str:
    command = (
        "dmvae report " + " ".join(shlex.quote(a) for a in argv) if argv else "analysis.report.write_report"
    )
    return (
        "# DMVAE vs MVAE vs the paper\n\n"
        f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} by `{command}` from {len(run_dirs)} final run(s) and "
        f"{len(experiment_dirs)} tune experiment(s)"
        + (f", and {archived} search(es) archived without their experiment folder" if archived else "")
        + ". Paper: Lee & Pavlovic, NeurIPS 2020 (DMVAE); MVAE: "
        "Wu & Goodman, NeurIPS 2018. Test metrics come from final runs only; searches select on validation.\n"
    )


def _results(comparison: pd.DataFrame, out: Path, paper_table: str = "1") -> str:
    text = ["## Results: test metrics over seeds\n"]
    if comparison.empty:
        text.append("No final runs were given: the comparison needs run folders (`dmvae train --out DIR` or "
                    "`dmvae tune final`), not only searches.\n")  # fmt: skip
        return "\n".join(text)
    text.append(
        "Mean and sample standard deviation (ddof 1; '-' for one seed) over seeds of the test metric with "
        f"the best-validation weights. `paper` is Table {paper_table} where it has the setting, else Table "
        f"{'8' if paper_table == '1' else '1'} (DMVAE_disc is the paper's DMVAE; see the notes below). "
        "Comparison also in `comparison.csv`.\n"
    )
    text.append(comparing.to_markdown(comparison))
    if note := comparing.coherence_note(comparison):
        text.append(note)
    for (dataset, metric), _ in comparison.groupby(["dataset", "metric"], sort=False):
        name = f"{dataset}-{metric}-vs-paired.png"
        path, note = plots.accuracy_vs_paired(comparison, dataset, metric, out / FIGURES / name)
        if path:
            text.append(_link(out, path, f"{dataset} {metric} against the paired fraction"))
        if note:
            text.append(f"_{note}._\n")
    return "\n".join(text)


def _best_run_figures(runs: pd.DataFrame, out: Path) -> str:
    if runs.empty:
        return ""
    text = ["## Figures of the best final models\n",
            "Per model, the run with the best validation metric: cross-synthesis from labels (private latent "
            "from the prior, and from style images), traversal of the shared latent, 2-D embeddings of "
            "private and shared latents (paper Fig. 2, 10-14).\n"]  # fmt: skip
    key = "val_accuracy" if "val_accuracy" in runs else "test_accuracy"
    for model, group in runs.groupby("model", sort=False):
        best = group.sort_values(key, ascending=False, na_position="last").iloc[0]
        prefix = f"best-{model}-{best['dataset']}-seed{best['seed']}"
        copied = plots.copy_run_figures(Path(best["run"]), out / FIGURES, prefix)
        text.append(f"### {model}: `{best['run']}` (seed {best['seed']}, validation {cell(best.get(key))}, "
                    f"test {cell(best.get('test_accuracy'))})\n")  # fmt: skip
        if not copied:
            text.append("_This run has no figures and no saved weights to draw them from._\n")
        for path in copied:
            text.append(_link(out, path, f"{model} {path.stem.split('-')[-1]}"))
    return "\n".join(text)


def _search(info: dict, trials: pd.DataFrame, out: Path) -> str:
    name = info["name"]
    text = [f"## Search: {name}\n"]
    states = trials["state"].value_counts().to_dict() if not trials.empty else {}
    summary = ", ".join(f"{count} {state.lower()}" for state, count in sorted(states.items()))
    wall = info["wall_seconds"]
    text.append(
        f"Study `{info['study']}`: {trials_word(len(trials))} ({summary or 'none'}), "
        f"up to {info['max_epochs']} epochs each, metric `{info['metric']}` ({info['mode']}), "
        f"TPE seed {info['seed']}; wall time {_duration(wall)}, "
        f"trial time {_duration(info['trial_seconds'])}. Folder `{info['folder']}`.\n"
    )
    if not trials.empty:
        usable = trials.dropna(subset=["metric_last"])
        if not usable.empty:
            best = usable.sort_values("metric_last", ascending=info["mode"] != "max").iloc[0]
            text.append(f"Best: trial {best['trial_number']} (`{best['trial_id']}`), {info['metric']} "
                        f"{best['metric_last']:.4f} after {best['epochs']} epochs.\n")  # fmt: skip
        params = [c for c in trials.columns if c.startswith("param.")]
        headers = [
            "#",
            "trial",
            "state",
            "epochs",
            info["metric"],
            *[".".join(c.split(".")[-2:]) for c in params],
        ]
        columns = ["trial_number", "trial_id", "state", "epochs", "metric_last", *params]
        formats = {c: _general for c in params} | {"metric_last": lambda v: cell(v, 4)}
        text.append(markdown_table(trials.sort_values("trial_number"), columns, headers, formats))
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    path, note = plots.search_history(trials, out / FIGURES / f"search-{slug}.png", info["mode"])
    text.append(
        _link(out, path, f"search history of {name}") if path else f"_Search history skipped: {note}._\n"
    )
    figure, title = out / FIGURES / f"importance-{slug}.png", f"hyperparameter importance: {name}"
    if "importance" in info:  # archived with the study's results: its storage is not on this machine
        scores, note = info["importance"], info.get("importance_note", "")
        path = plots.importance_bars(scores, figure, title) if scores else None
    else:
        path, note = plots.importance(_storage(info), info["optuna_study"], figure, title)
    text.append(
        _link(out, path, f"importance of {name}") if path else f"_Importance plot skipped: {note}._\n"
    )
    if path and note:
        text.append(f"_Importance: {note}._\n")
    return "\n".join(text)


def _storage(info: dict) -> str:
    """The recorded Optuna storage; for a moved experiment folder, its own optuna.db."""
    storage = info["optuna_storage"]
    local = Path(info["folder"]) / "optuna.db"
    if (
        storage.startswith("sqlite:///")
        and not Path(storage[len("sqlite:///") :]).exists()
        and local.is_file()
    ):
        return f"sqlite:///{local}"
    return storage


def _paper() -> str:
    table = paper_table()
    text = ["## The paper's numbers\n"]
    for name, group in table.groupby("table", sort=False):
        text.append(f"### {TITLES.get(name, 'Table ' + name)}\n")
        columns = list(dict.fromkeys(group["column"]))
        wide = group.pivot_table(index=["dataset", "metric", "model"], columns="column", values="value",
                                 sort=False).reset_index()  # fmt: skip
        headers = [
            "dataset",
            "metric",
            "model",
            *[c if c.startswith(("unknown", "cross")) else c + " %" for c in columns],
        ]
        formats = {column: _general for column in columns}
        text.append(markdown_table(wide, ["dataset", "metric", "model", *columns], headers, formats))
        text.append(f"_Source: {SOURCES[name]}_\n")
    return "\n".join(text)


def _what_was_run(argv, runs: pd.DataFrame, experiments, inputs: list[Path], seconds: float) -> str:
    text = ["## What was run\n", "### Commands\n"]
    recorded = environment.recorded_commands(inputs)
    if recorded:
        text.append("Recorded (commands.txt / final_runs.json):\n")
        text.append("```\n" + "\n".join(recorded) + "\n```\n")
    equivalent = [info.get("command") or environment.equivalent_tune_command(info) for info, _ in experiments]
    equivalent += [environment.equivalent_train_command(Path(run)) for run in runs.get("run", [])]
    if argv:
        equivalent.append("dmvae report " + " ".join(shlex.quote(a) for a in argv))
    text.append("Equivalent (from the stored study files and resolved run configs):\n")
    text.append("```\n" + "\n".join(equivalent) + "\n```\n")
    text.append("### Seeds\n")
    if not runs.empty:
        for (dataset, fraction, model), group in runs.groupby(
            ["dataset", "paired_fraction", "model"], sort=False
        ):
            seeds = " ".join(str(s) for s in sorted(group["seed"]))
            text.append(f"- final runs {model}, {dataset} at {100 * fraction:g} % paired: seeds {seeds}")
    for info, _ in experiments:
        text.append(
            f"- search {info['name']}: TPE sampler seed {info['seed']}, "
            f"run config seed {info['base']['seed']}"
        )
    text.append("\n### Software\n")
    text.append(
        markdown_table(pd.DataFrame(environment.package_versions().items(), columns=["package", "version"]))
    )
    text.append("### Hardware\n")
    text.append(markdown_table(pd.DataFrame(environment.hardware().items(), columns=["item", "value"])))
    text.append("### Wall time\n")
    rows = []
    for info, _ in experiments:
        rows.append(
            {"what": f"search {info['name']} (first trial start to last end)", "time": info["wall_seconds"]}
        )
    if not runs.empty and "seconds" in runs:
        rows.append(
            {"what": f"{len(runs)} final run(s), training (sum)", "time": float(runs["seconds"].sum())}
        )
    rows.append({"what": "this report", "time": seconds})
    text.append(markdown_table(pd.DataFrame(rows), formats={"time": _duration}))
    text.append(f"Python: `{sys.executable}`\n")
    return "\n".join(text)


def _general(value) -> str:
    """Paper values as printed (0.93 stays 0.93), sampled parameters to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) and not math.isnan(value) else cell(value)


def _duration(seconds) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
