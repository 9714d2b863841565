"""`dmvae reproduce TABLE.yaml`: a table of the paper by the tool's own searches.

For each cell (analysis/tables.py): run its study on the tuning seed (warm-started from the best trial of
the nearest finished cell of the same model), export the best config, train the finals on the final seeds
(`dmvae tune final`), then write one CSV row per cell and seed and the report (`dmvae report` over every
cell's study and finals). Folders:

    OUT/studies/<cell>/            the cell's Ray/Optuna experiment (checkpoints, TensorBoard files)
    OUT/final/<cell>/seed-S/       the final run folders
    RESULTS/cells/<cell>/          cell.json (best trial, importances, timings, commits), best.yaml,
                                   trials.csv, carry.json (the study's Optuna trials, kept up to date while
                                   it runs: tune/carry.py) and final/seed-S/ (config.yaml, final.json,
                                   metrics.jsonl)
    RESULTS/results.csv            one row per cell and seed; RESULTS/summary.md: a row per cell
    RESULTS/report/report.md       the report over the archived final runs and every study (from its
                                   folder when on disk, else from its archived cell.json and trials.csv)

OUT (default runs/tables/<table>) holds the bulky run folders; RESULTS (default results/<table>) the small
files that are committed to the repository as data, so a later session (a fresh checkout without OUT)
skips the cells already done and warm-starts from them.

Rerunning finishes what is missing: a finished study is not rerun, an interrupted one resumes (from its
folder, or where the folder is gone, from its carried trials in a new experiment), a finished final run is
skipped and an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from analysis.archive import (
    BEST,
    CELL_FILE,
    FINAL,
    RESULT_COLUMNS,
    TRIALS,
    archive_finals,
    archived_search,
    final_rows,
    has_final,
    read_best_config,
    read_state,
    restore_finals,
    unpin_data_root,
    write_trials,
)
from analysis.tables import Cell, Table, load_table
from dmvae.config import RunConfig
from dmvae.errors import UserError
from tune.study import REPO, seed_words, trials_word

STUDIES = "studies"  # OUT/studies/<cell>/: one Ray/Optuna experiment per cell, named after it
RESULTS = "results.csv"
TERMINAL = ("TERMINATED", "STOPPED", "ERROR")


def commit(root: Path = REPO) -> str:
    """The checked-out commit of this repository, with +dirty when tracked code or configs differ from it,
    or 'unknown'. results/ and README.md do not count: reproduce and `dmvae results` write them."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results",
             ":(exclude)README.md"],
            cwd=root, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


