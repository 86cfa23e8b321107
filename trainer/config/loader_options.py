"""Data loader arguments every loader accepts, applied by the builder after the loader is built:
`sampler: balanced` (class-balanced draws) and `folds`/`fold` (k-fold cross-validation)."""

from __future__ import annotations

from typing import Any

from trainer.config.option_checks import resolve_options
from utils.errors import ArgError, ConfigError
from utils.options import DATA_LOADER

LOADER_OPTIONS = tuple(DATA_LOADER)


def loader_options(dargs: dict, config: dict | None = None) -> dict:
    """data_loader.args.sampler, folds and fold, checked, with their defaults (utils/options.py)."""
    given = {k: v for k, v in dargs.items() if k in LOADER_OPTIONS}
    return resolve_options(DATA_LOADER, given, "data_loader.args", config or {})


def _call(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except ArgError as e:
        raise ConfigError(f"data_loader.args.{e.arg}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data_loader.args: {e}") from None


def apply_loader_options(loader: Any, loader_type: str, options: dict, training: bool) -> None:
    """Select the configured fold, then balance the classes of the training draws."""
    folds, fold = options["folds"], options["fold"]
    if folds is not None:
        if fold is None:
            raise ConfigError(f"data_loader.args.fold: required with folds: {folds} (0 to "
                              f"{folds - 1}); to train every fold: train.py -c CONFIG "
                              f"--folds {folds}")
        if not callable(getattr(loader, "select_fold", None)):
            raise ConfigError(f"data_loader.args.folds: {loader_type} is no BaseDataLoader, "
                              "so it cannot split folds")
        _call(loader.select_fold, folds, fold)
    if options["sampler"] == "balanced" and training:
        _call(loader.balance_classes)
