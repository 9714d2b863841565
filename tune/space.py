"""Search-space parameters: distributions over dotted RunConfig keys, optionally conditional on another key.

`DefineByRun` is the define-by-run function handed to OptunaSearch. It is a picklable object (not a closure)
because Ray pickles the searcher, space included, into the experiment folder for `dmvae tune resume`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dmvae.errors import UserError

TYPES = ("float", "int", "loguniform", "categorical")
PARAM_FIELDS = ("type", "low", "high", "step", "log", "choices", "condition")


@dataclass(frozen=True)
class Param:
    key: str  # dotted RunConfig key, e.g. objective.recon_weight.label
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()
    condition: dict[str, Any] = field(default_factory=dict)  # {key: value or [values]}: sampled only then

    @classmethod
    def from_dict(cls, key: str, spec: Any) -> Param:
        where = f"space.{key}"
        if not isinstance(spec, dict):
            raise UserError(
                f"{where} must be a mapping such as {{type: float, low: 0.1, high: 1}}, got {spec!r}"
            )
        unknown = sorted(set(spec) - set(PARAM_FIELDS))
        if unknown:
            raise UserError(f"{where}: unknown field {unknown[0]!r}; known fields: {', '.join(PARAM_FIELDS)}")
        kind = spec.get("type")
        if kind not in TYPES:
            raise UserError(f"{where}.type must be one of {', '.join(TYPES)}; got {kind!r}")
        condition = spec.get("condition") or {}
        if not isinstance(condition, dict):
            raise UserError(f"{where}.condition must be a mapping {{key: value}}, got {condition!r}")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise UserError(f"{where}: a categorical parameter needs a non-empty list of choices")
            return cls(key, kind, choices=tuple(choices), condition=condition)
        low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
        for name, value in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise UserError(f"{where}.{name} must be a finite number, got {value!r}")
        if low > high:
            raise UserError(f"{where}: low {low} is above high {high}")
        log = kind == "loguniform" or bool(spec.get("log", False))
        if log and low <= 0:
            raise UserError(f"{where}: a log-scale parameter needs low > 0, got {low}")
        if step is not None and (step <= 0 or log):
            raise UserError(f"{where}.step must be > 0 and cannot be used on a log scale")
        if kind == "int":
            if not all(isinstance(v, int) for v in (low, high) + ((step,) if step is not None else ())):
                raise UserError(f"{where}: an int parameter needs whole-number low, high and step")
            return cls(key, kind, low=low, high=high, step=step, log=log, condition=condition)
        return cls(key, kind, low=float(low), high=float(high), step=step, log=log, condition=condition)

    def extremes(self) -> list:
        """Values that must all be valid config values (checked against the base config)."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in self.choices
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and self.low <= value <= self.high
        )

    def active(self, values: dict[str, Any]) -> bool:
        """Whether the condition holds, given the values of the keys it names."""
        for key, wanted in self.condition.items():
            options = wanted if isinstance(wanted, list) else [wanted]
            if values.get(key) not in options:
                return False
        return True

    def suggest(self, trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


class DefineByRun:
    """Samples the parameters in declared order; a conditional one only when its condition holds.

    A condition reads an earlier parameter of the space or, when the key is not searched, the base config.
    """

    def __init__(self, params: list[Param], fixed: dict[str, Any]):
        self.params = list(params)
        self.fixed = dict(fixed)  # values of the condition keys that are not searched

    def __call__(self, trial) -> None:
        values = dict(self.fixed)
        for param in self.params:
            if param.active(values):
                values[param.key] = param.suggest(trial)
