"""Every key of the config's own sections, defined once: name, default, JSON type, check and
a one-line description.

The tables below are the single definition of the top-level project keys, `trainer`, the
data loader arguments every loader takes (`data_loader.args.sampler`, `folds`, `fold`),
`lr_scheduler.interval` and the `sweep` section. Everything else follows from them:
the defaults filled into the resolved config (utils/config_io.py with_defaults), the
validation and its one-line messages (trainer/config/option_checks.py, sweep/spec.py), the
JSON Schema of `train.py --print-schema` (trainer/config/json_schema.py) and the key
tables of docs/config.md (`python -m trainer.config.generate` writes them).

Adding a trainer option is one `Option(...)` row in TRAINER; its value is then in
`config["trainer"][name]`, resolved, wherever the trainer reads it. `schema` is the value's
JSON Schema and, unless a custom `check` owns the value, also its check: a value it refuses
is `error: trainer.<name>: expected <expected>, got <value>`. A `check` is a function
(value, Context) -> resolved value that raises ConfigError, written here, or the dotted
path of one in a higher layer ("trainer.config.trainer_checks.check_ema"), which
trainer/config/option_checks.py resolves: this module imports nothing above utils.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from utils.errors import ConfigError
from utils.schema import is_int, is_number


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED = _Marker("REQUIRED")  # a key every config must have
ABSENT = _Marker("ABSENT")  # an optional key that stays absent when unset (sweep)

POSITIVE = {"type": "integer", "minimum": 1}
NON_NEGATIVE = {"type": "integer", "minimum": 0}
AMP_MODES = ("off", "bf16", "fp16")
SAMPLERS = (None, "balanced")


@dataclass(frozen=True)
class Option:
    """One config key: its default, its JSON Schema (also its check), a description."""

    name: str
    default: Any
    doc: str  # one line: docs/config.md and the JSON Schema's description
    schema: dict | str = field(default_factory=dict)  # JSON Schema of the value ({}: anything;
    # a dotted path: one defined above utils, next to the custom check)
    expected: str = ""  # the message's 'expected ...' for a value `schema` refuses
    check: Callable | str | None = None  # (value, Context) -> resolved value, or a dotted path
    off: bool = False  # YAML reads a bare `off` as false: false means "off"
    section: bool = False  # a component section: its schema and check live with its builder

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def default_value(self) -> Any:
        """A fresh copy of the default (a list default is never shared)."""
        return copy.deepcopy(self.default)


@dataclass
class Context:
    """What a custom check may look at besides its value."""

    config: dict  # the whole config as written (overrides applied)
    resolved: dict  # this section's keys resolved so far (in the table's order)
    trust: Any = None  # utils/registry.Trust of the config


def check_fold(fold: Any, ctx: Context) -> Any:
    """data_loader.args.fold: 0..folds-1, and only with folds (None: train.py runs every
    fold)."""
    folds = ctx.resolved["folds"]
    if folds is None:
        if fold is not None:
            raise ConfigError("data_loader.args.fold: needs data_loader.args.folds (the number "
                              "of folds)")
        return fold
    if not (fold is None or (is_int(fold) and 0 <= fold < folds)):
        raise ConfigError(f"data_loader.args.fold: expected an integer from 0 to {folds - 1}, "
                          f"got {fold!r}")
    return fold


# ---------------------------------------------------------------- the tables

TOP_LEVEL: dict[str, Option] = {o.name: o for o in (
    Option("name", REQUIRED, "the experiment's name, used in output paths",
           {"type": "string", "pattern": r"^(?!\.{1,2}$)[^/]*\S[^/]*$"},
           "a non-empty name without '/'"),
    Option("seed", 0, "one seed for python, numpy, torch and the data order",
           {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
           "an integer >= 0 and below 2**63"),
    Option("n_gpu", 0, "GPUs to use; 0 = CPU", NON_NEGATIVE, "an integer >= 0"),
    Option("arch", REQUIRED, "the model: {type, args}", section=True),
    Option("data_loader", REQUIRED, "the data loader: {type, args}", section=True),
    Option("optimizer", REQUIRED, "a torch.optim optimizer: {type, args}", section=True),
    Option("loss", REQUIRED, "a loss name, or {type, args}", section=True),
    Option("metrics", [], "metrics logged per epoch (names or {type, args})", section=True),
    Option("lr_scheduler", None, "a torch.optim.lr_scheduler class: {type, args, interval}; "
           "null = none", section=True),
    Option("trainer", REQUIRED, "training options (the trainer table)", section=True),
    Option("callbacks", [], "callbacks at the loop's hooks: names from trainer/callbacks/ or "
           "{type, args} (docs/callbacks.md)", section=True),
    Option("sweep", ABSENT, "a sweep over this config (docs/sweeps.md)", section=True),
)}

TRAINER: dict[str, Option] = {o.name: o for o in (
    Option("epochs", REQUIRED, "epochs to train (required)", POSITIVE, "a positive integer"),
    Option("save_dir", "saved/", "root of models/ and log/",
           {"type": "string", "pattern": r"\S"}, "a folder path (not blank)",
           check="trainer.config.trainer_checks.check_save_dir"),
    Option("save_period", 1, "checkpoint every N epochs (and after the last)", POSITIVE,
           "a positive integer"),
    Option("verbosity", 1, "0 warnings only, 1 a line per epoch, 2 also the model",
           {"enum": [0, 1, 2]}, "0, 1 or 2"),
    Option("heartbeat_s", 30, "progress line every N s without a terminal; 0 = off",
           {"type": "number", "minimum": 0}, "a number of seconds >= 0 (0 = off)"),
    Option("monitor", "off", "'min <metric>', 'max <metric>' or 'off'",
           {"type": "string", "pattern": r"^(off|(min|max) \S+)$"}, off=True,
           check="trainer.config.trainer_checks.check_monitor"),
    Option("early_stop", 0, "epochs without improvement before stopping; 0 = off",
           NON_NEGATIVE, "an integer >= 0 (0 = off)"),
    Option("tensorboard", False, "write TensorBoard logs", {"type": "boolean"}, "true or false"),
    Option("keep_last", 0, "keep the newest N periodic checkpoints; 0 = all", NON_NEGATIVE,
           "an integer >= 0 (0 = keep all)"),
    Option("histogram_period", 10, "TensorBoard histograms every N epochs; 0 = none",
           NON_NEGATIVE, "an integer >= 0 (0 = no histograms)"),
    Option("amp", "off", "mixed precision: off, bf16 or fp16 (fp16 on CUDA only)",
           {"enum": list(AMP_MODES)}, "off, bf16 or fp16", off=True),
    Option("accumulate_steps", 1, "optimizer step every N batches", POSITIVE,
           "a positive integer"),
    Option("clip_grad_norm", 0, "max total gradient norm; 0 or null = off",
           {"type": ["number", "null"], "minimum": 0}, "a number >= 0 (0 or null = off)"),
    Option("ema", None, "weight averaging {decay, every, validate}; null = off "
           "(docs/averaging.md)", "trainer.callbacks.averaging.EMA_SCHEMA",
           check="trainer.config.trainer_checks.check_ema"),
    Option("swa", None, "stochastic weight averaging {start_epoch, swa_lr, anneal_epochs, "
           "anneal_strategy}; null = off", check="trainer.config.trainer_checks.check_swa"),
    Option("compile", False, "torch.compile: true ({backend: inductor}), false or its "
           "arguments", check="trainer.config.trainer_checks.check_compile"),
    Option("len_epoch", None, "batches per epoch; null = the loader's length",
           {"type": ["integer", "null"], "minimum": 1}, "a positive integer or null (off)"),
    Option("max_steps", None, "stop after N optimizer steps; null = off",
           {"type": ["integer", "null"], "minimum": 1}, "a positive integer or null (off)"),
    Option("loggers", [], "optional backends, e.g. [mlflow] (docs/tracking.md)",
           {"type": "array"}, check="trainer.config.trainer_checks.check_loggers"),
    Option("mlflow", None, "{tracking_uri, experiment}; null = mlruns in save_dir, "
           "experiment = the config's name", check="trainer.config.trainer_checks.check_mlflow"),
)}

DATA_LOADER: dict[str, Option] = {o.name: o for o in (
    Option("sampler", None, "balanced: class-balanced draws; null = the loader's own order",
           {"enum": list(SAMPLERS)}, "balanced or null"),
    Option("folds", None, "k-fold cross-validation over the training part; null = off",
           {"type": ["integer", "null"], "minimum": 2}, "an integer >= 2 (or null)"),
    Option("fold", None, "the fold this run validates on (0..folds-1)",
           {"type": ["integer", "null"], "minimum": 0},
           check=check_fold),
)}

LR_SCHEDULER: dict[str, Option] = {o.name: o for o in (
    Option("interval", "epoch", "step: after every optimizer step; epoch: after every epoch",
           {"enum": ["epoch", "step"]}, "step or epoch"),
)}

SWEEP: dict[str, Option] = {o.name: o for o in (
    Option("name", None, "the sweep folder's name; null = the config's name",
           {"type": ["string", "null"]}),
    Option("method", "grid", "grid | random | tpe | cmaes | qmc | gp | nsga2 (Optuna)",
           {"type": "string"}),
    Option("trials", None, "trials to run (random and Optuna methods)",
           {"type": ["integer", "null"], "minimum": 1}),
    Option("seed", None, "random only; null = the config's seed",
           {"type": ["integer", "null"], "minimum": 0}),
    Option("metric", None, "'min|max <metric>' ranking the trials; null = trainer.monitor",
           {"type": ["string", "null"]}),
    Option("parameters", {}, "key path -> list of values, or {distribution, low, high}",
           {"type": ["object", "null"]}),
    Option("storage", None, "Optuna storage URL of the trial queue; null = study.journal in "
           "the sweep folder", {"type": ["string", "null"], "pattern": "://"},
           "an Optuna storage URL such as postgresql://user:pass@host/db"),
    Option("pruner", "median", "Optuna only: median | hyperband | none",
           {"enum": ["median", "hyperband", "none"]}, "one of median, hyperband, none"),
    Option("study", None, "Optuna only: the study's name; null = the sweep's name and id",
           {"type": ["string", "null"], "minLength": 1}, "a study name"),
    Option("heartbeat_interval", 10, "seconds between a running trial's heartbeats",
           POSITIVE, "a positive integer (seconds)"),
    Option("grace_period", 60, "seconds without a heartbeat before a trial is retried",
           POSITIVE, "a positive integer (seconds)"),
)}

# every table, by the key path prefix of its keys (docs/config.md, the code-reads test)
TABLES: dict[str, dict[str, Option]] = {"": TOP_LEVEL, "trainer.": TRAINER,
                                        "data_loader.args.": DATA_LOADER,
                                        "lr_scheduler.": LR_SCHEDULER, "sweep.": SWEEP}


def defaults(table: dict[str, Option]) -> dict[str, Any]:
    """{key: default} of the keys a resolved config always holds (not REQUIRED or ABSENT)."""
    return {k: o.default_value() for k, o in table.items()
            if o.default is not REQUIRED and o.default is not ABSENT}


def value_of(table: dict[str, Option], values: dict, key: str) -> Any:
    """values[key], or the table's default for it (a section the resolved config keeps as
    written: data_loader.args, lr_scheduler, sweep)."""
    return values[key] if key in values else table[key].default_value()


# ---------------------------------------------------------------- checks

_TYPES: dict[str, Callable[[Any], bool]] = {
    "integer": is_int, "number": is_number, "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str), "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict)}


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def matches(schema: dict, value: Any) -> bool:
    """Whether `value` satisfies `schema` (the subset of JSON Schema the tables use: type,
    enum, const, minimum, maximum, pattern, minLength, items, anyOf)."""
    types = schema.get("type", list(_TYPES))
    checks = [
        any(_TYPES[t](value) for t in ([types] if isinstance(types, str) else types)),
        "enum" not in schema or any(_same(value, e) for e in schema["enum"]),
        "const" not in schema or _same(value, schema["const"]),
        not is_number(value) or schema.get("minimum", value) <= value <= schema.get("maximum",
                                                                                    value),
        not isinstance(value, str) or (len(value) >= schema.get("minLength", 0) and
                                       re.search(schema.get("pattern", ""), value) is not None),
        not isinstance(value, list) or all(matches(schema.get("items", {}), v) for v in value)]
    if not all(checks):
        return False
    return "anyOf" not in schema or any(matches(s, value) for s in schema["anyOf"])


def check_value(option: Option, value: Any, key: str) -> Any:
    """`value` of `option` (at key path `key`) after its schema check: a bare YAML `off`
    read as false becomes "off"; a refused value is '<key>: expected ..., got ...'."""
    if option.off and value is False:
        value = "off"
    if option.expected and not matches(option.schema, value):
        raise ConfigError(f"{key}: expected {option.expected}, got {value!r}")
    return value
