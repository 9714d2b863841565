"""tune/: study files, their overrides and errors, the define-by-run space, and the data folder a new
experiment pins; none of these start Ray (the real studies are in test_tune.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from fixtures_study import minimal

from dmvae.errors import UserError
from tune.space import DefineByRun
from tune.study import REPO, load_study, seed_words, study_from_dict, trials_word

STUDIES = sorted((REPO / "tune" / "studies").glob("*.yaml"))
GAUSSIAN = "gaussian"


# --- study files ---------------------------------------------------------------------------------------
def test_shipped_studies_load():
    names = {path.stem for path in STUDIES}
    assert {"dmvae_mnist", "dmvae_fmnist", "mvae_mnist", "mvae_fmnist", "dmvae_celeba"} <= names
    for path in STUDIES:
        study = load_study(path)
        assert study.name == path.stem
        assert study.initial_points()[0] == study.paper_point()
        study.run_config(study.paper_point())


def test_a_warm_start_comes_last_in_place_of_the_first_points_it_completes():
    study = load_study(REPO / "tune" / "studies" / "dmvae_mnist.yaml")
    paper, default = study.initial_points()  # the base config's values, then a partial point
    assert study.initial_points(None) == [paper, default]
    # the partial point's unset keys are sampled; a warm start that agrees with it on the rest replaces it
    completed = default | {"train.augment_shift": 1}
    assert study.initial_points(completed) == [paper, completed]
    elsewhere = default | {"train.lr": 0.002}
    assert study.initial_points(elsewhere) == [paper, default, elsewhere]


def test_dmvae_mnist_study_is_the_issue_setting():
    study = load_study(REPO / "tune" / "studies" / "dmvae_mnist.yaml")
    config = study.run_config()
    assert config.data.paired_fraction == 0.002 and config.train.epochs == study.max_epochs
    keys = {param.key for param in study.space}
    assert {"objective.recon_weight.label", "model.temperature", "train.lr", "train.paired_ratio"} <= keys
    assert study.paper_point()["objective.recon_weight.label"] == 50.0


def test_overrides_reach_base_or_study(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    study = load_study(path, ["data.paired_fraction=0.05", "study.max_epochs=3", "study.num_samples=2"])
    assert study.run_config().data.paired_fraction == 0.05
    assert (study.max_epochs, study.num_samples) == (3, 2)
    with pytest.raises(UserError, match="unknown config key"):
        load_study(path, ["train.nope=1"])
    before = {param.key for param in study.space}
    widened = load_study(path, ["study.space.train.augment_shift={type: int, low: 0, high: 3}"])
    assert {param.key for param in widened.space} == before | {"train.augment_shift"}


def test_data_seeds_give_the_trials_their_seeds_and_the_export_the_first():
    assert study_from_dict(minimal(set={"seed": 4})).trial_seeds() == [4]
    study = study_from_dict(minimal(set={"seed": 4}, data_seeds=[10, 11, 12]))
    assert study.trial_seeds() == [10, 11, 12] and study.run_config().seed == 10
    assert study_from_dict(study.to_dict()).data_seeds == [10, 11, 12]


def test_progress_words_count_seeds_and_trials():
    assert seed_words([10]) == "data seed 10" and seed_words([10, 11]) == "data seeds 10 11 (mean)"
    assert (trials_word(1), trials_word(0), trials_word(4)) == ("1 trial", "0 trials", "4 trials")


BAD_STUDIES = [
    ({"space": {"train.lr": {"type": "float", "low": 2.0, "high": 1.0}}}, "low 2.0 is above high 1.0"),
    ({"space": {"model.shared": {"type": "categorical", "choices": []}}}, "non-empty list of choices"),
    ({"space": {"train.lr": {"type": "loguniform", "low": 0, "high": 1}}}, "needs low > 0"),
    (
        {"space": {"train.lrate": {"type": "float", "low": 0.1, "high": 1}}},
        "train.lrate is not a run config field",
    ),
    ({"space": {"objective.recon_weight.lable": {"type": "float", "low": 1, "high": 2}}}, "unknown modality"),
    ({"space": {"optim.lr": {"type": "float", "low": 1, "high": 2}}}, "no section"),
    (
        {"space": {"train.lr": {"type": "float", "low": 0.0, "high": 1.0}}},
        "train.lr must be a positive number",
    ),
    ({"space": {"train.lr": {"type": "gaussian", "low": 0.1, "high": 1.0}}}, "type must be one of"),
    ({"space": {"train.epochs": {"type": "int", "low": 1.5, "high": 3}}}, "whole-number"),
    ({"space": {"train.lr": {"type": "float", "low": 0.1, "high": "x"}}}, "finite number"),
    ({"space": {"train.lr": {"type": "float", "low": 0.1, "high": 1, "color": 1}}}, "unknown field"),
    ({"space": {}}, "non-empty mapping"),
    (
        {
            "space": {
                "model.shared_dim": {"type": "int", "low": 2, "high": 8, "condition": {"model.shard": "x"}}
            }
        },
        "is not a run config field",
    ),
    (
        {"space": {"model.shared": {"type": "categorical", "choices": ["gaussian", "binary"]}}},
        "the base value of model.shared, 'categorical', is not among the choices",
    ),
    ({"base": "configs/nothing.yaml"}, "not found"),
    ({"base": 3}, "must be a run config file or a mapping"),
    ({"set": {"data.paired_fraction": 2}}, "paired_fraction must be in"),
    ({"grace_period": 5, "max_epochs": 2}, "grace_period 5 is above max_epochs 2"),
    ({"num_samples": 0}, "num_samples must be >= 1"),
    ({"max_epochs": "many"}, "must be a whole number"),
    ({"metric": "test/accuracy"}, "validation or training metric"),
    ({"mode": "best"}, "mode must be max or min"),
    ({"resources": {"cpu": 0}}, "resources.cpu must be above 0"),
    ({"resources": {"tpu": 1}}, "cpu and gpu only"),
    ({"points_to_evaluate": [{"train.momentum": 0.9}]}, "not a key of the space"),
    ({"name": "a b"}, "study name"),
    ({"colour": 1}, "unknown study field"),
    ({"data_seeds": [10, 10]}, "data_seeds must be a list of distinct whole numbers"),
    ({"data_seeds": 10}, "data_seeds must be a list of distinct whole numbers"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_STUDIES, ids=[m for _, m in BAD_STUDIES])
def test_bad_study_is_a_one_line_error(changes, message):
    with pytest.raises(UserError) as error:
        study_from_dict(minimal(**changes))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_bad_study_file_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("space: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_study(path)
    with pytest.raises(UserError, match="does not exist"):
        load_study(tmp_path / "missing.yaml")
    path.write_text(yaml.safe_dump({k: v for k, v in minimal().items() if k != "base"}))
    with pytest.raises(UserError, match="needs `base`"):
        load_study(path)


def test_conditional_parameter_sampled_only_when_its_condition_holds():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = study_from_dict(
        minimal(
            space={
                "model.shared": {"type": "categorical", "choices": ["categorical", "gaussian"]},
                "model.shared_dim": {
                    "type": "int",
                    "low": 4,
                    "high": 32,
                    "condition": {"model.shared": "gaussian"},
                },
                "model.temperature": {
                    "type": "float",
                    "low": 0.3,
                    "high": 1.0,
                    "condition": {"model.kind": "dmvae"},
                },
            }
        )
    )
    assert study.paper_point() == {"model.shared": "categorical", "model.temperature": 0.66}
    search = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    define = study.define_by_run()
    seen = set()
    for _ in range(30):
        trial = search.ask()
        define(trial)
        params = trial.params
        seen.add(params["model.shared"])
        assert ("model.shared_dim" in params) == (params["model.shared"] == "gaussian")
        assert "model.temperature" in params  # condition on a base value (model.kind: dmvae)
        study.run_config(params)
        search.tell(trial, 0.0)
    assert seen == {"categorical", "gaussian"}
    assert isinstance(define, DefineByRun)


def test_define_by_run_is_picklable():
    import pickle

    study = load_study(REPO / "tune" / "studies" / "dmvae_fmnist.yaml")
    define = pickle.loads(pickle.dumps(study.define_by_run()))
    assert [p.key for p in define.params] == [p.key for p in study.space]


def test_dmvae_cli_does_not_import_ray():
    code = (
        "import sys, dmvae.cli; dmvae.cli.build_parser(); print(sorted({'ray', 'optuna'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_new_experiment_pins_the_data_folder_seen_by_the_driver(tmp_path, monkeypatch) -> None:
    """Trials run in their own working folders, so a relative default data folder must be made absolute."""
    from tune.experiment import create_experiment

    monkeypatch.delenv("DMVAE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    study = load_study(REPO / "tune" / "studies" / "dmvae_mnist.yaml")
    experiment = create_experiment(study, "pinned", str(tmp_path / "tune"))
    saved = yaml.safe_load((experiment.folder / "study.yaml").read_text())
    assert saved["base"]["data"]["root"] == str((tmp_path / "data").resolve())


def test_a_moved_experiment_folder_keeps_its_own_optuna_file(tmp_path) -> None:
    """experiment.yaml records the default SQLite file with the folder's path of then; a moved or copied
    folder uses its own, and a storage the user named stays what it is."""
    from tune.experiment import create_experiment, open_experiment
    from tune.storage import folder_storage

    study = load_study(REPO / "tune" / "studies" / "dmvae_mnist.yaml")
    made = create_experiment(study, "exp", str(tmp_path / "before"))
    assert made.optuna_storage == f"sqlite:///{tmp_path / 'before' / 'exp' / 'optuna.db'}"
    (made.folder / "optuna.db").write_bytes(b"")
    moved = made.folder.rename(tmp_path / "after")
    assert open_experiment(moved).optuna_storage == f"sqlite:///{moved / 'optuna.db'}"
    named = f"sqlite:///{tmp_path / 'shared' / 'optuna.db'}"
    assert folder_storage(named, tmp_path / "elsewhere") == named  # no optuna.db of its own there
    assert folder_storage("postgresql://user@host/db", moved) == "postgresql://user@host/db"
