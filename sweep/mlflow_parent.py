"""A sweep's MLflow parent run: its trials (grid points, draws, folds, repeats) are children.

When the sweep's config logs to MLflow (trainer.loggers: [mlflow]), the sweep
process creates one parent run in the trials' experiment, or re-opens the one
whose id the sweep folder keeps (mlflow_parent.json) on a rerun or in a second
process sharing the folder, and hands its id to every trial process through
TRAIN_MLFLOW_PARENT_RUN_ID (logger/mlflow_logger.py sets `mlflow.parentRunId`).
"""

from __future__ import annotations

import atexit
import json
import os
from contextlib import suppress
from pathlib import Path

from logger import mlflow_logger, mlflow_reach
from sweep.definition import Sweep
from utils.errors import ConfigError, RunError
from utils.files import read_json, write_json

ID_FILE = "mlflow_parent.json"


def open_parent(sweep: Sweep) -> str | None:
    """The parent run's id (None when the sweep's config does not log to MLflow), also put in
    this process's environment for the trials; the run ends (FINISHED) when this process exits.
    A tracking server that does not answer is a RunError before anything is written."""
    config = sweep.base
    if "mlflow" not in config["trainer"]["loggers"]:
        return None
    mlflow_logger.check_installed()
    uri = mlflow_reach.check_reachable(config)  # before the sweep folder: a silent server fails
    try:
        client = mlflow_logger.client(uri)
        run_id = _parent_id(client, sweep)
    except (ConfigError, RunError):
        raise
    except Exception as e:  # MlflowException, OSError, a server that does not answer
        raise mlflow_logger.failed(f"open the sweep's parent run at {uri}", e) from None
    os.environ[mlflow_logger.PARENT_ENV] = run_id
    os.environ["MLFLOW_TRACKING_URI"] = uri  # trials' save_dir is the sweep folder: same store
    atexit.register(_end, client, run_id)
    return run_id


def _parent_id(client, sweep: Sweep) -> str:
    """The id in the sweep folder if its run is still there (and not deleted), else a new
    run's (the first process to write the id file wins: one that lost the race deletes its
    own run)."""
    from mlflow.exceptions import MlflowException

    path = Path(sweep.folder) / ID_FILE
    known = (read_json(path) or {}).get("run_id")
    if known:
        with suppress(MlflowException):  # not in this store
            if client.get_run(known).info.lifecycle_stage == "active":  # not deleted
                client.update_run(known, status="RUNNING")
                return known
    experiment = mlflow_logger.experiment_id(client, mlflow_logger.experiment_name(sweep.base))
    run = client.create_run(experiment, run_name=f"{sweep.name}/{sweep.sweep_id}",
                            tags={"sweep_folder": str(sweep.folder), "sweep_method": sweep.method})
    params = {"sweep.method": sweep.method, "sweep.metric": sweep.metric,
              "sweep.trials": json.dumps(sweep.trials or len(sweep.plan)),
              **{f"sweep.parameters.{p.label}": json.dumps(p.spec()) for p in sweep.params}}
    mlflow_logger.log_params(client, run.info.run_id,
                             {mlflow_logger.key(k): v[:mlflow_logger.MAX_PARAM_LENGTH]
                              for k, v in params.items()}, {})
    if known is not None:  # its run is gone from this store: this one replaces it
        write_json({"run_id": run.info.run_id}, path)
        return run.info.run_id
    if _claim(path, run.info.run_id):
        return run.info.run_id
    client.delete_run(run.info.run_id)  # another process was first
    return read_json(path)["run_id"]


def _claim(path: Path, run_id: str) -> bool:
    """Create the id file, complete, unless it exists (a hard link fails on an existing
    name); whether this process created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write_json({"run_id": run_id}, tmp)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _end(client, run_id: str) -> None:
    with suppress(Exception):  # the process is exiting: nothing left to report to
        client.set_terminated(run_id, "FINISHED")

