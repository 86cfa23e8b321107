"""Data loader arguments every loader accepts, applied by the builder after the loader is built:
`sampler: balanced` (class-balanced draws) and `folds`/`fold` (k-fold cross-validation)."""

from __future__ import annotations

from typing import Any

from utils.errors import ArgError, ConfigError
from utils.schema import FOLD_ARGS, SAMPLER_ARGS, SAMPLERS, expect, is_int

LOADER_OPTIONS = SAMPLER_ARGS + FOLD_ARGS


def validate_loader_options(dargs: dict) -> None:
    """data_loader.args.sampler, folds (K >= 2, or null) and fold (0..K-1, needed with folds)."""
    expect(dargs.get("sampler") in SAMPLERS, "data_loader.args.sampler", "balanced or null",
           dargs.get("sampler"))
    folds, fold = dargs.get("folds"), dargs.get("fold")
    if folds is None:
        if fold is not None:
            raise ConfigError("data_loader.args.fold: needs data_loader.args.folds (the number "
                              "of folds)")
        return
    expect(is_int(folds) and folds >= 2, "data_loader.args.folds", "an integer >= 2 (or null)",
           folds)
    expect(fold is None or (is_int(fold) and 0 <= fold < folds), "data_loader.args.fold",
           f"an integer from 0 to {folds - 1}", fold)  # None: train.py runs every fold


def _call(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except ArgError as e:
        raise ConfigError(f"data_loader.args.{e.arg}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data_loader.args: {e}") from None


def apply_loader_options(loader: Any, loader_type: str, options: dict, training: bool) -> None:
    """Select the configured fold, then balance the classes of the training draws."""
    folds, fold = options.get("folds"), options.get("fold")
    if folds is not None:
        if fold is None:
            raise ConfigError(f"data_loader.args.fold: required with folds: {folds} (0 to "
                              f"{folds - 1}); to train every fold: train.py -c CONFIG "
                              f"--folds {folds}")
        if not callable(getattr(loader, "select_fold", None)):
            raise ConfigError(f"data_loader.args.folds: {loader_type} is no BaseDataLoader, "
                              "so it cannot split folds")
        _call(loader.select_fold, folds, fold)
    if options.get("sampler") == "balanced" and training:
        _call(loader.balance_classes)
