"""One config object describes a run; YAML in and out (pythae-style BaseConfig)."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dmvae.errors import UserError

DATASETS = ("mnist", "fmnist", "celeba", "npz")
MODALITY_KINDS = ("image", "label", "attributes")
SHARED_KINDS = ("gaussian", "categorical", "binary")
SCHEDULES = ("authors", "mixed")
PROTOCOLS = ("expected", "mode", "sampled")  # eval.protocol: how z_s is taken from q(z_s | source)


class BaseConfig:
    """Dataclass mix-in: strict `from_dict`, YAML round trip, dotted `--set key=value` overrides."""

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "") -> BaseConfig:
        values = dict(values or {})
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(
                f"unknown config key {where}{unknown[0]!r}; known keys here: {', '.join(sorted(names))}"
            )
        kwargs = {}
        for name, value in values.items():
            hint = hints[name]
            if isinstance(hint, type) and issubclass(hint, BaseConfig):
                if value is not None and not isinstance(value, dict):
                    raise UserError(f"config key {where}{name} must be a mapping, got {value!r}")
                value = hint.from_dict(value, where=f"{where}{name}.")
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BaseConfig:
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"config file {path} does not exist; pass a YAML file such as configs/mnist_dmvae.yaml"
            )
        return cls.from_dict(read_yaml_mapping(path, "config file"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def with_overrides(self, assignments: list[str]) -> BaseConfig:
        """Apply `a.b.c=value` strings; the value is parsed as YAML (so 1e-3, true, [1, 2] work)."""
        values = self.to_dict()
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep or not key:
                raise UserError(f"--set expects key=value, got {assignment!r}")
            set_dotted(values, key.strip(), parse_value(raw))
        return type(self).from_dict(values)


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """The mapping a YAML file holds (empty file: {}); bad YAML or another type is a one-line UserError."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{what} {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UserError(f"{what} {path} must hold a mapping of keys to values")
    return values


def parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def set_dotted(values: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = values
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None and part in node:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"cannot set {key}: {'.'.join(parts[: depth + 1])} is not a config section")
        node = child
    node[parts[-1]] = value


@dataclass
class DataConfig(BaseConfig):
    name: str = "mnist"
    root: str | None = None  # default: $DMVAE_DATA or ./data
    paired_fraction: float = 1.0
    train_size: int | None = None  # use only the first N training examples (quick experiments, tests)
    val_labels: int | None = None  # labelled validation examples for model selection (None: the whole split)
    balanced_pairs: bool = False  # paired examples spread evenly over the classes (Kingma et al. 2014)
    path: str | None = None  # npz only: the file
    kinds: dict[str, str] = field(default_factory=dict)  # npz only: modality name -> image|label|attributes


@dataclass
class ModelConfig(BaseConfig):
    kind: str = "dmvae"  # dmvae | mvae
    architecture: str = "auto"  # auto (by dataset) | mnist | fmnist | celeba | mlp | mvae_mlp
    shared: str = "categorical"  # gaussian | categorical | binary
    shared_dim: int = 10  # Gaussian dims, categorical classes, or binary variables
    temperature: float = 0.66  # Concrete relaxation temperature T (Eq. 6)
    private_dim: dict[str, int] = field(default_factory=lambda: {"image": 10})  # absent modality: 0
    hidden_dim: int = 256  # width of the generic MLP networks
    # BatchNorm2d after each convolution's ReLU in the Fashion-MNIST networks, as in the authors' code
    # (Table 4 as printed has none); architecture fmnist only
    batch_norm: bool = False


@dataclass
class ObjectiveConfig(BaseConfig):
    recon_weight: dict[str, float] = field(default_factory=dict)  # lambda_i of Eq. 4; absent: by size
    beta_private: dict[str, float] = field(
        default_factory=dict
    )  # TC weight, private group (Eq. 5); absent: 1
    beta_shared: dict[str, float] = field(default_factory=dict)  # TC weight, shared group (Eq. 5); absent: 1
    mi_weight: float = 1.0  # weight of the index-code MI term (Eq. 2)
    dw_weight: float = 1.0  # weight of the dimension-wise KL term (Eq. 2)
    estimator: str = "mws"  # minibatch-weighted (mws) or minibatch-stratified (mss) sampling
    concrete_density: str = "exact"  # exact Concrete log-density, or "argmax": categorical pmf at argmax
    unpaired_weight: float = 1.0  # multiplies the loss of image-only (unpaired) examples
    kl_anneal_epochs: int = 0  # KL weight rises linearly from 0 to 1 over these epochs (MVAE)


