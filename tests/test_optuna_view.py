"""Issue 26, item 9: every sweep kind stores its trials' parameters in the Optuna study, so
that plain optuna.load_study shows them (params, best_params, trials_dataframe columns)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from conftest import read_csv, train

optuna = pytest.importorskip("optuna")
HAS_PANDAS = importlib.util.find_spec("pandas") is not None

TINY = {
    "name": "tiny", "seed": 1,
    "arch": {"type": "MLP", "args": {"in_features": 64, "out_features": 10, "hidden": 8,
                                     "depth": 1}},
    "data_loader": {"type": "DigitsDataLoader",
                    "args": {"batch_size": 256, "validation_split": 0.1, "test_split": 0.2}},
    "optimizer": {"type": "Adam", "args": {"lr": 0.01}},
    "loss": "cross_entropy", "metrics": ["accuracy"],
    "trainer": {"epochs": 1, "save_dir": "saved/", "verbosity": 0, "monitor": "min val_loss"},
}


def study_of(save_dir: Path, name: str = "tiny") -> tuple[Path, object]:
    (folder,) = (save_dir / "sweeps" / name).iterdir()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    return folder, optuna.load_study(study_name=f"{name}-{folder.name}", storage=storage)


def test_grid_sweep_trials_carry_their_parameters(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    save = tmp_path / "saved"
    result = train("-c", cfg, "-m", "optimizer.args.lr=0.01,0.001", "arch.args.hidden=4,8",
                   "--jobs", "2", save_dir=save)
    assert result.returncode == 0, result.stdout + result.stderr
    folder, study = study_of(save)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 4
    points = {(t.params["optimizer.args.lr"], t.params["arch.args.hidden"]) for t in trials}
    assert points == {(0.01, 4), (0.01, 8), (0.001, 4), (0.001, 8)}
    for t in trials:
        assert isinstance(t.distributions["arch.args.hidden"],
                          optuna.distributions.CategoricalDistribution)
    (best,) = [r for r in read_csv(folder / "summary.csv") if r["rank"] == "1"]
    assert study.best_params == {"optimizer.args.lr": float(best["optimizer.args.lr"]),
                                 "arch.args.hidden": int(best["arch.args.hidden"])}
    if HAS_PANDAS:  # trials_dataframe() needs pandas
        frame = study.trials_dataframe()
        assert {"params_optimizer.args.lr", "params_arch.args.hidden"} <= set(frame.columns)


@pytest.mark.slow  # the fast tier keeps within 3 minutes; the full suite runs it
def test_fold_sweep_trials_carry_the_fold(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    save = tmp_path / "saved"
    result = train("-c", cfg, "--folds", "2", save_dir=save)
    assert result.returncode == 0, result.stdout + result.stderr
    _, study = study_of(save)
    (label,) = {k for t in study.trials for k in t.params}
    assert label.endswith("fold")
    assert sorted(t.params[label] for t in study.trials) == [0, 1]
    assert not HAS_PANDAS or f"params_{label}" in study.trials_dataframe().columns
