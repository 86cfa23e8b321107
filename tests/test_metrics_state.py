"""Issue 13: metrics as mergeable state, equal to scikit-learn in one process and across
ranks; what is all-reduced does not grow with the data; user metrics; test.py's one pass."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import ENV, REPO, load_config, only_run, read_csv, read_json, train

CLASSIFICATION = ["accuracy", "top_k_acc", "precision_macro", "recall_macro", "f1_macro"]
REGRESSION = ["mse", "rmse", "mae", "r2"]


def sklearn_value(name: str, output: torch.Tensor, target: torch.Tensor) -> float:
    from sklearn import metrics as sk

    if name in REGRESSION:
        p, t = output.double().numpy(), target.double().numpy()
        return {"mse": sk.mean_squared_error, "rmse": sk.root_mean_squared_error,
                "mae": sk.mean_absolute_error, "r2": sk.r2_score}[name](t, p)
    pred, true = output.argmax(1).numpy(), target.numpy()
    if name == "accuracy":
        return sk.accuracy_score(true, pred)
    if name == "top_k_acc":
        return sk.top_k_accuracy_score(true, output.numpy(), k=3, labels=range(output.shape[1]))
    kind = name.split("_")[0]
    fn = {"precision": sk.precision_score, "recall": sk.recall_score, "f1": sk.f1_score}[kind]
    return fn(true, pred, average="macro", zero_division=0)


def random_data(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(203, 7, generator=g)  # distinct scores: no ties for top_k
    labels = torch.randint(0, 6, (203,), generator=g)  # class 6 is never true
    y = torch.randn(203, 2, generator=g) * 5 + 40
    return {"classification": (scores, labels),
            "regression": (y + torch.randn(203, 2, generator=g), y)}


def streamed(names: list[str], output: torch.Tensor, target: torch.Tensor,
             batch: int) -> dict[str, float]:
    from model import METRICS
    from trainer.loop.epoch_stats import EpochStats

    stats = EpochStats({n: METRICS.get(n)() for n in names})
    for o, t in zip(output.split(batch), target.split(batch)):  # the last batch is smaller
        stats.update(torch.zeros(()), o, t)
    return stats.result()


@pytest.mark.parametrize("batch", [1, 10, 64, 500])
def test_built_in_metrics_over_uneven_batches_equal_sklearn(batch):
    data = random_data(0)
    for names, (output, target) in ((CLASSIFICATION, data["classification"]),
                                    (REGRESSION, data["regression"])):
        result = streamed(names, output, target, batch)
        for name in names:
            expected = sklearn_value(name, output, target)
            if name in ("accuracy", "top_k_acc"):  # counts: exact
                assert result[name] == expected, name
            else:
                assert result[name] == pytest.approx(expected, abs=1e-12), name


def test_metric_state_is_fixed_size_and_merges_by_sum():
    from model import METRICS

    output, target = random_data(1)["classification"]
    small, large = METRICS.get("f1_macro")(), METRICS.get("f1_macro")()
    small.update(output[:10], target[:10])
    large.update(output, target)
    assert {k: v.shape for k, v in small.state.items()} == \
        {k: v.shape for k, v in large.state.items()}
    first, second = METRICS.get("f1_macro")(), METRICS.get("f1_macro")()
    first.update(output[:50], target[:50])
    second.update(output[50:], target[50:])
    first.merge(second)
    assert torch.equal(first.state["counts"], large.state["counts"])


RANK_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    import torch.distributed as tdist
    sys.path.insert(0, {repo!r})
    from model import METRICS
    from trainer.loop.epoch_stats import EpochStats
    from utils import dist

    sent = []
    reduce = tdist.all_reduce
    def counting(tensor, *args, **kwargs):
        sent.append(tensor.numel() * tensor.element_size())
        return reduce(tensor, *args, **kwargs)
    dist.dist.all_reduce = counting

    dist.setup_device(0)
    rank, out = tdist.get_rank(), {{}}
    data = torch.load({data!r}, weights_only=True)
    for kind, names in (("classification", {cls!r}), ("regression", {reg!r})):
        for n in (40, 203):
            output, target = data[kind][0][:n], data[kind][1][:n]
            mine = range(rank, (n + 6) // 7, 2)  # batches of 7, dealt to the ranks in turn
            stats = EpochStats({{k: METRICS.get(k)() for k in names}})
            for b in mine:
                stats.update(torch.zeros(()), output[b * 7:b * 7 + 7], target[b * 7:b * 7 + 7])
            sent.clear()
            out[f"{{kind}}-{{n}}"] = {{"result": stats.merged().result(), "bytes": sum(sent)}}
    if rank == 0:
        print("RESULT " + json.dumps(out))
    tdist.destroy_process_group()
""")


@pytest.mark.slow
def test_metrics_merged_across_two_ranks_equal_sklearn_with_fixed_size_exchange(tmp_path):
    data = random_data(2)
    torch.save(data, tmp_path / "data.pt")
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT.format(repo=str(REPO), data=str(tmp_path / "data.pt"),
                                         cls=CLASSIFICATION, reg=REGRESSION))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", str(script)], capture_output=True, text=True,
                       env=ENV, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(next(line for line in r.stdout.splitlines()
                          if line.startswith("RESULT "))[len("RESULT "):])
    for kind, names in (("classification", CLASSIFICATION), ("regression", REGRESSION)):
        for n in (40, 203):
            output, target = data[kind][0][:n], data[kind][1][:n]
            for name in names:
                expected = sklearn_value(name, output, target)
                assert out[f"{kind}-{n}"]["result"][name] == pytest.approx(expected, abs=1e-12)
        # the bytes exchanged depend on the metrics, not on the number of samples
        assert out[f"{kind}-40"]["bytes"] == out[f"{kind}-203"]["bytes"] > 0


