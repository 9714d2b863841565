"""A table of the paper as code: its cells (dataset x paired fraction x model), the study that tunes each
cell, the final seeds and epochs, from one YAML file (see tune/tables/).

    name: table1_mnist
    dataset: mnist
    fractions: [0.001, 0.002]              # paired fractions (0.002 = 0.2 %)
    models:                                # label -> study file, or {study: FILE, set: {key: value},
                                           # final: {key: value}}; LABEL/variant names a variant of a
                                           # model (an ablation)
      DMVAE_disc: tune/studies/dmvae_mnist.yaml
      MVAE: tune/studies/mvae_mnist.yaml
    tuning_seed: 10                        # the searches' data seed; never one of final_seeds
                                           # (or tuning_seeds: [10, 11, 12]: each trial trains on
                                           # each and is scored by the mean; study field data_seeds)
    final_seeds: [0, 1, 2]
    val_labels: 1000                       # labelled validation examples that select models
    study: {num_samples: 16, max_epochs: 20}   # study fields for every cell (the TPE seed: one per
                                           # dataset, model and fraction unless set here);
                                           # space.<key>: {...} adds a dimension to every study's space
    set: {train.augment_shift: 2}          # run config settings of every cell (a model's or a cell's
                                           # own `set` wins); the finals inherit them from the study
    final: {train.epochs: 50}              # run config overrides of the final runs
    cells:                                 # optional, per cell: {study: {...}, set: {...}, final: {...}}
      "DMVAE_disc@0.1": {study: {num_samples: 24}}
    share_cells_with: [table1_mnist]       # optional: a cell that one of these tables defines alike
                                           # (study, settings, final settings; its final seeds
                                           # include ours) is taken from its results
    warm_start_from: [table1_mnist_mode]   # optional: these tables' finished cells of the same model
                                           # (any fraction, the same one too) also warm-start our studies
    paper_table: 8                         # optional: compare with the paper's Table 8 first (default 1)
    base: table1_mnist_rotate20            # optional: start from that table's fields; ours replace its
                                           # own, except study, set and final, which merge key by key
                                           # (ours win); name and note are never inherited;
                                           # tuning_seed and tuning_seeds replace each other

Every mistake is a one-line `UserError`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.paper import PAPER_TABLES
from dmvae.config import DATASETS, read_yaml_mapping
from dmvae.errors import UserError
from tune.study import REPO, Study, load_study

FIELDS = (
    "name", "dataset", "fractions", "models", "tuning_seed", "tuning_seeds", "final_seeds", "val_labels",
    "study", "final", "cells", "share_cells_with", "note", "set", "warm_start_from", "paper_table",
    "base",
)  # fmt: skip
MERGED_FIELDS = ("study", "set", "final")  # a table with a base merges these with the base's, key by key
OWN_FIELDS = ("name", "note")  # what a table never takes from its base
EITHER_OF = {"tuning_seed": "tuning_seeds", "tuning_seeds": "tuning_seed"}  # a table's one replaces the other


@dataclass
class Cell:
    """One cell of a table: a model label at one paired fraction, tuned by one study."""

    model: str  # the model label (DMVAE_disc, DMVAE_cont, MVAE), or LABEL/variant
    fraction: float
    study_file: Path
    overrides: list[str]  # `dmvae tune run --set` strings: run config keys and study.<field>
    final_overrides: list[str]  # `dmvae tune final --set` strings

    @property
    def name(self) -> str:
        return f"{self.model}@{100 * self.fraction:g}"

    @property
    def folder(self) -> str:
        return self.name.replace("/", "-")

    @property
    def label(self) -> str:
        """The model label the cell's study must train (the part before a '/variant')."""
        return self.model.split("/")[0]

    def study(self) -> Study:
        return load_study(self.study_file, self.overrides)


