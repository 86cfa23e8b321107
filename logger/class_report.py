"""test.py's report for classification: confusion matrix and per-class precision/recall/F1.

Printed, and saved beside the metrics JSON as confusion_matrix.csv and
classification_report.json (sklearn.metrics), plus confusion_matrix.png when
matplotlib (the `plot` extra) is installed. Regression models get no report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from utils.csv_table import write_csv
from utils.files import write_figure, write_json

PRINT_MAX_CLASSES = 20  # larger matrices are only saved


def confusion_and_report(matrix: np.ndarray):
    """(confusion matrix, report text, report dict) over all C classes, from the counts of
    (true, predicted) pairs: the labels are expanded back from the counts, so the report is
    scikit-learn's own."""
    from sklearn.metrics import classification_report  # classification reports only

    n_class = len(matrix)
    labels = list(range(n_class))
    pairs = np.repeat(np.arange(n_class * n_class), matrix.reshape(-1))
    true, pred = pairs // n_class, pairs % n_class
    kwargs = dict(labels=labels, zero_division=0)
    text = classification_report(true, pred, digits=4, **kwargs)
    table = classification_report(true, pred, output_dict=True, **kwargs)
    return matrix, text, table


def format_matrix(matrix) -> str:
    n = len(matrix)
    width = max(len(str(int(matrix.max(initial=0)))), len(str(n - 1)), 4)
    head = "true\\pred".ljust(10) + " ".join(str(c).rjust(width) for c in range(n))
    rows = [str(i).ljust(10) + " ".join(str(int(v)).rjust(width) for v in row)
            for i, row in enumerate(matrix)]
    return "\n".join([head, *rows])


def write_matrix_csv(matrix, path: Path) -> None:
    write_csv(path, ["true\\pred", *range(len(matrix))],
              [[i, *(int(v) for v in row)] for i, row in enumerate(matrix)])


def write_matrix_png(matrix, path: Path) -> bool:
    """confusion_matrix.png; False when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    n = len(matrix)
    side = min(max(4.0, 0.45 * n + 1.5), 16.0)
    fig = Figure(figsize=(side + 1.0, side), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix (test split)")
    if n <= PRINT_MAX_CLASSES:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        threshold = matrix.max(initial=0) / 2
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize="small",
                        color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    write_figure(fig, path, format="png")
    return True


def classification_report_files(matrix: np.ndarray, out_dir: Path, echo=print) -> list[Path]:
    """Print the confusion matrix and per-class report; save them in `out_dir`."""
    matrix, text, table = confusion_and_report(matrix)
    n = len(matrix)
    if n <= PRINT_MAX_CLASSES:
        echo("confusion matrix (rows: true class, columns: predicted class):")
        echo(format_matrix(matrix))
    echo("per-class report:")
    echo(text.rstrip())
    written = [out_dir / "confusion_matrix.csv", out_dir / "classification_report.json"]
    write_matrix_csv(matrix, written[0])  # each file atomically; RunError naming it
    write_json(table, written[1])
    png = out_dir / "confusion_matrix.png"
    if write_matrix_png(matrix, png):
        written.append(png)
    else:
        echo("(pip install matplotlib for a PNG of the confusion matrix)")
    for p in written:
        echo(f"saved {p}")
    return written


def is_classification(output: torch.Tensor, target: torch.Tensor | None) -> bool:
    """Integer class targets and one score per class (output of shape (N, C), C > 1)."""
    integer_target = target is None or not (target.is_floating_point() or target.is_complex())
    return integer_target and output.ndim == 2 and output.shape[1] > 1


def write_test_report(matrix: torch.Tensor, out_dir: Path) -> list[Path]:
    """The classification report of the test split from its confusion counts (C x C, true
    class by row); nothing for regression (an empty matrix)."""
    if matrix.numel() == 0 or int(matrix.sum()) == 0:
        return []
    return classification_report_files(matrix.cpu().numpy(), out_dir)