@dataclass
class TrainConfig(BaseConfig):
    epochs: int = 30
    # stop once the validation accuracy has not improved for this many epochs (0: train all `epochs`); the
    # best-validation weights are kept either way, so this only saves the epochs that could not be selected
    # unless a later one beat a long plateau
    patience: int = 0
    # initialisations tried: each trains `restart_epochs` epochs and the run goes on from the one with the
    # best validation accuracy (1: the run's own initialisation only); a guard against an initialisation
    # whose categorical shared latent merges two classes, which more epochs do not undo
    restarts: int = 1
    restart_epochs: int = 5
    batch_size: int = 100
    lr: float = 1e-3
    lr_decay: str = "none"  # none | cosine: annealed from lr towards 0 over `epochs`, set at each epoch
    # decay of an exponential moving average of the weights, updated every step, that validation selects
    # and the test scores (0: off, the paper's training)
    ema: float = 0.0
    augment_shift: int = 0  # training images move by up to this many pixels, each its own way (0: off)
    augment_rotate: float = 0.0  # ... after turning by up to this many degrees, each its own way (0: off)
    augment_flip: bool = False  # ... after a left-right mirror, probability 1/2 (Fashion-MNIST; not digits)
    schedule: str = "mixed"  # authors | mixed
    paired_ratio: float = 1.0  # mixed: paired examples per step, as a fraction of batch_size
    checkpoint_every: int = 1  # epochs between checkpoints (0: only the last)
    threads: int | None = None  # torch CPU threads (None: torch's default)
    precision: str = "auto"  # auto: bf16 for convnets on CPUs with native bfloat16 and on GPUs | fp32 | bf16
    compile: bool = False  # torch.compile the loss (fused kernels; the first epoch pays the compile time)


@dataclass
class EvalConfig(BaseConfig):
    # expected: the predictive E_q(z_s|x) p(y | z_s) over `samples` relaxed samples of z_s | mode: z_s = the
    # mode of q(z_s | x) | sampled: one relaxed sample (the authors' protocol)
    protocol: str = "expected"
    samples: int = 32
    source: str | None = None  # modality to infer z_s from (default: the first)
    target: str | None = None  # modality to predict (default: the first label/attributes one)
    every: int = 1  # validate every N epochs (the last epoch always)
    figures: bool = True
    coherence: bool = True  # final runs: test_coherence, where the dataset has a coherence classifier
    coherence_samples: int = 100  # images generated per class for the coherence