@dataclass
class Table:
    name: str
    dataset: str
    tuning_seeds: list[int]
    final_seeds: list[int]
    val_labels: int | None
    cells: list[Cell] = field(default_factory=list)
    note: str = ""
    share_cells_with: list[Path] = field(default_factory=list)  # table files whose equal cells are reused
    warm_start_from: list[Path] = field(default_factory=list)  # table files whose best trials warm-start ours
    paper_table: str = "1"  # the paper's table the results are compared with first (analysis.paper)
    source: Path | None = None  # the table file it was read from

    @property
    def tuning_seed(self) -> int | str:
        """The tuning seed as results state it: the seed, or the seeds separated by spaces."""
        seeds = self.tuning_seeds
        return seeds[0] if len(seeds) == 1 else " ".join(map(str, seeds))

    def shared_cell(self, cell: Cell, other: Table) -> Cell | None:
        """The cell of `other` that computes exactly what `cell` does (same study file and settings, final
        settings, and final seeds that include this table's), whatever its name; None when there is none."""
        if other.dataset != self.dataset or not set(self.final_seeds) <= set(other.final_seeds):
            return None
        for candidate in other.cells:
            same = (
                candidate.study_file.resolve() == cell.study_file.resolve()
                and candidate.overrides == cell.overrides
                and candidate.final_overrides == cell.final_overrides
            )
            if same:
                return candidate
        return None

    def select(self, patterns: list[str] | None) -> list[Cell]:
        """The cells whose names match one of the patterns (fnmatch style: 'DMVAE_disc@*'); all if none."""
        if not patterns:
            return list(self.cells)
        from fnmatch import fnmatchcase

        chosen = [cell for cell in self.cells if any(fnmatchcase(cell.name, p) for p in patterns)]
        if not chosen:
            names = ", ".join(cell.name for cell in self.cells)
            raise UserError(f"--cells {' '.join(patterns)} matches no cell of {self.name}; cells: {names}")
        return chosen


def load_table(path: str | Path) -> Table:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"table file {path} does not exist; see tune/tables/ for examples")
    try:
        values = read_yaml_mapping(path, "table file")
        table = table_from_dict(values, default_name=path.stem, chain=(path.resolve(),))
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
    table.source = path
    return table


