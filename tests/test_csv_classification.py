"""Issue 26, item 14: a classification CSV (config/csv_classification.yaml), one line when
out_features is smaller than the labels' classes, and --predict naming a label column left in.
"""

from __future__ import annotations

import csv

from conftest import REPO, only_run, run_script, train

CONFIG = REPO / "config/csv_classification.yaml"
TABLE = REPO / "data_loader/data/species.csv"


def test_classification_csv_trains_and_predict_names_the_label_column(tmp_path, save_dir):
    result = train("-c", CONFIG, "trainer.epochs=2", save_dir=save_dir)
    assert result.returncode == 0, result.stderr
    best = only_run(save_dir, "csv_classification") / "model_best.pth"
    left_in = run_script("test.py", "-r", best, "--predict", TABLE,
                         "--output", tmp_path / "p.csv")
    assert left_in.returncode == 2, left_in.stderr
    (line,) = left_in.stderr.strip().splitlines()
    assert "'species' is the label column" in line and "expected 4" in line
    with open(TABLE, newline="") as f:
        rows = [row[:-1] for row in csv.reader(f)]  # the features only
    features = tmp_path / "features.csv"
    with open(features, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    ok = run_script("test.py", "-r", best, "--predict", features, "--output", tmp_path / "p.csv")
    assert ok.returncode == 0, ok.stderr
    with open(tmp_path / "p.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows) - 1


def test_out_features_below_the_number_of_classes_is_one_line(save_dir):
    result = train("-c", CONFIG, "arch.args.out_features=1", "--dry-run", save_dir=save_dir)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "arch.args.out_features" in line and "3 classes (finch, sparrow, warbler)" in line
