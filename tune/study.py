"""A study: a base run config, fixed overrides, a search space and the search settings, from one YAML file.

    name: dmvae_mnist
    base: configs/mnist_dmvae.yaml        # or an inline mapping of RunConfig fields
    set: {data.paired_fraction: 0.002}    # dotted overrides of the base
    space:
      train.lr: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
      model.shared_dim: {type: int, low: 4, high: 32, condition: {model.shared: gaussian}}
    num_samples: 8
    max_epochs: 8
    data_seeds: [10, 11, 12]              # optional: each trial trains on each and reports the mean
    ...

Every mistake (a malformed field, an unsampleable distribution, a key the run config does not have) is a
`UserError` with a one-line message.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dmvae.config import RunConfig, parse_value, read_yaml_mapping, set_dotted
from dmvae.data import pin_data_root
from dmvae.errors import UserError
from tune.space import DefineByRun, Param

REPO = Path(__file__).resolve().parents[1]
PAPER_DEFAULTS = "paper_defaults"
DEFAULT_METRIC = "val/best_accuracy"
PER_MODALITY = (
    "model.private_dim",
    "objective.recon_weight",
    "objective.beta_private",
    "objective.beta_shared",
)
SETTINGS = {  # study field -> (type, default)
    "num_samples": (int, 8),
    "max_epochs": (int, 10),
    "grace_period": (int, 1),
    "reduction_factor": (int, 2),
    "max_concurrent": (int, 2),
    "max_failures": (int, 0),
    "seed": (int, 0),
    "metric": (str, DEFAULT_METRIC),
    "mode": (str, "max"),
    "storage": (str, None),
    "image_every": (int, 2),
    "startup_trials": (int, None),
}
FIELDS = ("name", "base", "set", "space", "resources", "points_to_evaluate", "data_seeds", *SETTINGS)


@dataclass
class Study:
    name: str
    base: dict[str, Any]  # the base run config as a mapping (a base file is read in)
    set: dict[str, Any] = field(default_factory=dict)
    space: list[Param] = field(default_factory=list)
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1, "gpu": 0})
    points_to_evaluate: str | list[dict] | None = PAPER_DEFAULTS
    num_samples: int = 8
    max_epochs: int = 10
    grace_period: int = 1
    reduction_factor: int = 2
    max_concurrent: int = 2
    max_failures: int = 0
    seed: int = 0
    metric: str = DEFAULT_METRIC
    mode: str = "max"
    storage: str | None = None  # Optuna storage URL (None: SQLite file in the experiment folder)
    image_every: int = 2  # TensorBoard image grid every N epochs (and at ASHA milestones, the last epoch)
    startup_trials: int | None = None  # TPE's random (or enqueued) trials before its model; None: a third
    # Data seeds (paired subsets) each trial trains on, in lockstep, reporting the mean of their metrics; an
    # empty list: the run config's seed alone. The exported config carries the first.
    data_seeds: list[int] = field(default_factory=list)

    def startup_count(self) -> int:
        """TPE's startup trials: as set, or a third of the budget (at most Optuna's default of 10), so a
        small study is not all random search."""
        if self.startup_trials is not None:
            return self.startup_trials
        return min(10, max(1, self.num_samples // 3))

    # --- configs ---------------------------------------------------------------------------------------
    def run_config(self, params: dict[str, Any] | None = None) -> RunConfig:
        """The run config of a trial with these sampled values (train.epochs = max_epochs)."""
        values = copy.deepcopy(self.base)
        seed = {"seed": self.data_seeds[0]} if self.data_seeds else {}
        for key, value in {**self.set, **seed, "train.epochs": self.max_epochs, **(params or {})}.items():
            set_dotted(values, key, value)
        return RunConfig.from_dict(values)

    def trial_seeds(self) -> list[int]:
        """The data seeds a trial trains on."""
        return list(self.data_seeds) or [self.run_config().seed]

    def trial_config(self, params: dict[str, Any]) -> RunConfig:
        """As run_config, for use inside a Ray worker: no figures and an absolute data folder."""
        config = self.run_config(params)
        config.eval.figures = False
        pin_data_root(config.data)
        return config

    # --- search ----------------------------------------------------------------------------------------
    def define_by_run(self) -> DefineByRun:
        return DefineByRun(self.space, self._condition_values())

    def initial_points(self, warm: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The points evaluated first, in order; the entry `paper_defaults` is the base config's values. A
        warm start `warm` comes last, in place of the points that agree with it on every key they set: Optuna
        samples their other keys, and where it drew the warm start's values one config trained twice
        (table1_mnist_balanced's 0.2 % study, before)."""
        points = self.points_to_evaluate
        points = [points] if isinstance(points, str) else points or []
        points = [self.paper_point() if point == PAPER_DEFAULTS else dict(point) for point in points]
        return points if not warm else [p for p in points if not p.items() <= warm.items()] + [warm]

    def paper_point(self) -> dict[str, Any]:
        """The base config's value of every active space key (keys the base leaves unset are sampled)."""
        return self.config_point(self.run_config())

    def config_point(self, run_config: RunConfig) -> dict[str, Any]:
        """The value in `run_config` of every space key active in this study (keys it leaves unset, None, are
        sampled)."""
        config = run_config.to_dict()
        values = self._condition_values()
        point: dict[str, Any] = {}
        for param in self.space:
            if not param.active(values):
                continue
            found, value = lookup(config, param.key)
            if found and value is not None:
                point[param.key] = values[param.key] = value
        return point

    def _condition_values(self) -> dict[str, Any]:
        config = self.run_config().to_dict()
        searched = {param.key for param in self.space}
        keys = {key for param in self.space for key in param.condition if key not in searched}
        return {key: lookup(config, key)[1] for key in keys}

    # --- YAML out --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        space = {}
        for p in self.space:
            spec: dict[str, Any] = {"type": p.type}
            if p.type == "categorical":
                spec["choices"] = list(p.choices)
            else:
                spec |= {"low": p.low, "high": p.high}
                spec |= {"step": p.step} if p.step is not None else {}
                spec |= {"log": True} if p.log and p.type != "loguniform" else {}
            spec |= {"condition": dict(p.condition)} if p.condition else {}
            space[p.key] = spec
        values = {
            "name": self.name,
            "base": self.base,
            "set": self.set,
            "space": space,
            "resources": self.resources,
            "points_to_evaluate": self.points_to_evaluate,
            "data_seeds": list(self.data_seeds),
        }
        return values | {key: getattr(self, key) for key in SETTINGS}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def seed_words(seeds: list[int]) -> str:
    """'data seed 10', or 'data seeds 10 11 12 (mean)' for a study that scores trials on several."""
    if len(seeds) == 1:
        return f"data seed {seeds[0]}"
    return f"data seeds {' '.join(map(str, seeds))} (mean)"


