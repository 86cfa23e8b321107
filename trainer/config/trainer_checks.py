"""The trainer options' custom checks, named by dotted path from their definitions in
utils/options.py; each is (value, Context) -> the resolved value, or a ConfigError."""

from __future__ import annotations

from typing import Any

from logger.mlflow_logger import validate_options
from logger.writer import validate_loggers
from trainer.callbacks.averaging import validate_ema
from trainer.callbacks.swa import validate_swa
from trainer.config.component_checks import has_validation
from trainer.config.config_checks import check_name
from trainer.config.config_checks import check_save_dir as check_save_folder
from trainer.run.compiling import validate_compile
from utils.errors import ConfigError, did_you_mean
from utils.options import Context
from utils.schema import expect, metric_names, parse_monitor


def check_save_dir(save_dir: str, ctx: Context) -> str:
    """A folder the run folders can be made in, and a run name it can hold."""
    check_save_folder(save_dir)
    check_name(ctx.config["name"], save_dir)
    return save_dir


def check_monitor(monitor: Any, ctx: Context) -> str:
    """'off', or 'min|max <metric>' naming a metric this run logs."""
    expected = "'min <metric>', 'max <metric>' or 'off'"
    expect(isinstance(monitor, str), "trainer.monitor", expected, monitor)
    mode, metric = parse_monitor(monitor)
    if mode == "off":
        return monitor
    expect(mode in ("min", "max") and bool(metric), "trainer.monitor", expected, monitor)
    logged = ["loss", *metric_names(ctx.config)]
    if has_validation(ctx.config, ctx.trust):
        logged += [f"val_{m}" for m in logged]
    if metric not in logged:
        raise ConfigError(f"trainer.monitor: '{metric}' is not logged by this run"
                          f"{did_you_mean(metric, logged)} (logged: {', '.join(logged)})")
    return monitor


def check_ema(value: Any, ctx: Context) -> dict | None:
    return validate_ema(value)


def check_swa(value: Any, ctx: Context) -> dict | None:
    return validate_swa(value, ctx.resolved["epochs"])


def check_compile(value: Any, ctx: Context) -> dict | bool:
    return validate_compile(value)


def check_loggers(value: Any, ctx: Context) -> list[str]:
    return validate_loggers(value, None)[0]


def check_mlflow(value: Any, ctx: Context) -> dict:
    return validate_options(value)
