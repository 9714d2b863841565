"""Table files (tune/tables/): the cells and protocol they define, their bases, shared cells, and the
one-line errors of bad ones."""

from __future__ import annotations

import pytest
import yaml
from fixtures_tables import TABLES, tiny_table

from analysis.tables import load_table, table_from_dict
from dmvae.errors import UserError


@pytest.mark.parametrize("path", TABLES, ids=[path.stem for path in TABLES])
def test_shipped_tables_load(path):
    table = load_table(path)
    assert table.cells and not set(table.tuning_seeds) & set(table.final_seeds)
    assert table.val_labels is not None and table.val_labels <= 1000  # issue 7: at most 1,000


def test_cells_carry_the_protocol():
    table = table_from_dict(tiny_table())
    assert [cell.name for cell in table.cells] == ["DMVAE_disc@5", "DMVAE_disc@10"]
    config = table.cells[1].study().run_config()
    assert (config.seed, config.data.paired_fraction, config.data.val_labels) == (7, 0.1, 200)
    assert table.cells[0].study().num_samples == 2
    seeds = [cell.study().seed for cell in table.cells]  # each cell's sampler draws its own startup points
    assert seeds[0] != seeds[1] and seeds == [
        cell.study().seed for cell in table_from_dict(tiny_table()).cells
    ]
    variants = {
        "DMVAE_disc/a": tiny_table()["models"]["DMVAE_disc"],
        "DMVAE_disc/b": tiny_table()["models"]["DMVAE_disc"],
    }
    a, _, b, _ = table_from_dict(tiny_table(models=variants)).cells
    assert a.study().seed == b.study().seed == seeds[0]  # an ablation's variants differ in their variant only
    assert table_from_dict(tiny_table(study={"seed": 3})).cells[1].study().seed == 3
    assert [cell.name for cell in table.select(["*@10"])] == ["DMVAE_disc@10"]


def test_final_overrides_layer_table_then_model_then_cell():
    models = {"DMVAE_disc": tiny_table()["models"]["DMVAE_disc"] | {"final": {"train.patience": 15}}}
    cells = {"DMVAE_disc@10": {"final": {"train.patience": 5}}}
    table = table_from_dict(tiny_table(models=models, cells=cells))
    five, ten = table.cells
    assert "train.patience=15" in five.final_overrides and "train.epochs=1" in five.final_overrides
    assert "train.patience=5" in ten.final_overrides and "train.patience=15" not in ten.final_overrides


def test_table_settings_reach_every_cell_under_model_and_cell_settings():
    models = {"DMVAE_disc": tiny_table()["models"]["DMVAE_disc"] | {"set": {"train.lr": 0.002}}}
    cells = {"DMVAE_disc@10": {"set": {"train.augment_shift": 1}}}
    five, ten = table_from_dict(
        tiny_table(models=models, cells=cells, set={"train.augment_shift": 2, "train.lr": 0.01})
    ).cells
    configs = [cell.study().run_config() for cell in (five, ten)]
    assert [(c.train.augment_shift, c.train.lr) for c in configs] == [(2, 0.002), (1, 0.002)]


def test_a_cell_s_own_study_fields_reach_that_cell_only():
    point = {"train.lr": 0.002, "objective.recon_weight.label": 300.0}
    cells = {"DMVAE_disc@10": {"study": {"points_to_evaluate": [point], "num_samples": 3}}}
    five, ten = (cell.study() for cell in table_from_dict(tiny_table(cells=cells)).cells)
    assert (ten.num_samples, ten.initial_points()) == (3, [point])
    assert five.num_samples == 2 and point not in five.initial_points()
    warm = {"train.lr": 0.001, "objective.recon_weight.label": 500.0}  # comes after the cell's own points
    assert ten.initial_points(warm) == [point, warm]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tuning_seed": 1}, "tuning_seed 1 is one of final_seeds"),
        ({"tuning_seed": None, "tuning_seeds": [7, 1]}, "tuning_seed 1 is one of final_seeds"),
        ({"tuning_seeds": [7, 8]}, "not both"),
        ({"tuning_seed": None, "tuning_seeds": [7, 7]}, "tuning_seeds must be distinct"),
        ({"fractions": [0.0]}, "is not a paired fraction"),
        ({"dataset": "cifar"}, "dataset must be one of"),
        ({"models": {"X": "nope.yaml"}}, "study file nope.yaml not found"),
        ({"cells": {"MVAE@5": {}}}, "'MVAE@5' is not a cell of this table"),
        ({"study": {"num_samples": 0}}, "num_samples must be >= 1"),
        ({"colour": 1}, "unknown table field 'colour'"),
        ({"paper_table": 9}, "paper_table must be one of 1, 8"),
        ({"models": {"MVAE": {"study": "tune/studies/mvae_mnist.yaml", "fnal": {}}}}, "unknown key 'fnal'"),
    ],
)
def test_bad_tables_are_one_line_errors(changes, message):
    with pytest.raises(UserError, match=message) as error:
        table_from_dict(tiny_table(**changes))
    assert "\n" not in str(error.value)


