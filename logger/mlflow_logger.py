"""MLflow tracking (trainer.loggers: [mlflow]), an optional extra: pip install -e '.[mlflow]'.

One MLflow run per training run, written by rank 0: the resolved config as
params (dotted keys), each epoch's row as metrics at step = epoch, and at the
end model_best.pth as an artifact. The MLflow run id goes into every
checkpoint (`mlflow_run_id`, a string), so an exact resume continues the same
MLflow run; epochs that run already holds are not logged twice. A trial of a
sweep finds its parent run's id in TRAIN_MLFLOW_PARENT_RUN_ID
(sweep/mlflow_parent.py) and becomes its child. mlflow is imported inside
functions only: without the extra, nothing here is loaded.
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import suppress
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from logger.logger import get_logger
from utils.checkpoint import BEST_NAME
from utils.errors import ConfigError, RunError, check_keys

PIP = "pip install mlflow-skinny  (or: pip install -e '.[mlflow]')"
PARENT_ENV = "TRAIN_MLFLOW_PARENT_RUN_ID"  # set by a sweep for its trials
RUN_ID_KEY = "mlflow_run_id"  # the checkpoint's entry
OPTIONS = {"tracking_uri": None, "experiment": None}  # trainer.mlflow
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
BATCH = 100  # params per log_batch call (MLflow's limit)
_NOT_ALLOWED = re.compile(r"[^\w\-./ ]")  # MLflow keys: alphanumerics, _ - . / and space


def validate_options(options: Any) -> dict:
    """trainer.mlflow resolved: {tracking_uri, experiment}, each a string or null."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ConfigError(f"trainer.mlflow: expected a mapping with tracking_uri and experiment, "
                          f"got {options!r}")
    check_keys(options, OPTIONS, "trainer.mlflow")
    resolved = {**OPTIONS, **options}
    for key, value in resolved.items():
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise ConfigError(f"trainer.mlflow.{key}: expected a non-empty string or null, "
                              f"got {value!r}")
    return resolved


def check_installed() -> None:
    """ConfigError naming the pip command when mlflow cannot be imported."""
    if find_spec("mlflow") is None:
        raise ConfigError(f"trainer.loggers: mlflow is not installed; install it with: {PIP}")


def tracking_uri(config: dict) -> str:
    """trainer.mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else the file store
    <trainer.save_dir>/mlruns (an absolute file: URI)."""
    trainer = config["trainer"]
    uri = (trainer.get("mlflow") or {}).get("tracking_uri") or os.environ.get(
        "MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return (Path(trainer["save_dir"]).resolve() / "mlruns").as_uri()


def experiment_name(config: dict) -> str:
    """trainer.mlflow.experiment, else the config's name."""
    return (config["trainer"].get("mlflow") or {}).get("experiment") or config["name"]


def client(uri: str) -> Any:
    """An MlflowClient on `uri`. MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE
    is true: for a file store (the default here) this process sets it."""
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow_client: Any, name: str) -> str:
    """The id of experiment `name`, created when missing (another process may create it
    at the same moment: then its id)."""
    from mlflow.exceptions import MlflowException

    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(name)
    except MlflowException:
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def key(name: str) -> str:
    """`name` with the characters MLflow refuses in a key replaced by '_'."""
    return _NOT_ALLOWED.sub("_", name)[:250]


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{'trainer.epochs': '40', 'arch.type': 'MLP', ...}: mappings are walked, every other
    value is written as JSON (strings as they are); empty mappings are kept as '{}'."""
    flat: dict[str, str] = {}
    for name, value in config.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            flat[key(dotted)] = text[:MAX_PARAM_LENGTH]
    return flat


def log_params(mlflow_client: Any, run_id: str, params: dict[str, str],
               logged: dict[str, str]) -> list[str]:
    """Log the params `logged` lacks; return the keys whose value differs from the logged one
    (MLflow params are fixed once logged: those keep their first value)."""
    from mlflow.entities import Param

    new = [Param(k, v) for k, v in params.items() if k not in logged]
    for i in range(0, len(new), BATCH):
        mlflow_client.log_batch(run_id, params=new[i:i + BATCH])
    return [k for k, v in params.items() if k in logged and logged[k] != v]


def failed(what: str, error: Exception) -> RunError:
    """RunError 'mlflow: cannot <what>: <the error's first line>'."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return RunError(f"mlflow: cannot {what}: {first}")


