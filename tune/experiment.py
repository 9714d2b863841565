"""The experiment folder: `<storage>/<name>/` holds Ray's state, study.yaml and experiment.yaml.

study.yaml is the study as run (its base config inlined), so resume, status and export need only the
folder. experiment.yaml records the Optuna storage URL and the Optuna study name unique to the experiment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from dmvae.errors import UserError
from tune.study import Study, study_from_dict

STUDY_FILE = "study.yaml"
EXPERIMENT_FILE = "experiment.yaml"
OPTUNA_FILE = "optuna.db"
DEFAULT_STORAGE = Path("runs") / "tune"


@dataclass
class Experiment:
    folder: Path
    study: Study
    optuna_storage: str
    optuna_study: str

    @property
    def storage_path(self) -> Path:
        return self.folder.parent

    @property
    def name(self) -> str:
        return self.folder.name


def create_experiment(study: Study, name: str | None, storage_path: str | None) -> Experiment:
    """Make the folder and write study.yaml and experiment.yaml; an existing experiment is an error."""
    if storage_path and "://" in storage_path:
        raise UserError(
            "--storage-path must be a folder (on a cluster: a shared NFS mount); URIs are not supported yet"
        )
    root = Path(storage_path).expanduser().resolve() if storage_path else DEFAULT_STORAGE.resolve()
    if name is None:
        import time

        name = f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = root / name
    if (folder / STUDY_FILE).exists():
        raise UserError(f"experiment {folder} already exists; continue it with `dmvae tune resume {folder}`")
    folder.mkdir(parents=True, exist_ok=True)
    from dmvae.data import pin_data_root

    pin_data_root(study.base.setdefault("data", {}))  # trials run in their own working folders
    storage = study.storage or f"sqlite:///{folder / OPTUNA_FILE}"
    experiment = Experiment(folder, study, storage, f"{name}-{uuid.uuid4().hex[:8]}")
    study.save(folder / STUDY_FILE)
    meta = {"name": name, "optuna_storage": storage, "optuna_study": experiment.optuna_study}
    (folder / EXPERIMENT_FILE).write_text(yaml.safe_dump(meta, sort_keys=False))
    return experiment


def open_experiment(folder: str | Path) -> Experiment:
    folder = Path(folder).expanduser().resolve()
    for file in (STUDY_FILE, EXPERIMENT_FILE):
        if not (folder / file).is_file():
            raise UserError(
                f"{folder} is not a dmvae tune experiment folder (no {file}); pass <storage>/<name>"
            )
    try:
        study_values = yaml.safe_load((folder / STUDY_FILE).read_text())
        meta = yaml.safe_load((folder / EXPERIMENT_FILE).read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{folder}: corrupt study or experiment file: {str(error).splitlines()[0]}") from None
    study = study_from_dict(study_values, where=f"{folder / STUDY_FILE}: ")
    return Experiment(folder, study, meta["optuna_storage"], meta["optuna_study"])
