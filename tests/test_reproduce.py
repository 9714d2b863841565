"""`dmvae reproduce`: a two-cell table end to end on a real local Ray
(studies, warm start, export, finals, results.csv, report), then its resume."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from fixtures_tables import tiny_table

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("DMVAE_TUNE_VERBOSE", "0")

from analysis.reproduce import Reproduction, commit  # noqa: E402
from analysis.tables import table_from_dict  # noqa: E402
from dmvae.cli import main  # noqa: E402
from dmvae.data import default_root  # noqa: E402
from dmvae.errors import UserError  # noqa: E402


def search_sections(report: Path) -> dict[str, str]:
    """The report's "## Search: NAME" sections by NAME."""
    sections = report.read_text().split("\n## ")
    return {
        part.split("\n")[0].removeprefix("Search: "): part for part in sections if part.startswith("Search: ")
    }


def read_rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_reproduce_end_to_end_and_resume(ray_session, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DMVAE_DATA", str(default_root().resolve()))
    monkeypatch.chdir(tmp_path)  # the committed files show paths under the current folder relative to it
    table = tmp_path / "tiny.yaml"
    two_seeds = {"tuning_seed": None, "tuning_seeds": [7, 8]}  # each trial trains on both data seeds
    table.write_text(yaml.safe_dump(tiny_table(**two_seeds)))
    out = tmp_path / "out"
    results = tmp_path / "results" / "tiny"
    # The first cell alone, then the whole table: the second cell's study is warm-started from the first.
    assert (
        main(
            ["reproduce", str(table), "--out", str(out), "--results", str(results), "--cells", "DMVAE_disc@5"]
        )
        == 0
    )
    assert [row["cell"] for row in read_rows(results)] == ["DMVAE_disc@5"] * 2
    capsys.readouterr()
    assert main(["reproduce", str(table), "--out", str(out), "--results", str(results)]) == 0
    printed = capsys.readouterr().out
    assert "finished earlier" in printed and "warm start" in printed
    rows = read_rows(results)
    assert [(row["cell"], row["seed"]) for row in rows] == [
        ("DMVAE_disc@5", "0"), ("DMVAE_disc@5", "1"), ("DMVAE_disc@10", "0"), ("DMVAE_disc@10", "1"),
    ]  # fmt: skip
    for row in rows:
        assert 0 <= float(row["test_accuracy"]) <= 1 and row["val_labels"] == "200"
        assert row["eval_protocol"] == "expected"  # the default, stated in every row
        assert row["tuning_seed"] == "7 8" and row["trials"] == "2" and float(row["tuning_trial_seconds"]) > 0
        assert float(row["train_seconds"]) > 0 and row["commit"] and row["epochs"] == "1"
        assert row["discarded_epochs"] == "1"  # the restart not kept trained one epoch
        assert row["restart_kept"] in ("0", "1")  # the tiny finals try two initialisations
        assert yaml.safe_load(row["config"])["seed"] == int(row["seed"])
    # Ray heard each trial's mean over the two data seeds, with each seed's accuracy beside it.
    reported = [
        json.loads(line)
        for path in (out / "studies" / "DMVAE_disc@5").glob("*/result.json")
        for line in path.read_text().splitlines()
    ]
    assert reported
    for result in reported:
        seeds = (result["val/accuracy_seed_7"], result["val/accuracy_seed_8"])
        assert result["val/accuracy"] == pytest.approx(sum(seeds) / 2)
    first = yaml.safe_load((results / "cells" / "DMVAE_disc@5" / "cell.json").read_text())["best_params"]
    from tune.experiment import open_experiment

    second = open_experiment(out / "studies" / "DMVAE_disc@10").study.points_to_evaluate
    assert second[-1] == first  # the neighbour's best trial, enqueued
    for cell in ("DMVAE_disc@5", "DMVAE_disc@10"):
        archived = results / "cells" / cell
        assert (archived / "best.yaml").is_file() and len(
            (archived / "trials.csv").read_text().splitlines()
        ) == 3
        assert sorted(p.name for p in (archived / "final" / "seed-0").iterdir()) == [
            "config.yaml",
            "final.json",
            "metrics.jsonl",
        ]  # fmt: skip (the tiny finals draw no figures)

    report = (results / "report" / "report.md").read_text()
    assert "DMVAE_disc" in report and "| 5 % |" in report
    assert str(tmp_path) not in report and "results/tiny/cells/DMVAE_disc@5/final/seed-0" in report
    archived_config = yaml.safe_load(
        (results / "cells" / "DMVAE_disc@5" / "final" / "seed-0" / "config.yaml").read_text()
    )
    assert archived_config["data"]["root"] is None  # the pinned default data root is not committed
    # Resume: a lost final run is trained again; nothing else is.
    done = {p: p.stat().st_mtime_ns for p in out.glob("final/*/seed-*/final.json")}
    assert len(done) == 4
    lost = out / "final" / "DMVAE_disc@10" / "seed-1"
    for path in (lost / "final.json", lost / "checkpoints" / "last.pt"):
        path.unlink()
    (results / "cells" / "DMVAE_disc@10" / "final" / "seed-1" / "final.json").unlink()
    assert main(["reproduce", str(table), "--out", str(out), "--results", str(results)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier") == 1 and "study done" in printed
    assert printed.count("already done") == 1
    for path, stamp in done.items():
        assert (path.stat().st_mtime_ns == stamp) == (path.parent != lost), path
    rows = read_rows(results)
    assert len(rows) == 4
    # A later session: a fresh checkout has results/ but not the run folders. Nothing is trained again.
    import shutil

    searched = search_sections(results / "report" / "report.md")
    assert list(searched) == ["DMVAE_disc@5", "DMVAE_disc@10"] and "importance of" in searched["DMVAE_disc@5"]
    shutil.rmtree(out)
    assert main(["reproduce", str(table), "--out", str(out), "--results", str(results)]) == 0
    assert capsys.readouterr().out.count("finished earlier") == 2
    assert read_rows(results) == rows
    # ... and its report still shows every search, read from the archive, as it was shown from the study
    regenerated = search_sections(results / "report" / "report.md")
    for cell, section in searched.items():
        moved = section.replace(f"out/studies/{cell}`", f"results/tiny/cells/{cell}`")
        assert regenerated[cell] == moved, cell
    assert (
        "dmvae reproduce tiny.yaml --cells 'DMVAE_disc@5'" in (results / "report" / "report.md").read_text()
    )
    # The table's final settings changed since: the finished cells say so and are not trained again.
    changed = tmp_path / "changed.yaml"
    final = tiny_table()["final"] | {"train.patience": 3}
    changed.write_text(yaml.safe_dump(tiny_table(final=final, **two_seeds)))
    assert main(["reproduce", str(changed), "--out", str(out), "--results", str(results)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("warning: its finals ran with") == 2 and "train.patience=3" in printed
    assert read_rows(results) == rows and not (out / "final").exists()
    # Another table that shares the cell (as Table 8 shares Table 1's) takes it from tiny's results.
    other = tmp_path / "other.yaml"
    other.write_text(
        yaml.safe_dump(tiny_table(name="other", fractions=[0.1], share_cells_with=[str(table)], **two_seeds))
    )
    other_args = ["--out", str(tmp_path / "out-other"), "--results", str(tmp_path / "results" / "other")]
    assert main(["reproduce", str(other), *other_args]) == 0
    assert "taken from tiny's DMVAE_disc@10" in capsys.readouterr().out
    assert not (tmp_path / "out-other" / "studies").exists()  # nothing tuned or trained
    taken = read_rows(tmp_path / "results" / "other")
    assert [(row["cell"], row["test_accuracy"]) for row in taken] == [
        (row["cell"], row["test_accuracy"]) for row in rows if row["cell"] == "DMVAE_disc@10"
    ]
    # A later session adds a final seed to the table (a fresh checkout, no run folders): only it trains.
    more = tmp_path / "more.yaml"
    more.write_text(yaml.safe_dump(tiny_table(fractions=[0.1], final_seeds=[0, 1, 2], **two_seeds)))
    more_out = tmp_path / "out-more"
    monkeypatch.setattr("analysis.reproduce.commit", lambda: "a-later-commit")
    assert main(["reproduce", str(more), "--out", str(more_out), "--results", str(results)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, taken from") == 2 and "(1 to train)" in printed
    grown = read_rows(results)
    assert [(row["seed"], row["test_accuracy"]) for row in grown if row["cell"] == "DMVAE_disc@10"][:2] == [
        (row["seed"], row["test_accuracy"]) for row in rows if row["cell"] == "DMVAE_disc@10"
    ]
    assert [row["seed"] for row in grown if row["cell"] == "DMVAE_disc@10"] == ["0", "1", "2"]
    # each row names the commit its seed trained at
    commits = [row["commit"] for row in grown if row["cell"] == "DMVAE_disc@10"]
    assert commits == [row["commit"] for row in rows if row["cell"] == "DMVAE_disc@10"] + ["a-later-commit"]


def test_a_study_whose_folder_is_gone_goes_on_from_its_carried_trials(
    ray_session, tmp_path, capsys, monkeypatch
):
    """Killed after its study (before the export), then a fresh checkout (no run folders) with a larger
    budget: the new experiment starts from the carry file the study kept up to date, and runs one trial."""
    from tune.carry import CARRY_FILE, EXPERIMENT, read_carry
    from tune.experiment import open_experiment

    monkeypatch.setenv("DMVAE_DATA", str(default_root().resolve()))
    monkeypatch.chdir(tmp_path)
    table, out, results = tmp_path / "tiny.yaml", tmp_path / "out", tmp_path / "results" / "tiny"
    table.write_text(yaml.safe_dump(tiny_table(fractions=[0.05], final_seeds=[0])))
    args = ["reproduce", str(table), "--out", str(out), "--results", str(results)]

    def killed(self, cell):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Reproduction, "export", killed)
        assert main(args) == 130  # interrupted
    assert "rerun it to go on" in capsys.readouterr().err
    archive = results / "cells" / "DMVAE_disc@5"
    carried = read_carry(archive / CARRY_FILE)  # written by the study's callback as it ran
    assert [record["state"] for record in carried] == ["COMPLETE", "COMPLETE"]
    first = {record["user_attrs"][EXPERIMENT] for record in carried}
    sitting = json.loads((archive / "cell.json").read_text())["tuning_driver_seconds"]  # the killed one too
    assert sitting > 0
    (archive / CARRY_FILE).unlink()  # as for a study started before carry files: --report-only writes it
    assert main([*args, "--report-only"]) == 0 and read_carry(archive / CARRY_FILE) == carried
    import shutil

    shutil.rmtree(out)
    study = tiny_table()["study"] | {"num_samples": 3}
    table.write_text(yaml.safe_dump(tiny_table(fractions=[0.05], final_seeds=[0], study=study)))
    capsys.readouterr()
    assert main(args) == 0
    assert "2 finished, 0 interrupted (trained again), 1 to run" in capsys.readouterr().out
    experiment = open_experiment(out / "studies" / "DMVAE_disc@5")
    assert experiment.study.num_samples == 1 and not experiment.study.points_to_evaluate
    with (archive / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert [row["number"] for row in trials] == ["1", "2", "3"]
    assert [row["trial_id"] for row in trials[:2]] == [
        record["user_attrs"]["ray_trial_id"] for record in carried
    ]
    state = json.loads((archive / "cell.json").read_text())
    spent = sum(record["user_attrs"]["seconds"] for record in read_carry(archive / CARRY_FILE))
    assert state["trials"] == 3 and state["tuning_trial_seconds"] == pytest.approx(spent, rel=1e-6)
    assert state["tuning_driver_seconds"] > sitting and "tuned_at" in state
    assert state["best_trial"] in {row["trial_id"] for row in trials}
    now = read_carry(archive / CARRY_FILE)
    assert [record["user_attrs"][EXPERIMENT] in first for record in now] == [True, True, False]
    assert read_rows(results)[0]["trials"] == "3"
    searched = search_sections(results / "report" / "report.md")["DMVAE_disc@5"]  # every trial: the archive's
    assert "3 trials (3 terminated)" in searched and "Folder `results/tiny/cells/DMVAE_disc@5`" in searched


def test_ctrl_c_in_a_study_interrupts_it_and_does_not_end_it(ray_session, tmp_path, capsys, monkeypatch):
    """Ray Tune meets the first SIGINT by saving its state and returning as if the study were done: reproduce
    must not export the cut-off study and train its finals, but stop, and go on when rerun."""
    import signal

    from tune.carry import CarryCallback

    monkeypatch.setenv("DMVAE_DATA", str(default_root().resolve()))
    monkeypatch.chdir(tmp_path)
    study = tiny_table()["study"] | {"num_samples": 3}  # two run at a time: the third cannot have ended
    table, out, results = tmp_path / "tiny.yaml", tmp_path / "out", tmp_path / "results" / "tiny"
    table.write_text(yaml.safe_dump(tiny_table(fractions=[0.05], final_seeds=[0], study=study)))
    args = ["reproduce", str(table), "--out", str(out), "--results", str(results)]
    original, sent = CarryCallback.on_trial_result, []

    def ctrl_c(self, *args, **kwargs):  # the driver's first trial result, as a user's Ctrl-C
        original(self, *args, **kwargs)
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))

    with monkeypatch.context() as patch:
        patch.setattr(CarryCallback, "on_trial_result", ctrl_c)
        assert main(args) == 130
    assert sent and "rerun it to go on" in capsys.readouterr().err
    archive = results / "cells" / "DMVAE_disc@5"
    assert not (archive / "best.yaml").exists() and not (out / "final").exists()
    assert main(args) == 0
    with (archive / "trials.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 3
    assert [row["seed"] for row in read_rows(results)] == ["0"]


def test_readme_results_section_is_generated_from_the_csvs(tmp_path):
    from analysis.summary import END, START, update_readme

    results = tmp_path / "results" / "t1"
    results.mkdir(parents=True)
    header = "cell,model,dataset,paired_fraction,seed,val_labels,test_accuracy,test_coherence,trials,epochs,"
    header += "discarded_epochs\n"
    rows = [
        f"DMVAE_disc@0.2,DMVAE_disc,mnist,0.002,{seed},1000,{acc},0.9,12,50,10\n"
        for seed, acc in ((0, 0.8), (1, 0.9))
    ]
    (results / "results.csv").write_text(header + "".join(rows))
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\ntext\n{START}\nold\n{END}\ntail\n")
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "t1.yaml").write_text("name: t1\nnote: >\n  What sets this\n  table apart.\n")
    update_readme(readme, tmp_path / "results", tables)
    text = readme.read_text()
    assert "\nWhat sets this table apart.\n" in text
    assert "old" not in text and text.startswith("# title") and text.endswith("tail\n")
    assert "`dmvae reproduce tune/tables/t1.yaml`" in text
    assert "| DMVAE_disc@0.2 | 0.2 % | DMVAE_disc | 0 1 | 0.850 ± 0.071 | 0.917 | -0.067 |" in text
    assert "| 1000 | 50 + 10 |" in text  # the kept model's epochs + the discarded initialisations'
    update_readme(readme, tmp_path / "results", tables)
    assert readme.read_text() == text  # idempotent
    (tables / "t0.yaml").write_text("name: t0\npaper_table: 8\n")  # Table 8's MVAE differs from Table 1's
    (tables / "t1.yaml").write_text(f"name: t1\nbase: {tables / 't0.yaml'}\n")  # t1 compares as t0 does
    (results / "results.csv").write_text(header + "MVAE@0.2,MVAE,mnist,0.002,0,1000,0.8,0.4,12\n")
    update_readme(readme, tmp_path / "results", tables)
    assert "| MVAE@0.2 | 0.2 % | MVAE | 0 | 0.800 | 0.625 | +0.175 |" in readme.read_text()
    (tables / "t1.yaml").write_text("name: t1\npaper_table: 9\n")
    with pytest.raises(UserError, match="paper_table must be one of 1, 8.*got 9"):
        update_readme(readme, tmp_path / "results", tables)
    readme.write_text(f"# title\n{START}\n")
    with pytest.raises(UserError, match="one results marker"):
        update_readme(readme, tmp_path / "results")


def test_warm_start_takes_the_nearest_finished_cell_here_or_in_warm_start_from(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(tiny_table(name="other", fractions=[0.05, 0.5])))
    table = table_from_dict(tiny_table(warm_start_from=[str(other)]))
    run = Reproduction(table, tmp_path / "out", tmp_path / "results" / "tiny")
    at_5, at_10 = table.cells
    assert run.warm_start(at_5) is None

    def finish(folder, lr):
        folder.mkdir(parents=True)
        (folder / "cell.json").write_text(json.dumps({"best_params": {"train.lr": lr, "not.searched": 1}}))

    finish(tmp_path / "results" / "other" / "cells" / "DMVAE_disc@50", 0.002)
    assert run.warm_start(at_5) == {"train.lr": 0.002}
    finish(run.archive(at_10), 0.003)  # this table's 10 % is nearer to 5 % than the other's 50 %
    assert run.warm_start(at_5) == {"train.lr": 0.003}
    finish(tmp_path / "results" / "other" / "cells" / "DMVAE_disc@5", 0.004)  # the same fraction: nearest
    assert run.warm_start(at_5) == {"train.lr": 0.004}
    assert run.warm_start(at_10) == {"train.lr": 0.004}  # its own cell is never its warm start
    # A variant of a model (DMVAE_disc/small) starts from the model's cells; another model never does.
    variants = {
        "DMVAE_disc/small": tiny_table()["models"]["DMVAE_disc"],
        "MVAE": "tune/studies/mvae_mnist.yaml",
    }
    table = table_from_dict(
        tiny_table(name="variants", models=variants, fractions=[0.05], warm_start_from=[str(other)])
    )
    run = Reproduction(table, tmp_path / "out", tmp_path / "results" / "variants")
    cells = {cell.name: cell for cell in table.cells}
    assert run.warm_start(cells["DMVAE_disc/small@5"]) == {"train.lr": 0.004}
    assert run.warm_start(cells["MVAE@5"]) is None


def test_a_warm_start_takes_a_dimension_its_cell_did_not_search_from_the_config_it_trained(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(tiny_table(name="other", fractions=[0.05])))
    batch_norm = {"type": "categorical", "choices": [False, True]}
    table = table_from_dict(
        tiny_table(warm_start_from=[str(other)], study={"space.model.batch_norm": batch_norm})
    )
    run = Reproduction(table, tmp_path / "out", tmp_path / "results" / "tiny")
    folder = tmp_path / "results" / "other" / "cells" / "DMVAE_disc@5"
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps({"best_params": {"train.lr": 0.002}}))
    trained = table.cells[0].study().run_config({"train.lr": 0.002}).to_dict()
    trained["model"]["batch_norm"] = True
    (folder / "best.yaml").write_text("# exported\n" + yaml.safe_dump(trained))
    point = run.warm_start(table.cells[0])
    # every key our study searches, with the values the other cell trained with; the best trial's win, and
    # the shared latent's TC weights (searched for gaussian and binary shared latents only) stay out
    assert point["model.batch_norm"] is True and point["train.lr"] == 0.002
    del trained["model"]["batch_norm"]  # exported before the setting existed: it trained with the default
    (folder / "best.yaml").write_text(yaml.safe_dump(trained))
    assert run.warm_start(table.cells[0])["model.batch_norm"] is False
    space = table.cells[0].study().space
    assert set(point) == {p.key for p in space if "model.shared" not in p.condition}
    assert not any(key.startswith("objective.beta_shared") for key in point)


def test_the_recorded_commit_is_dirty_for_code_not_for_the_results_the_tool_writes(tmp_path: Path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    for name in ("code.py", "README.md", "results/results.csv"):
        (tmp_path / name).write_text("0\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    clean = commit(tmp_path)
    assert len(clean) == 12 and "dirty" not in clean
    (tmp_path / "results" / "results.csv").write_text("1\n")
    (tmp_path / "README.md").write_text("1\n")
    assert commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("1\n")
    assert commit(tmp_path) == clean + "+dirty"
    assert commit(tmp_path / "missing") == "unknown"