class MlflowLogger:
    """The MLflow run of one training run (rank 0). `run_id`: the one the resumed checkpoint
    holds (None: a new run); `history`: the rows the run already has (a resume)."""

    def __init__(self, config: dict, run_name: str, save_dir: Path, run_id: str | None,
                 history: list[dict]):
        self.save_dir = save_dir
        self.logger = get_logger("mlflow")
        uri = tracking_uri(config)
        try:
            self.client = client(uri)
            self.run_id, self.last_step = self._open(config, run_name, run_id)
            changed = log_params(self.client, self.run_id, flatten(config),
                                 self.client.get_run(self.run_id).data.params)
        except RunError:
            raise
        except Exception as e:  # MlflowException, OSError, a server that does not answer
            raise failed(f"open a run at {uri}", e) from None
        if changed:
            self.logger.info(f"note: MLflow params keep their first values; changed since: "
                             f"{', '.join(changed)}")
        self.logger.info(f"mlflow: run {self.run_id} at {uri}")
        for row in history:  # a resume of a run that logged no (or fewer) epochs
            self.write(row, row["epoch"])

    def _open(self, config: dict, run_name: str, run_id: str | None) -> tuple[str, int]:
        """(run id, last epoch it holds): the checkpoint's run, continued, else a new one."""
        from mlflow.exceptions import MlflowException

        if run_id is not None:
            with suppress(MlflowException):  # not in this store
                if self.client.get_run(run_id).info.lifecycle_stage == "active":
                    self.client.update_run(run_id, status="RUNNING")
                    steps = [m.step for m in self.client.get_metric_history(run_id, "loss")]
                    return run_id, max(steps, default=0)
            self.logger.warning(f"warning: the checkpoint's MLflow run {run_id} is not in "
                                f"this tracking store (or was deleted); logging to a new run")
        parent = os.environ.get(PARENT_ENV)
        tags = {"run_dir": str(self.save_dir)}
        exp_id = None
        if parent:
            try:  # a child lives in its parent's experiment
                exp_id = self.client.get_run(parent).info.experiment_id
                tags["mlflow.parentRunId"] = parent
            except MlflowException:
                self.logger.warning(f"warning: {PARENT_ENV}={parent} is not a run of this "
                                    f"tracking store; this run has no parent")
        if exp_id is None:
            exp_id = experiment_id(self.client, experiment_name(config))
        run = self.client.create_run(exp_id, tags=tags, run_name=run_name)
        return run.info.run_id, 0

    def write(self, row: dict, step: int) -> None:
        """The epoch's row (loss, metrics, val_*, lr) at step = epoch, unless already logged."""
        from mlflow.entities import Metric

        if step <= self.last_step:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(key(k), float(v), now, step) for k, v in row.items()
                   if k not in ("epoch", "seconds")]
        try:
            self.client.log_batch(self.run_id, metrics=metrics)
        except Exception as e:
            raise failed(f"log epoch {step}", e) from None
        self.last_step = step

    def state(self) -> dict:
        """What the checkpoint keeps: the run id (plain data)."""
        return {RUN_ID_KEY: self.run_id}

    def close(self, status: str = "FINISHED") -> None:
        """End the MLflow run: FINISHED (then model_best.pth as an artifact), KILLED or FAILED."""
        try:
            best = self.save_dir / BEST_NAME
            if status == "FINISHED" and best.is_file():
                self.client.log_artifact(self.run_id, str(best))
            self.client.set_terminated(self.run_id, status)
        except Exception as e:
            raise failed("end the run", e) from None