def test_a_table_with_a_base_is_the_table_written_out(tmp_path):
    base = tiny_table(name="base", note="the base", set={"train.lr": 0.01, "train.augment_shift": 2})
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    child = {
        "base": str(tmp_path / "base.yaml"),
        "fractions": [0.1],  # replaces the base's list
        "study": {"num_samples": 3},  # study, set and final merge key by key, ours winning
        "set": {"train.lr": 0.02},
        "final": {"train.restarts": 4},
    }
    (tmp_path / "child.yaml").write_text(yaml.safe_dump(child))
    written_out = tiny_table(
        name="child",
        fractions=[0.1],
        study=base["study"] | {"num_samples": 3},
        set={"train.lr": 0.02, "train.augment_shift": 2},
        final=base["final"] | {"train.restarts": 4},
    )
    table, expected = load_table(tmp_path / "child.yaml"), table_from_dict(written_out)
    assert (table.name, table.note) == ("child", "")  # name and note are the table's own
    assert [(c.name, c.overrides, c.final_overrides) for c in table.cells] == [
        (c.name, c.overrides, c.final_overrides) for c in expected.cells
    ]
    assert expected.shared_cell(expected.cells[0], table) is not None
    grandchild = {"base": str(tmp_path / "child.yaml"), "tuning_seeds": [8, 9]}  # replaces tuning_seed
    (tmp_path / "grandchild.yaml").write_text(yaml.safe_dump(grandchild))
    table = load_table(tmp_path / "grandchild.yaml")
    assert table.tuning_seeds == [8, 9]
    assert [c.final_overrides for c in table.cells] == [c.final_overrides for c in expected.cells]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a": {"base": "{dir}/b.yaml"}, "b": {"base": "{dir}/a.yaml"}}, r"in a loop \(a -> b -> a\)"),
        ({"a": {"base": "{dir}/a.yaml"}}, r"in a loop \(a -> a\)"),
        ({"a": {"base": "nope"}}, "base: no table nope"),
        ({"a": {"base": ["b"]}}, "base must name one table"),
        ({"a": {"base": "{dir}/b.yaml"}, "b": {"colour": 1}}, "base b.yaml: unknown table field 'colour'"),
    ],
)
def test_bad_bases_are_one_line_errors(tmp_path, files, message):
    for name, values in files.items():
        text = yaml.safe_dump(values).replace("{dir}", str(tmp_path))
        (tmp_path / f"{name}.yaml").write_text(text)
    with pytest.raises(UserError, match=message) as error:
        load_table(tmp_path / "a.yaml")
    assert "\n" not in str(error.value)


def test_a_cell_is_shared_only_when_defined_exactly_alike(tmp_path):
    table = table_from_dict(tiny_table())
    same = table_from_dict(tiny_table(name="same"))
    assert table.shared_cell(table.cells[1], same).name == "DMVAE_disc@10"
    models = {"DMVAE_disc/again": tiny_table()["models"]["DMVAE_disc"]}  # another name, the same computation
    assert table.shared_cell(table.cells[1], table_from_dict(tiny_table(models=models))).name == (
        "DMVAE_disc/again@10"
    )
    assert table.shared_cell(table.cells[1], table_from_dict(tiny_table(final_seeds=[1, 0, 2]))) is not None
    differ = (
        {"val_labels": 100},
        {"final_seeds": [0, 5]},
        {"final": {"train.epochs": 2}},
        {"set": {"train.lr": 0.01}},
    )
    for changes in differ:
        assert table.shared_cell(table.cells[1], table_from_dict(tiny_table(**changes))) is None, changes
    with pytest.raises(UserError, match="share_cells_with: no table nope"):
        table_from_dict(tiny_table(share_cells_with=["nope"]))


def test_unknown_cell_pattern_is_an_error():
    with pytest.raises(UserError, match="matches no cell"):
        table_from_dict(tiny_table()).select(["MVAE@*"])