def trials_word(count: int) -> str:
    """'1 trial', '3 trials'."""
    return f"{count} trial" + ("" if count == 1 else "s")


def lookup(values: dict, key: str) -> tuple[bool, Any]:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


# --- loading -------------------------------------------------------------------------------------------
def load_study(path: str | Path, overrides: list[str] | None = None) -> Study:
    """Read a study YAML; `overrides` are `key=value` strings: `study.<field>=...`, `study.space.<key>=...`
    (one dimension of the space) or run config keys."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"study file {path} does not exist; see tune/studies/ for examples")
    values = dict(read_yaml_mapping(path, "study file"))
    values.setdefault("name", path.stem)
    for assignment in overrides or []:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {assignment!r}")
        if key.startswith("study.space."):  # one dimension of the space, added or replaced
            space = values.get("space")
            space = dict(space) if isinstance(space, dict) else {}
            values["space"] = space | {key.removeprefix("study.space."): parse_value(raw)}
        elif key.startswith("study."):
            values[key.removeprefix("study.")] = parse_value(raw)
        else:
            values["set"] = {**_set_mapping(values.get("set")), key: parse_value(raw)}
    return study_from_dict(values, where=f"{path}: ")


def study_from_dict(values: dict[str, Any], where: str = "") -> Study:
    try:
        return _study_from_dict(values)
    except UserError as error:
        raise UserError(f"{where}{error}") from None


def _study_from_dict(values: dict[str, Any]) -> Study:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise UserError(f"unknown study field {unknown[0]!r}; known fields: {', '.join(FIELDS)}")
    name = values.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UserError(f"study name must be letters, digits, '_', '-' or '.', got {name!r}")
    if "base" not in values:
        raise UserError(
            "a study needs `base`: a run config file (e.g. configs/mnist_dmvae.yaml) or a mapping"
        )
    settings = {
        key: _setting(key, values.get(key, default), kind) for key, (kind, default) in SETTINGS.items()
    }
    study = Study(
        name=name,
        base=_base_mapping(values["base"]),
        set=_set_mapping(values.get("set")),
        space=_space(values.get("space")),
        resources=_resources(values.get("resources")),
        points_to_evaluate=values.get("points_to_evaluate", PAPER_DEFAULTS),
        data_seeds=_data_seeds(values.get("data_seeds")),
        **settings,
    )
    _check(study)
    return study


def _setting(key: str, value: Any, kind: type) -> Any:
    if value is None and key in ("storage", "startup_trials"):
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"study field {key} must be a whole number, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise UserError(f"study field {key} must be a string, got {value!r}")
    return value


def _base_mapping(base: Any) -> dict[str, Any]:
    if isinstance(base, dict):
        return copy.deepcopy(base)
    if not isinstance(base, str):
        raise UserError(f"base must be a run config file or a mapping, got {base!r}")
    path = Path(base)
    candidates = [path] if path.is_absolute() else [path, REPO / path]
    for candidate in candidates:
        if candidate.is_file():
            return read_yaml_mapping(candidate, "base config")
    raise UserError(f"base config {base} not found (relative paths are read from here or from {REPO})")


def _set_mapping(values: Any) -> dict[str, Any]:
    if values is None:
        return {}
    if isinstance(values, list):
        pairs = [str(item).partition("=") for item in values]
        if any(not sep for _, sep, _ in pairs):
            raise UserError(f"set: list entries must be key=value, got {values!r}")
        return {key.strip(): parse_value(raw) for key, _, raw in pairs}
    if not isinstance(values, dict):
        raise UserError(f"set must be a mapping of dotted config keys to values, got {values!r}")
    return dict(values)


def _data_seeds(values: Any) -> list[int]:
    if values is None:
        return []
    if (
        not isinstance(values, list)
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values)
        or len(set(values)) != len(values)
    ):
        raise UserError(f"data_seeds must be a list of distinct whole numbers >= 0, got {values!r}")
    return list(values)


def _space(values: Any) -> list[Param]:
    if not isinstance(values, dict) or not values:
        raise UserError("space must be a non-empty mapping of dotted config keys to distributions")
    return [Param.from_dict(str(key), spec) for key, spec in values.items()]


def _resources(values: Any) -> dict[str, float]:
    values = {"cpu": 1, "gpu": 0} | (values if isinstance(values, dict) else {})
    if set(values) - {"cpu", "gpu"}:
        raise UserError(f"resources takes cpu and gpu only, got {sorted(values)}")
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UserError(f"resources.{key} must be a number >= 0, got {value!r}")
    if values["cpu"] <= 0:
        raise UserError("resources.cpu must be above 0")
    if values["gpu"] > 1 and values["gpu"] != int(values["gpu"]):
        raise UserError(f"resources.gpu above 1 must be a whole number, got {values['gpu']}")
    return values


# --- checks against the run config ---------------------------------------------------------------------
def _check(study: Study) -> None:
    for key in ("num_samples", "max_epochs", "grace_period", "max_concurrent"):
        if getattr(study, key) < 1:
            raise UserError(f"study field {key} must be >= 1, got {getattr(study, key)}")
    if study.max_failures < 0 or study.seed < 0 or study.image_every < 0:
        raise UserError("study fields max_failures, seed and image_every must be >= 0")
    if study.startup_trials is not None and study.startup_trials < 1:
        raise UserError(f"study field startup_trials must be >= 1 or null, got {study.startup_trials}")
    if study.grace_period > study.max_epochs:
        raise UserError(f"grace_period {study.grace_period} is above max_epochs {study.max_epochs}")
    if study.reduction_factor < 2:
        raise UserError(f"reduction_factor must be >= 2, got {study.reduction_factor}")
    if study.mode not in ("max", "min"):
        raise UserError(f"mode must be max or min, got {study.mode!r}")
    if not study.metric.startswith(("val/", "train/")):
        raise UserError(
            f"metric must be a validation or training metric (val/... or train/...), got {study.metric!r}"
        )
    base = study.run_config()  # the base with `set` applied must be a valid run config
    config = base.to_dict()
    modalities = {name for key in PER_MODALITY for name in lookup(config, key)[1]} | set(
        config["data"]["kinds"]
    )
    declared: set[str] = set()
    for param in study.space:
        _check_key(config, param.key, modalities, f"space key {param.key}")
        for value in param.extremes():
            try:
                study.run_config({param.key: value})
            except UserError as error:
                raise UserError(
                    f"space.{param.key}: value {value!r} is not a valid config value ({error})"
                ) from None
        for key in param.condition:
            _check_key(config, key, modalities, f"space.{param.key}.condition key {key}")
            if key in {p.key for p in study.space} and key not in declared:
                raise UserError(f"space.{param.key}: its condition key {key} must be declared before it")
        declared.add(param.key)
    _check_points(study)


def _check_key(config: dict, key: str, modalities: set[str], what: str) -> None:
    parent, _, last = key.rpartition(".")
    found, node = lookup(config, parent) if parent else (True, config)
    if not found or not isinstance(node, dict):
        raise UserError(f"{what}: the run config has no section {parent!r}")
    if parent in PER_MODALITY:
        if modalities and last not in modalities:
            raise UserError(f"{what}: unknown modality {last!r}; modalities: {', '.join(sorted(modalities))}")
    elif last not in node or isinstance(node[last], dict):
        raise UserError(f"{what} is not a run config field")


def _check_points(study: Study) -> None:
    points = study.points_to_evaluate
    points = [points] if isinstance(points, str) else points
    if points is None:
        return
    if not isinstance(points, list) or not all(p == PAPER_DEFAULTS or isinstance(p, dict) for p in points):
        raise UserError(f"points_to_evaluate must be {PAPER_DEFAULTS}, null or a list of mappings")
    keys = {p.key: p for p in study.space}
    for raw, point in zip(points, study.initial_points(), strict=True):
        where = "the base value of " if raw == PAPER_DEFAULTS else ""
        unknown = sorted(set(point) - set(keys))
        if unknown:
            raise UserError(f"points_to_evaluate: {unknown[0]!r} is not a key of the space")
        for key, value in point.items():
            if keys[key].type == "categorical" and not keys[key].contains(value):
                raise UserError(
                    f"points_to_evaluate: {where}{key}, {value!r}, is not among the choices of the space"
                )
        study.run_config(point)