USER_METRICS = '''

class ErrorRate(BaseMetric):
    name = "error_rate"

    def reset(self):
        self.state = {"wrong": torch.zeros((), dtype=torch.int64),
                      "n": torch.zeros((), dtype=torch.int64)}

    def update(self, output, target):
        self.state["wrong"] += (output.argmax(1) != target).sum()
        self.state["n"] += len(target)

    def compute(self):
        return (self.state["wrong"].double() / self.state["n"]).item()


def share_of_class_zero(output, target) -> float:
    return (target == 0).double().mean().item()
'''


def test_user_state_metric_and_plain_function_metric_through_train_py(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".venv", "saved", ".git",
                                                              "__pycache__", "*.egg-info"))
    with open(repo / "model" / "metric.py", "a") as f:
        f.write(USER_METRICS)
    save = tmp_path / "saved"
    r = subprocess.run([sys.executable, str(repo / "train.py"), "-c", "config/digits_mlp.json",
                        "metrics=[accuracy, error_rate, share_of_class_zero]",
                        "trainer.epochs=2", f"trainer.save_dir={save}"],
                       cwd=repo, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = read_csv(save / "log" / "digits_mlp" / only_run(save, "digits_mlp").name
                    / "metrics.csv")
    for row in rows:
        assert float(row["error_rate"]) == pytest.approx(1 - float(row["accuracy"]), abs=1e-12)
        assert float(row["val_error_rate"]) == pytest.approx(1 - float(row["val_accuracy"]),
                                                             abs=1e-12)
        assert 0.05 < float(row["share_of_class_zero"]) < 0.15  # digits: 10 balanced classes
    log = (save / "log" / "digits_mlp" / only_run(save, "digits_mlp").name / "info.log")
    notes = [line for line in log.read_text().splitlines() if "keeps every output" in line]
    assert len(notes) == 1 and "share_of_class_zero" in notes[0]


def test_test_py_reads_each_test_batch_once(tmp_path, monkeypatch):
    from data_loader.datasets import TensorDataset
    from trainer.run.checkpoint_test import test

    save = tmp_path / "saved"
    assert train("-c", REPO / "config/digits_mlp.json", "trainer.epochs=1",
                 save_dir=save).returncode == 0
    ckpt = only_run(save, "digits_mlp") / "model_best.pth"
    calls = []
    original = TensorDataset.__getitems__

    def counted(self, indices):
        calls.append(len(indices))
        return original(self, indices)

    monkeypatch.setattr(TensorDataset, "__getitems__", counted)
    assert test(ckpt, tmp_path / "m.json") == 0
    assert sum(calls) == 359 and len(calls) == 6  # the 359 test digits, batches of 64, once
    assert (tmp_path / "confusion_matrix.csv").is_file()
    assert read_json(tmp_path / "m.json")["accuracy"] > 0.5


def test_mid_epoch_checkpoint_holds_metric_state_not_outputs(tmp_path):
    from trainer.loop.epoch_stats import EpochStats

    config = load_config(REPO / "config/digits_mlp.json")
    assert config["metrics"] == ["accuracy", "top_k_acc"]
    from model import METRICS

    stats = EpochStats({m: METRICS.get(m)() for m in config["metrics"]})
    for _ in range(50):
        stats.update(torch.tensor(0.5), torch.randn(64, 10), torch.randint(0, 10, (64,)))
    state = stats.state_dict()
    sizes = [t.numel() for m in state["metrics"].values() for t in m.values()]
    assert max(sizes) == 1 and state["n"] == 3200  # counts only, whatever the samples
    torch.save(state, tmp_path / "s.pt")
    restored = EpochStats({m: METRICS.get(m)() for m in config["metrics"]})
    restored.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert restored.result() == stats.result()


def test_torchmetrics_metric_is_accepted_and_checkpointed():
    torchmetrics = pytest.importorskip("torchmetrics")
    from base.base_metric import TorchmetricsMetric
    from trainer.loop.epoch_stats import EpochStats

    output, target = random_data(3)["classification"]
    metric = TorchmetricsMetric(torchmetrics.classification.MulticlassAccuracy(
        num_classes=7, average="micro"), "tm_accuracy")
    stats = EpochStats({"tm_accuracy": metric})
    for o, t in zip(output[:100].split(13), target[:100].split(13)):
        stats.update(torch.zeros(()), o, t)
    resumed = EpochStats({"tm_accuracy": metric})
    resumed.load_state_dict(stats.state_dict())  # a mid-epoch checkpoint, then the rest
    for o, t in zip(output[100:].split(13), target[100:].split(13)):
        resumed.update(torch.zeros(()), o, t)
    expected = sklearn_value("accuracy", output, target)
    assert resumed.result()["tm_accuracy"] == pytest.approx(expected, abs=1e-6)