class Reproduction:
    def __init__(
        self, table: Table, out: str | Path, results: str | Path, address: str | None = None, cpus: float = 1
    ):
        self.table = table
        self.out = Path(out).expanduser().resolve()
        self.results = Path(results).expanduser().resolve()
        self.address = address
        self.cpus = cpus

    def say(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    # --- the pipeline ------------------------------------------------------------------------------------
    def run(self, cells: list[Cell]) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "table.yaml").write_text(yaml.safe_dump(self.describe(), sort_keys=False))
        for number, cell in enumerate(cells, start=1):
            self.say(f"cell {number}/{len(cells)}: {cell.name}")
            self.run_cell(cell)
        self.write_results()
        return self.write_report()

    def archive(self, cell: Cell) -> Path:
        return self.results / "cells" / cell.folder

    def study_folder(self, cell: Cell) -> Path:
        return self.out / STUDIES / cell.folder

    def done(self, cell: Cell) -> bool:
        return self.finished(self.archive(cell))

    def finished(self, archive: Path) -> bool:
        """The archived cell folder holds every final seed's final.json."""
        return all(has_final(archive / FINAL, seed) for seed in self.table.final_seeds)

    def run_cell(self, cell: Cell) -> None:
        if self.done(cell):
            self.say(f"  finished earlier: {self.archive(cell)}")
            ran = self.cell_state(cell).get("final_overrides")
            if ran is not None and ran != cell.final_overrides:
                self.say(
                    f"  warning: its finals ran with {' '.join(ran) or 'no settings'}, but the table now "
                    f"says {' '.join(cell.final_overrides) or 'none'}; to rerun them, delete "
                    f"{self.archive(cell) / FINAL} and {self.out / FINAL / cell.folder}"
                )
            return
        if self.take_shared(cell):
            return
        self.archive(cell).mkdir(parents=True, exist_ok=True)
        if not (self.archive(cell) / BEST).is_file():
            started, state = time.time(), self.cell_state(cell)
            self.update_state(cell, tuning_commit=state.get("tuning_commit", commit()))  # the study's code
            try:
                self.tune(cell)
                self.export(cell)  # writes the best trial into cell.json
                self.update_state(cell, tuned_at=time.strftime("%Y-%m-%d %H:%M:%S"))
            finally:  # every sitting of the study counts, an interrupted one too
                sittings = self.cell_state(cell).get("tuning_driver_seconds", 0) + time.time() - started
                self.update_state(cell, tuning_driver_seconds=round(sittings, 1))
        else:
            self.say(f"  study done: {self.archive(cell) / BEST}")
        self.finals(cell, self.cell_state(cell))
        self.archive_finals(cell)

    def take_shared(self, cell: Cell) -> bool:
        """Copy the cell from a table of `share_cells_with` that defines it alike, under any name, and has
        finished it (its results folder beside this one: RESULTS/../<other table>); True when copied."""
        for path in self.table.share_cells_with:
            other = load_table(path)
            if other.name == self.table.name:
                continue
            twin = self.table.shared_cell(cell, other)
            if twin is None:
                continue
            source = self.results.parent / other.name / "cells" / twin.folder
            if not self.finished(source):
                self.say(
                    f"  {other.name} has not finished its {twin.name}, which is this cell: running it here"
                )
                continue
            shutil.copytree(source, self.archive(cell), dirs_exist_ok=True)
            state = self.cell_state(cell)
            state |= {"cell": cell.name, "shared_from": f"{other.name} {twin.name}"}
            self.save_state(cell, state)
            self.say(f"  taken from {other.name}'s {twin.name}, the same cell, finished there: {source}")
            return True
        return False

    def archive_finals(self, cell: Cell) -> None:
        archive_finals(self.out / FINAL / cell.folder, self.archive(cell) / FINAL, self.table.final_seeds)

    def tune(self, cell: Cell) -> None:
        from tune import runner
        from tune.carry import CARRY_FILE, CarryCallback, continue_study, finished_count, read_carry
        from tune.experiment import create_experiment, open_experiment
        from tune.results import trial_rows

        folder = self.study_folder(cell)
        study = cell.study()
        label = self.model_label(study)
        if label != cell.label:
            raise UserError(f"cell {cell.name}: its study trains {label}, not {cell.label}; check the table")
        carry = self.archive(cell) / CARRY_FILE
        if (folder / "study.yaml").is_file():
            from ray import tune

            experiment = open_experiment(folder)
            rows = trial_rows(experiment) if tune.Tuner.can_restore(str(folder)) else []
            finished = [row for row in rows if row.state in TERMINAL]
            if len(finished) >= experiment.study.num_samples:
                return
            if rows:
                done = f"{len(finished)}/{trials_word(experiment.study.num_samples)} done"
                self.say(f"  study: resuming ({done})")
                runner.resume(experiment, address=self.address)
                return
            shutil.rmtree(folder)  # made but killed before Ray saved any state: nothing to lose
        carried = read_carry(carry)  # the study went on in an experiment folder that is gone
        warm = None if carried else self.warm_start(cell)
        if warm:
            study.points_to_evaluate = study.initial_points(warm)
        self.say(
            f"  study: {trials_word(study.num_samples)} x <= {study.max_epochs} epochs, "
            f"{seed_words(study.trial_seeds())}, {study.run_config().data.val_labels} validation labels"
            + (" (warm start from a neighbouring cell)" if warm else "")
        )
        finished = finished_count(carried)
        remaining = study.num_samples - finished
        if carried:
            study.num_samples, study.points_to_evaluate = max(remaining, 1), None
            self.say(
                f"  going on from {carry} (its folder is gone): {finished} finished, "
                f"{len(carried) - finished} interrupted (trained again), {max(remaining, 0)} to run"
            )
        experiment = create_experiment(study, cell.folder, str(folder.parent))
        continue_study(experiment, carried)
        if remaining > 0:
            runner.run(experiment, address=self.address, callbacks=[CarryCallback(experiment, carry)])

    def warm_start(self, cell: Cell) -> dict[str, Any] | None:
        """For enqueue, the nearest (log paired fraction) finished cell of the same model (DMVAE_disc/x
        too; here or in `warm_start_from`): its best trial's values, and its exported config's for keys only
        we search (a dimension a table adds); None when there is none."""
        tables = [(self.table, self.results)] + [
            (t, self.results.parent / t.name) for t in map(load_table, self.table.warm_start_from)
        ]
        done = [
            (other.fraction, folder, state) for table, results in tables for other in table.cells
            if other.label == cell.label and (table is not self.table or other.fraction != cell.fraction)
            and ((folder := results / "cells" / other.folder) / CELL_FILE).is_file()
            and "best_params" in (state := read_state(folder))
        ]  # fmt: skip
        if not done:
            return None
        _, folder, nearest = min(done, key=lambda found: abs(math.log(found[0] / cell.fraction)))
        study, trained = cell.study(), read_best_config(folder)  # older exports lack newer keys: defaults
        point = study.config_point(RunConfig.from_dict(trained)) if trained else {}
        keys = {param.key for param in study.space}
        return point | {key: value for key, value in nearest["best_params"].items() if key in keys} or None

    def export(self, cell: Cell) -> None:
        from ray import tune

        from tune.carry import CARRY_FILE, earlier_seconds, save_carry, study_rows
        from tune.experiment import open_experiment
        from tune.results import export_best, importances, ranked

        experiment = open_experiment(self.study_folder(cell))
        carried = save_carry(experiment, self.archive(cell) / CARRY_FILE)
        rows = study_rows(experiment, carried)
        best = ranked(experiment, rows)
        if not best:
            raise UserError(f"cell {cell.name}: no trial of its study reported {experiment.study.metric}")
        export_best(experiment, self.archive(cell) / BEST, rows=rows)
        unpin_data_root(self.archive(cell) / BEST)
        write_trials(rows, experiment.study.metric, self.archive(cell) / TRIALS)
        state = self.cell_state(cell)
        state |= {"best_params": best[0].params, "best_trial": best[0].trial_id, "trials": len(rows)}
        state["study_seed"] = experiment.study.seed  # the TPE sampler's
        state["importance"], state["importance_note"] = importances(experiment)
        from analysis.load import experiment_info

        ran = tune.Tuner.can_restore(str(experiment.folder))  # not if every trial was carried
        info = experiment_info(experiment.folder) if ran else {"trial_seconds": 0.0, "wall_seconds": 0.0}
        compute, wall = earlier_seconds(carried, experiment)  # spent by the experiments it went on from
        state["tuning_trial_seconds"] = info["trial_seconds"] + compute
        state["tuning_wall_seconds"] = (info["wall_seconds"] or 0.0) + wall
        state |= {"best_val": best[0].metric, "best_epochs": best[0].epochs}
        self.save_state(cell, state)
        self.say(f"  best trial {best[0].trial_id}: {experiment.study.metric} {best[0].metric:.4f}")

    def finals(self, cell: Cell, state: dict[str, Any]) -> None:
        from tune.final import format_summary, run_final

        folder = self.out / FINAL / cell.folder
        seeds = self.table.final_seeds
        self.say(f"  finals: seeds {seeds}")
        folder.mkdir(parents=True, exist_ok=True)
        self.restore_finals(cell, state, folder)
        now = commit()
        state.setdefault("final_commit", now)
        state["final_overrides"] = cell.final_overrides
        pending = [seed for seed in seeds if not has_final(folder, seed)]
        # the commit each seed trains at (a resumed seed: the last): later seeds may train sessions later
        state.setdefault("final_commits", {}).update({str(seed): now for seed in pending})
        self.save_state(cell, state)
        _, summary = run_final(
            self.archive(cell) / BEST,
            seeds,
            folder,
            cell.final_overrides,
            address=self.address,
            cpus=self.cpus,
        )
        for line in format_summary(summary).splitlines():
            self.say(f"  {line}")
        if summary["failed"]:
            raise UserError(f"cell {cell.name}: final seeds {summary['failed']} failed; rerun to retry them")

    def restore_finals(self, cell: Cell, state: dict[str, Any], folder: Path) -> None:
        """Archived final runs that OUT lacks go back into it (run_final then skips them), unless they ran
        with other final settings than the cell's now."""
        if state.get("final_overrides", cell.final_overrides) == cell.final_overrides:
            for seed in restore_finals(self.archive(cell) / FINAL, folder, self.table.final_seeds):
                self.say(f"  seed {seed}: finished earlier, taken from {self.archive(cell) / FINAL}")

    # --- cell state --------------------------------------------------------------------------------------
    def cell_state(self, cell: Cell) -> dict[str, Any]:
        exists = (self.archive(cell) / CELL_FILE).is_file()
        return read_state(self.archive(cell)) if exists else {"cell": cell.name}

    def save_state(self, cell: Cell, state: dict[str, Any]) -> None:
        path = self.archive(cell) / CELL_FILE
        path.write_text(json.dumps(state, indent=2, default=str) + "\n")

    def update_state(self, cell: Cell, **values: Any) -> None:
        self.save_state(cell, self.cell_state(cell) | values)

    def command(self, cell: Cell) -> str:
        source = self.table.source or f"tune/tables/{self.table.name}.yaml"
        return f"dmvae reproduce {source} --cells '{cell.name}'"

    @staticmethod
    def model_label(study) -> str:
        from analysis.load import model_label

        model = study.run_config().model
        return model_label(model.kind, model.shared)

    def describe(self) -> dict[str, Any]:
        t = self.table
        return {
            "name": t.name, "dataset": t.dataset, "tuning_seed": t.tuning_seed, "final_seeds": t.final_seeds,
            "val_labels": t.val_labels,
            "cells": {c.name: {"study": str(c.study_file), "set": c.overrides, "final": c.final_overrides}
                      for c in t.cells},
        }  # fmt: skip

    # --- results -----------------------------------------------------------------------------------------
    def write_results(self) -> Path:
        for cell in self.table.cells:
            if (self.archive(cell) / CELL_FILE).is_file():
                self.archive_finals(cell)
                self.carry_unfinished(cell)
        self.results.mkdir(parents=True, exist_ok=True)
        path = self.results / RESULTS
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS)
            writer.writeheader()
            for cell in self.table.cells:
                if (self.archive(cell) / CELL_FILE).is_file():
                    writer.writerows(final_rows(self.table, cell, self.archive(cell)))
        from analysis.summary import markdown, read_results

        summary = markdown(read_results(path), self.table.paper_table)
        (self.results / "summary.md").write_text(f"# {self.table.name}\n\n" + summary)
        self.say(f"results: {path} (summary: {self.results / 'summary.md'})")
        return path

    def carry_unfinished(self, cell: Cell) -> None:
        """Write the carry file of a study not yet exported from its folder (e.g. `--report-only`)."""
        from tune.carry import CARRY_FILE, save_carry
        from tune.experiment import open_experiment

        if (self.study_folder(cell) / "study.yaml").is_file() and not (self.archive(cell) / BEST).is_file():
            save_carry(open_experiment(self.study_folder(cell)), self.archive(cell) / CARRY_FILE)

    def went_on(self, cell: Cell) -> bool:
        """The cell's study went on from trials that its folder lacks (tune.carry), and was exported."""
        from tune.carry import CARRY_FILE, earlier, read_carry
        from tune.experiment import open_experiment

        carried = read_carry(self.archive(cell) / CARRY_FILE)
        exported = (self.archive(cell) / TRIALS).is_file()
        return exported and bool(earlier(carried, open_experiment(self.study_folder(cell))))

    def write_report(self) -> Path:
        from analysis.report import write_report

        inputs, archived = [], []
        for cell in self.table.cells:
            study, finals = self.study_folder(cell), self.archive(cell) / FINAL
            if (study / "study.yaml").is_file() and not self.went_on(cell):
                inputs.append(study)
            elif (search := archived_search(self.archive(cell), cell, self.command(cell))) is not None:
                archived.append(search)  # a later session: the study's folder is gone, its archive is not
            if finals.is_dir():
                inputs.append(finals)
        if not inputs and not archived:
            return self.results / RESULTS
        report = self.results / "report"
        paper = ["--paper-table", self.table.paper_table] if self.table.paper_table != "1" else []
        argv = [*map(str, inputs), "--out", str(report), *paper]
        path = write_report(inputs, report, argv=argv, paper_table=self.table.paper_table, searches=archived)
        self.say(f"report: {path}")
        return path
