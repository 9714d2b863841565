"""The experiment folder: `<storage>/<name>/` holds Ray's state, study.yaml and experiment.yaml.

study.yaml is the study as run (its base config inlined), so resume, status and export need only the
folder. experiment.yaml records the Optuna storage URL and the Optuna study name unique to the experiment;
the default storage, optuna.db in the folder, goes with the folder when it is moved or copied.
The storage is a local or NFS folder, or a cloud URI (s3://bucket/prefix, see tune/storage.py); a cloud
storage holds no SQLite file, so its study's `storage:` must be a database URL or a journal file.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from dmvae.errors import UserError
from tune import storage as store
from tune.study import Study, study_from_dict

STUDY_FILE = "study.yaml"
EXPERIMENT_FILE = "experiment.yaml"
DEFAULT_STORAGE = Path("runs") / "tune"


@dataclass
class Experiment:
    folder: Path | str  # a local Path, or a URI string (s3://bucket/prefix/name)
    study: Study
    optuna_storage: str
    optuna_study: str

    @property
    def storage_path(self) -> Path | str:
        return store.parent_and_name(self.folder)[0]

    @property
    def name(self) -> str:
        return store.parent_and_name(self.folder)[1]

    @property
    def remote(self) -> bool:
        return store.is_uri(self.folder)


def check_optuna_storage(url: str | None, storage_path: str | None) -> None:
    """A cloud storage path needs an Optuna storage that every driver can reach: a database or a journal."""
    if not (storage_path and store.is_uri(storage_path)):
        return
    if url is None or url.startswith("sqlite"):
        what = "no study.storage" if url is None else f"study.storage {url}"
        raise UserError(
            f"--storage-path {storage_path} cannot hold the Optuna SQLite file ({what}): set study.storage "
            "to a database URL (--set study.storage=postgresql://user@host/db) or a journal file on a "
            "shared mount (--set study.storage=journal:/mnt/shared/optuna.log)"
        )


def create_experiment(study: Study, name: str | None, storage_path: str | None) -> Experiment:
    """Make the folder and write study.yaml and experiment.yaml; an existing experiment is an error."""
    check_optuna_storage(study.storage, storage_path)
    if storage_path and store.is_uri(storage_path):
        root: Path | str = store.check_uri(storage_path)
    else:
        root = Path(storage_path).expanduser().resolve() if storage_path else DEFAULT_STORAGE.resolve()
    if name is None:
        import time

        name = f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = store.join(root, name)
    if store.exists(store.join(folder, STUDY_FILE)):
        raise UserError(f"experiment {folder} already exists; continue it with `dmvae tune resume {folder}`")
    if study.storage is not None:
        from tune.search import close_storage, open_storage

        close_storage(open_storage(study.storage))  # reachable now, not after the folder is made
    if not store.is_uri(folder):
        folder.mkdir(parents=True, exist_ok=True)
    from dmvae.data import pin_data_root

    pin_data_root(study.base.setdefault("data", {}))  # trials run in their own working folders
    storage = study.storage or f"sqlite:///{folder / store.OPTUNA_FILE}"
    experiment = Experiment(folder, study, storage, f"{name}-{uuid.uuid4().hex[:8]}")
    store.write_text(store.join(folder, STUDY_FILE), yaml.safe_dump(study.to_dict(), sort_keys=False))
    meta = {"name": name, "optuna_storage": storage, "optuna_study": experiment.optuna_study}
    store.write_text(store.join(folder, EXPERIMENT_FILE), yaml.safe_dump(meta, sort_keys=False))
    return experiment


def open_experiment(folder: str | Path) -> Experiment:
    if store.is_uri(folder):
        folder = store.check_uri(str(folder))
    else:
        folder = Path(folder).expanduser().resolve()
    for file in (STUDY_FILE, EXPERIMENT_FILE):
        if not store.is_file(store.join(folder, file)):
            raise UserError(
                f"{folder} is not a dmvae tune experiment folder (no {file}); pass <storage>/<name>"
            )
    try:
        study_values = yaml.safe_load(store.read_text(store.join(folder, STUDY_FILE)))
        meta = yaml.safe_load(store.read_text(store.join(folder, EXPERIMENT_FILE)))
    except yaml.YAMLError as error:
        raise UserError(f"{folder}: corrupt study or experiment file: {str(error).splitlines()[0]}") from None
    study = study_from_dict(study_values, where=f"{store.join(folder, STUDY_FILE)}: ")
    storage = store.folder_storage(meta["optuna_storage"], folder)  # the folder may have moved
    return Experiment(folder, study, storage, meta["optuna_study"])