@dataclass
class RunConfig(BaseConfig):
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @classmethod
    def from_dict(cls, values, where=""):
        config = super().from_dict(values, where)
        config.validate()
        return config

    def validate(self) -> None:
        d, m, o, t, e = self.data, self.model, self.objective, self.train, self.eval
        _choice("data.name", d.name, DATASETS)
        if not (isinstance(d.paired_fraction, int | float) and 0 < d.paired_fraction <= 1):
            raise UserError(f"data.paired_fraction must be in (0, 1], got {d.paired_fraction!r}")
        if d.train_size is not None and (not isinstance(d.train_size, int) or d.train_size < 1):
            raise UserError(f"data.train_size must be a positive integer or null, got {d.train_size!r}")
        if d.val_labels is not None and (not isinstance(d.val_labels, int) or d.val_labels < 1):
            raise UserError(f"data.val_labels must be a positive integer or null, got {d.val_labels!r}")
        _boolean("data.balanced_pairs", d.balanced_pairs)
        if d.balanced_pairs and d.name == "celeba":
            raise UserError("data.balanced_pairs needs class labels; CelebA has attributes: set it false")
        if d.name == "npz" and not d.path:
            raise UserError("data.name is npz but data.path is not set; set data.path to your .npz file")
        for name, kind in d.kinds.items():
            _choice(f"data.kinds.{name}", kind, MODALITY_KINDS)
        _choice("model.kind", m.kind, ("dmvae", "mvae"))
        _choice("model.shared", m.shared, SHARED_KINDS)
        if m.kind == "mvae" and m.shared != "gaussian":
            raise UserError("MVAE has a Gaussian shared latent only; set model.shared=gaussian")
        _positive_int("model.shared_dim", m.shared_dim)
        _positive_int("model.hidden_dim", m.hidden_dim)
        _boolean("model.batch_norm", m.batch_norm)
        _positive("model.temperature", m.temperature)
        for name, size in m.private_dim.items():
            if not isinstance(size, int) or size < 0:
                raise UserError(f"model.private_dim.{name} must be a whole number >= 0, got {size!r}")
            if m.kind == "mvae" and size:
                raise UserError("MVAE has no private latents; set model.private_dim to {} or sizes 0")
        for group in ("recon_weight", "beta_private", "beta_shared"):
            for name, value in getattr(o, group).items():
                _non_negative(f"objective.{group}.{name}", value)
        _non_negative("objective.mi_weight", o.mi_weight)
        _non_negative("objective.dw_weight", o.dw_weight)
        _non_negative("objective.unpaired_weight", o.unpaired_weight)
        _choice("objective.estimator", o.estimator, ("mws", "mss"))
        _choice("objective.concrete_density", o.concrete_density, ("exact", "argmax"))
        if not isinstance(o.kl_anneal_epochs, int) or o.kl_anneal_epochs < 0:
            raise UserError(
                f"objective.kl_anneal_epochs must be a whole number >= 0, got {o.kl_anneal_epochs!r}"
            )
        _positive_int("train.epochs", t.epochs)
        _non_negative_int("train.patience", t.patience, " of epochs", " (0: no early stopping)")
        _positive_int("train.restarts", t.restarts)
        _positive_int("train.restart_epochs", t.restart_epochs)
        _positive_int("train.batch_size", t.batch_size)
        _non_negative_int("train.augment_shift", t.augment_shift, " of pixels")
        if isinstance(t.augment_rotate, bool) or not isinstance(t.augment_rotate, int | float):
            raise UserError(f"train.augment_rotate must be a number of degrees, got {t.augment_rotate!r}")
        if not 0 <= t.augment_rotate <= 180:
            raise UserError(f"train.augment_rotate must be in [0, 180] degrees, got {t.augment_rotate!r}")
        _boolean("train.augment_flip", t.augment_flip)
        _positive("train.lr", t.lr)
        if not isinstance(t.ema, int | float) or isinstance(t.ema, bool) or not 0 <= t.ema < 1:
            raise UserError(
                f"train.ema must be in [0, 1) (the average's decay, e.g. 0.999; 0: off), got {t.ema!r}"
            )
        _choice("train.lr_decay", t.lr_decay, ("none", "cosine"))
        _choice("train.schedule", t.schedule, SCHEDULES)
        _positive("train.paired_ratio", t.paired_ratio)
        _choice("train.precision", t.precision, ("auto", "fp32", "bf16"))
        _boolean("train.compile", t.compile)
        if not isinstance(t.checkpoint_every, int) or t.checkpoint_every < 0:
            raise UserError(f"train.checkpoint_every must be a whole number >= 0, got {t.checkpoint_every!r}")
        if t.threads is not None:
            _positive_int("train.threads", t.threads)
        _choice("eval.protocol", e.protocol, PROTOCOLS)
        _positive_int("eval.samples", e.samples)
        _positive_int("eval.every", e.every)
        _boolean("eval.coherence", e.coherence)
        _positive_int("eval.coherence_samples", e.coherence_samples)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def _boolean(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise UserError(f"{key} must be true or false, got {value!r}")


def _positive(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise UserError(f"{key} must be a positive number, got {value!r}")


def _non_negative(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or math.isinf(value):
        raise UserError(f"{key} must be a number >= 0, got {value!r}")


def _non_negative_int(key: str, value: Any, unit: str = "", note: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{key} must be a whole number{unit} >= 0{note}, got {value!r}")


def _positive_int(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key} must be a whole number >= 1, got {value!r}")


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    config = RunConfig.from_yaml(path)
    return config.with_overrides(overrides) if overrides else config