def table_from_dict(
    values: dict[str, Any], default_name: str = "table", chain: tuple[Path, ...] = ()
) -> Table:
    """The table `values` define, with its base's fields filled in (`chain`: the file it was read from)."""
    values = with_base(values, chain)
    dataset = values.get("dataset")
    if dataset not in DATASETS:
        raise UserError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    fractions = values.get("fractions")
    if not isinstance(fractions, list) or not fractions:
        raise UserError("fractions must be a non-empty list of paired fractions in (0, 1]")
    for fraction in fractions:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
            raise UserError(f"fractions: {fraction!r} is not a paired fraction in (0, 1]")
    tuning_seeds = _tuning_seeds(values)
    seeds = values.get("final_seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not seeds:
        raise UserError("final_seeds must be a non-empty list of seeds")
    seeds = [_whole(seed, "final_seeds") for seed in seeds]
    for tuning_seed in tuning_seeds:
        if tuning_seed in seeds:
            raise UserError(
                f"tuning_seed {tuning_seed} is one of final_seeds {seeds}: a search would choose the "
                "hyperparameters on a paired subset that is then reported; pick a tuning_seed outside them"
            )
    val_labels = values.get("val_labels", 1000)
    if val_labels is not None:
        val_labels = _whole(val_labels, "val_labels")
    study_fields = _mapping(values.get("study"), "study")
    final = _mapping(values.get("final"), "final")
    models = _mapping(values.get("models"), "models")
    if not models:
        raise UserError("models must map model labels to study files")
    per_cell = _mapping(values.get("cells"), "cells")
    table_set = _mapping(values.get("set"), "set")
    paper_table = str(values.get("paper_table", "1"))
    if paper_table not in PAPER_TABLES:
        raise UserError(
            f"paper_table must be one of {', '.join(PAPER_TABLES)} (the paper's table to compare with "
            f"first); got {values['paper_table']!r}"
        )
    table = Table(
        name=str(values.get("name", default_name)),
        dataset=dataset,
        tuning_seeds=tuning_seeds,
        final_seeds=seeds,
        val_labels=val_labels,
        note=str(values.get("note", "")),
        paper_table=paper_table,
        share_cells_with=[_table_file(name) for name in _names(values.get("share_cells_with"))],
        warm_start_from=[
            _table_file(name, "warm_start_from") for name in _names(values.get("warm_start_from"))
        ],
    )
    for label, spec in models.items():
        spec = {"study": spec} if isinstance(spec, str) else _mapping(spec, f"models.{label}")
        unknown = sorted(set(spec) - {"study", "set", "final"})
        if unknown:
            raise UserError(f"models.{label}: unknown key {unknown[0]!r}; a model takes study, set and final")
        study_file = _study_file(spec.get("study"), label)
        for fraction in fractions:
            cell = Cell(label, float(fraction), study_file, [], [])
            extra = _mapping(per_cell.get(cell.name), f"cells.{cell.name}")
            run_set = {
                "data.name": dataset, "data.paired_fraction": float(fraction), "data.val_labels": val_labels,
                "seed": tuning_seeds[0], **table_set, **_mapping(spec.get("set"), f"models.{label}.set"),
                **_mapping(extra.get("set"), f"cells.{cell.name}.set"),
            }  # fmt: skip
            # Each cell's sampler gets its own seed: with one seed for all, every cell's random startup
            # trials were the same points, and a warm start from a neighbour repeated one of them. Variants
            # of a model (an ablation) share their model's seed, so they differ in their variant only.
            fields = {"seed": cell_seed(dataset, cell.label, cell.fraction)}
            fields |= {"data_seeds": tuning_seeds} if len(tuning_seeds) > 1 else {}
            fields |= study_fields
            fields |= _mapping(extra.get("study"), f"cells.{cell.name}.study")
            cell.overrides = [f"{key}={_yaml(value)}" for key, value in run_set.items()]
            cell.overrides += [f"study.{key}={_yaml(value)}" for key, value in fields.items()]
            final_set = (
                final
                | _mapping(spec.get("final"), f"models.{label}.final")
                | _mapping(extra.get("final"), f"cells.{cell.name}.final")
            )
            cell.final_overrides = [f"{key}={_yaml(value)}" for key, value in final_set.items()]
            cell.study()  # every cell's study must load: errors now, not hours into the table
            table.cells.append(cell)
    unknown_cells = sorted(set(per_cell) - {cell.name for cell in table.cells})
    if unknown_cells:
        raise UserError(f"cells: {unknown_cells[0]!r} is not a cell of this table (names: MODEL@PERCENT)")
    return table


def with_base(values: dict[str, Any], chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The table's fields with those of its `base` table (and its base's, and so on) filled in."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise UserError(f"unknown table field {unknown[0]!r}; known fields: {', '.join(FIELDS)}")
    if values.get("base") is None:
        return {key: value for key, value in values.items() if key != "base"}
    if not isinstance(values["base"], str):
        raise UserError(f"base must name one table (e.g. table1_mnist) or its file, got {values['base']!r}")
    path = _table_file(values["base"], "base").resolve()
    if path in chain:
        loop = " -> ".join(p.stem for p in (*chain, path))
        raise UserError(f"base: the tables inherit from each other in a loop ({loop}); break it")
    try:
        base = with_base(read_yaml_mapping(path, "table file"), (*chain, path))
    except UserError as error:
        raise UserError(f"base {path.name}: {error}") from None
    merged = {key: value for key, value in base.items() if key not in OWN_FIELDS}
    for key, value in values.items():
        merged.pop(EITHER_OF.get(key, ""), None)
        if key in MERGED_FIELDS and value is not None:
            value = _mapping(merged.get(key), key) | _mapping(value, key)
        merged[key] = value
    merged.pop("base")
    return merged


def cell_seed(dataset: str, label: str, fraction: float) -> int:
    """The TPE seed of a cell's study, stable across machines and sessions."""
    return zlib.crc32(f"{dataset}/{label}@{fraction:g}".encode()) % 2**31


def _tuning_seeds(values: dict[str, Any]) -> list[int]:
    if "tuning_seed" in values and "tuning_seeds" in values:
        raise UserError("give tuning_seed (one data seed) or tuning_seeds (a list), not both")
    if "tuning_seeds" not in values:
        return [_whole(values.get("tuning_seed", 10), "tuning_seed")]
    seeds = values["tuning_seeds"]
    if not isinstance(seeds, list) or not seeds:
        raise UserError(f"tuning_seeds must be a non-empty list of data seeds, got {seeds!r}")
    seeds = [_whole(seed, "tuning_seeds") for seed in seeds]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"tuning_seeds must be distinct, got {seeds}")
    return seeds


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UserError("share_cells_with must be a list of table names (e.g. [table1_mnist]) or files")
    return value


def _table_file(name: str, field: str = "share_cells_with") -> Path:
    """A table named by its file (relative to the repository) or by its name in tune/tables/."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else Path("tune/tables") / f"{name}.yaml"
    path = path if path.is_absolute() else REPO / path
    if not path.is_file():
        raise UserError(f"{field}: no table {name} ({path} does not exist)")
    return path


def _study_file(value: Any, label: str) -> Path:
    if not isinstance(value, str):
        raise UserError(f"models.{label} needs a study file, got {value!r}")
    path = Path(value)
    for candidate in [path] if path.is_absolute() else [path, REPO / path]:
        if candidate.is_file():
            return candidate.resolve()
    raise UserError(f"models.{label}: study file {value} not found")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping, got {value!r}")
    return dict(value)


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{where} must hold whole numbers >= 0, got {value!r}")
    return value


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
