"""Issue 4: models (MLP variants, CNN, LSTM), data loaders (scikit-learn, CSV, sequences),
standardization, exact metrics and losses, and the example configs end to end."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO, load, load_config, only_run, read_json, run_script, train

from utils.errors import ConfigError, RunError

CONFIG = REPO / "config"


def error_line(result) -> str:
    """The one `error:` line of a failed run (warnings may come before it)."""
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[-1]


def train_and_test(config, save_dir, *overrides) -> tuple[dict, dict]:
    """train.py then test.py on model_best.pth; (test metrics, best checkpoint)."""
    r = train("-c", config, *overrides, save_dir=save_dir)
    assert r.returncode == 0, r.stderr
    name = config.stem
    run = only_run(save_dir, name)
    r = run_script("test.py", "-r", run / "model_best.pth")
    assert r.returncode == 0, r.stderr
    return read_json(run / "test_metrics.json"), load(run / "model_best.pth")


# ------------------------------------------------------------------ MLP


@pytest.mark.parametrize("batch_norm, dropout", [(False, 0.0), (True, 0.3)])
def test_sequential_and_modulelist_mlps_agree(batch_norm, dropout):
    from model.model import MLP

    kw = dict(hidden=16, depth=3, activation="GELU", batch_norm=batch_norm, dropout=dropout,
              init="xavier_uniform", bias_init=0.1)
    torch.manual_seed(3)
    seq = MLP(7, 3, container="sequential", **kw)
    torch.manual_seed(3)
    lst = MLP(7, 3, container="modulelist", **kw)
    assert seq.state_dict().keys() == lst.state_dict().keys()
    for k, v in seq.state_dict().items():
        assert torch.equal(v, lst.state_dict()[k]), k
    x = torch.randn(9, 7)
    for mode in ("train", "eval"):
        getattr(seq, mode)(), getattr(lst, mode)()
        torch.manual_seed(5)
        a = seq(x)
        torch.manual_seed(5)
        b = lst(x)
        assert torch.equal(a, b), mode
    # the same gradients, too
    a.sum().backward(), b.sum().backward()
    for (n, p), q in zip(seq.named_parameters(), lst.parameters()):
        assert torch.equal(p.grad, q.grad), n


def test_mlp_init_and_bias_by_name():
    from model.model import MLP

    m = MLP(50, 4, hidden=400, depth=1, init="normal", bias_init=0.5)
    w = m.hidden[0].weight
    assert abs(w.std().item() - 0.01) < 0.001 and abs(w.mean().item()) < 0.001
    assert torch.all(m.hidden[0].bias == 0.5) and torch.all(m.output.bias == 0.5)
    k = MLP(50, 4, hidden=400, depth=1, init="kaiming_normal")
    assert abs(k.hidden[0].weight.std().item() - (2 / 50) ** 0.5) < 0.01
    assert torch.all(k.hidden[0].bias == 0)
    bn = MLP(5, 2, hidden=8, depth=2, batch_norm=True, activation="ReLU", dropout=0.1)
    assert [type(x).__name__ for x in bn.hidden][:4] == ["Linear", "BatchNorm1d", "ReLU", "Dropout"]
    with pytest.raises(ValueError, match="unknown init"):
        MLP(5, 2, init="glorot")


def test_freeze_names_parts_and_rejects_unknown_ones():
    from model.model import MLP

    m = MLP(5, 2, hidden=8, depth=2, freeze=["hidden.0", "output.bias"])
    frozen = sorted(n for n, p in m.named_parameters() if not p.requires_grad)
    assert frozen == ["hidden.0.bias", "hidden.0.weight", "output.bias"]
    with pytest.raises(ValueError, match="no module or parameter named 'hiden.0'"):
        MLP(5, 2, freeze=["hiden.0"])


FROZEN = ["+arch.args.freeze=[hidden.0, output.bias]", "trainer.epochs=2"]


@pytest.fixture(scope="module")
def wine_frozen_run(tmp_path_factory):
    """config/wine_mlp.yaml for 2 epochs with hidden.0 and output.bias frozen; its run folder."""
    save = tmp_path_factory.mktemp("wine") / "saved"
    r = train("-c", CONFIG / "wine_mlp.yaml", *FROZEN, "trainer.save_period=1", save_dir=save)
    assert r.returncode == 0, r.stderr
    return only_run(save, "wine_mlp")


def test_frozen_parameters_unchanged_after_training(wine_frozen_run):
    """A real run: frozen weights stay at their initial values; the others train."""
    from trainer.config.parse_config import ConfigParser

    first = load(wine_frozen_run / "checkpoint-epoch1.pth")
    last = load(wine_frozen_run / "checkpoint-epoch2.pth")
    # the model as train.py builds it, before any step
    config = load_config(CONFIG / "wine_mlp.yaml", FROZEN)
    model = ConfigParser(config, "test").build_all().model
    init = model.state_dict()
    for name in ["hidden.0.weight", "hidden.0.bias", "output.bias"]:
        assert torch.equal(last["model_state_dict"][name], init[name]), name
        assert torch.equal(first["model_state_dict"][name], init[name]), name
    for name in ["hidden.3.weight", "output.weight"]:
        assert not torch.equal(last["model_state_dict"][name], init[name]), name
    # the optimizer holds only the trainable parameters
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(last["optimizer_state_dict"]["param_groups"][0]["params"]) == n_trainable == 3


# ------------------------------------------------------------------ CNN


def test_cnn_shapes_standardization_and_kaiming_init():
    from model.cnn import CNN

    torch.manual_seed(0)
    m = CNN(out_features=10, channels=[8, 16], hidden=32)
    assert m.input_mean.shape == (1, 8, 8)
    assert list(m.state_dict())[:2] == ["input_mean", "input_std"]
    kinds = [type(x).__name__ for x in m.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2
    conv = m.features[0]
    fan_in = conv.in_channels * 9
    assert torch.all(conv.bias == 0)
    assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.35)
    m.eval()
    flat = torch.randn(4, 64)
    assert m(flat).shape == (4, 10)
    assert torch.equal(m(flat), m(flat.view(4, 1, 8, 8)))  # flat rows or images
    m.set_standardization(torch.full((64,), 2.0), torch.full((64,), 4.0))
    assert torch.all(m.input_mean == 2.0) and m.input_std.shape == (1, 8, 8)


# ------------------------------------------------------------------ LSTM


def make_batch(lengths: list[int], vocab: int = 20, extra_pad: int = 0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(len(lengths), max(lengths) + extra_pad, dtype=torch.int64)
    for i, n in enumerate(lengths):
        tokens[i, :n] = torch.randint(1, vocab, (n,), generator=g)
    return tokens, torch.tensor(lengths)


@pytest.mark.parametrize("pooling", ["final", "attention"])
@pytest.mark.parametrize("bidirectional, num_layers", [(True, 2), (False, 1)])
def test_lstm_outputs_do_not_depend_on_padding(pooling, bidirectional, num_layers):
    from model.sequence import LSTMClassifier

    torch.manual_seed(0)
    m = LSTMClassifier(20, 3, embedding_dim=8, hidden_size=12, num_layers=num_layers,
                       bidirectional=bidirectional, pooling=pooling, attention_dim=10).eval()
    lengths = [5, 1, 9, 3]
    tokens, lens = make_batch(lengths)
    longer, lens2 = make_batch(lengths, extra_pad=17)
    assert torch.equal(tokens, longer[:, :9]) and torch.all(longer[:, 9:] == 0)
    with torch.no_grad():
        out = m(tokens, lens)
        out_padded = m(longer, lens2)
        alone = torch.cat([m(tokens[i:i + 1, :n], lens[i:i + 1]) for i, n in enumerate(lengths)])
    assert torch.allclose(out, out_padded, atol=1e-6)
    assert torch.allclose(out, alone, atol=1e-5)  # each sequence as a batch of one, unpadded


def test_lstm_final_states_are_the_right_ends_of_the_outputs():
    """h_n of the last layer: forward state at each sequence's last token, backward at its first."""
    from model.sequence import LSTMClassifier

    torch.manual_seed(1)
    m = LSTMClassifier(20, 3, embedding_dim=8, hidden_size=6, num_layers=2, bidirectional=True,
                       pooling="final").eval()
    tokens, lens = make_batch([4, 7, 2], extra_pad=3)
    with torch.no_grad():
        outputs, h_n = m.encode(tokens, lens)
        final = m.final_states(h_n)
    assert final.shape == (3, 12)
    for i, n in enumerate(lens.tolist()):
        assert torch.allclose(final[i, :6], outputs[i, n - 1, :6])  # forward, last step
        assert torch.allclose(final[i, 6:], outputs[i, 0, 6:])      # backward, first step
        assert torch.all(outputs[i, n:] == 0)


def test_attention_gives_padding_no_weight():
    from model.sequence import LSTMClassifier

    torch.manual_seed(2)
    m = LSTMClassifier(20, 3, embedding_dim=8, hidden_size=6).eval()
    tokens, lens = make_batch([3, 6], extra_pad=2)
    with torch.no_grad():
        outputs, _ = m.encode(tokens, lens)
        mask = torch.arange(outputs.shape[1]) < lens.unsqueeze(1)
        _, weights = m.attention(outputs, mask)
    assert torch.all(weights[~mask] == 0)
    assert torch.allclose(weights.sum(1), torch.ones(2))


def test_embedding_from_a_tensor_file_and_frozen(tmp_path):
    from model.sequence import LSTMClassifier

    table = torch.randn(20, 8)
    torch.save(table, tmp_path / "emb.pt")
    m = LSTMClassifier(20, 3, embedding_dim=8, hidden_size=6, freeze_embedding=True,
                       embedding_path=str(tmp_path / "emb.pt"))
    assert torch.equal(m.embedding.weight, table) and not m.embedding.weight.requires_grad
    assert all(p.requires_grad for n, p in m.named_parameters() if not n.startswith("embedding"))
    with pytest.raises(ValueError, match=r"expected a tensor of shape \(20, 16\)"):
        LSTMClassifier(20, 3, embedding_dim=16, embedding_path=str(tmp_path / "emb.pt"))
    with pytest.raises(ValueError, match="file not found"):
        LSTMClassifier(20, 3, embedding_path=str(tmp_path / "none.pt"))


# ------------------------------------------------------------------ metrics and losses


def sklearn_classification(output, target):
    from sklearn import metrics as sk

    p, t = output.argmax(1).numpy(), target.numpy()
    scores = {"accuracy": sk.accuracy_score(t, p)}
    if output.shape[1] > 3:  # scikit-learn reads 2 classes as a binary task
        scores["top_k_acc"] = sk.top_k_accuracy_score(t, output.numpy(), k=3,
                                                      labels=list(range(output.shape[1])))
    return scores | {
        "f1_macro": sk.f1_score(t, p, average="macro", zero_division=0),
        "precision_macro": sk.precision_score(t, p, average="macro", zero_division=0),
        "recall_macro": sk.recall_score(t, p, average="macro", zero_division=0),
    }


def sklearn_regression(output, target):
    from sklearn import metrics as sk

    p, t = output.double().numpy(), target.double().numpy()
    return {"mse": sk.mean_squared_error(t, p), "rmse": sk.root_mean_squared_error(t, p),
            "mae": sk.mean_absolute_error(t, p), "r2": sk.r2_score(t, p)}


def test_classification_metrics_equal_sklearn():
    from model import METRICS

    g = torch.Generator().manual_seed(0)
    cases = []
    for n, c in [(1, 2), (7, 5), (100, 10), (333, 4)]:
        cases.append((torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)))
    # classes that are never predicted, or predicted but never true
    out = torch.rand(6, 4, generator=g)  # distinct scores: no ties for top_k
    out[torch.arange(6), torch.tensor([0, 0, 1, 3, 3, 3])] += 1.0
    cases.append((out, torch.tensor([0, 2, 1, 1, 2, 2])))
    for output, target in cases:
        for name, expected in sklearn_classification(output, target).items():
            assert METRICS.get(name)()(output, target) == pytest.approx(expected, abs=1e-12), name


def test_regression_metrics_equal_sklearn():
    from model import METRICS

    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, 1, generator=g) * 30 + 100
    cases = [(y + torch.randn(50, 1, generator=g) * 10, y),                 # (N, 1)
             (torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g)),  # (N, k)
             (y, y)]                                                         # perfect
    const = torch.cat([torch.full((20, 1), 2.0), torch.randn(20, 1, generator=g)], 1)
    cases.append((const + 0.1, const))                                      # a constant column
    for output, target in cases:
        for name, expected in sklearn_regression(output, target).items():
            assert METRICS.get(name)()(output, target) == pytest.approx(expected, abs=1e-9), name
    flat = y.squeeze(1)
    r2 = METRICS.get("r2")()
    assert r2(flat + 1, flat) == pytest.approx(r2(y + 1, y))


def test_epoch_metrics_over_batches_equal_sklearn_on_all_predictions():
    from model import METRICS
    from trainer.loop.epoch_stats import EpochStats

    g = torch.Generator().manual_seed(1)
    out, tgt = torch.randn(101, 6, generator=g), torch.randint(0, 6, (101,), generator=g)
    fns = {n: METRICS.get(n)() for n in ["f1_macro", "precision_macro", "recall_macro"]}
    stats = EpochStats(fns)
    for o, t in zip(out.split(32), tgt.split(32)):
        stats.update(torch.nn.functional.cross_entropy(o, t), o, t)
    res = stats.result()
    expected = sklearn_classification(out, tgt)
    for name in fns:
        assert res[name] == pytest.approx(expected[name], abs=1e-12)


def test_regression_losses():
    from model.loss import l1_loss as l1
    from model.loss import mse_loss as mse

    out, tgt = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])
    assert mse(out, tgt).item() == pytest.approx(2.5)
    assert mse(out, tgt, reduction="sum").item() == pytest.approx(5.0)
    assert l1(out, tgt).item() == pytest.approx(1.5)
    with pytest.raises(RunError, match=r"output \(2, 1\) and target \(2,\)"):
        mse(out, tgt.squeeze(1))


# ------------------------------------------------------------------ data


@pytest.mark.parametrize("name, n, features, task", [
    ("iris", 150, 4, "classification"), ("wine", 178, 13, "classification"),
    ("breast_cancer", 569, 30, "classification"), ("digits", 1797, 64, "classification"),
    ("diabetes", 442, 10, "regression"),
])
def test_sklearn_sets_load_offline_with_their_dtypes(name, n, features, task):
    from data_loader.data_loaders import SklearnDataLoader

    dl = SklearnDataLoader(name, batch_size=8, validation_split=0.1, test_split=0.2)
    assert dl.dataset_size == n and dl.task == task
    x, y = next(iter(dl))
    assert x.dtype == torch.float32 and x.shape == (8, features)
    if task == "classification":
        assert y.dtype == torch.int64 and y.shape == (8,)
    else:
        assert y.dtype == torch.float32 and y.shape == (8, 1)


def test_unknown_sklearn_set_is_a_config_error():
    """The component says why (ArgError, a ValueError); the builder names the key."""
    from data_loader.data_loaders import SklearnDataLoader
    from trainer.config.parse_config import ConfigParser

    with pytest.raises(ValueError, match="unknown data set 'wines'; did you mean 'wine'"):
        SklearnDataLoader("wines")
    config = load_config(CONFIG / "wine_mlp.yaml")
    config["data_loader"]["args"]["dataset"] = "wines"
    with pytest.raises(ConfigError, match="data_loader.args.dataset: unknown data set 'wines'; "
                                          "did you mean 'wine'"):
        ConfigParser(config, "test").build_data_loader()


def test_standardization_stats_come_from_the_training_split_only(wine_frozen_run):
    from sklearn.datasets import load_wine

    from data_loader.data_loaders import SklearnDataLoader

    x = torch.tensor(load_wine().data, dtype=torch.float64)
    dl = SklearnDataLoader("wine", validation_split=0.15, test_split=0.25)
    mean, std = dl.feature_stats()
    train_x = x[dl.train_indices]
    assert torch.allclose(mean.double(), train_x.mean(0), rtol=1e-6)
    assert torch.allclose(std.double(), train_x.std(0, unbiased=False), rtol=1e-6)
    assert not torch.allclose(mean.double(), x.mean(0), rtol=1e-4)  # not all the data
    assert SklearnDataLoader("wine", standardize=False).feature_stats() is None

    # and a real run (same split) carries exactly those statistics in its checkpoint
    weights = load(wine_frozen_run / "model_best.pth")["model_state_dict"]
    assert list(weights)[:2] == ["input_mean", "input_std"]
    assert torch.equal(weights["input_mean"], mean) and torch.equal(weights["input_std"], std)
    r = run_script("test.py", "-r", wine_frozen_run / "model_best.pth")  # needs nothing else
    assert r.returncode == 0, r.stderr
    metrics = read_json(wine_frozen_run / "test_metrics.json")
    assert list(metrics) == ["loss", "accuracy", "f1_macro", "precision_macro", "recall_macro"]


def test_california_housing_offline_is_a_clear_run_error(tmp_path):
    """Offline: exit 1 and a message saying a network is needed and where the cache is.
    A proxy on a closed local port makes any download attempt fail at once."""
    cache = tmp_path / "sk_data"
    closed = "http://127.0.0.1:9"
    r = train("-c", CONFIG / "diabetes_regression.yaml",
              "data_loader.args.dataset=california_housing",
              "arch.args.in_features=8", f"+data_loader.args.data_home={cache}",
              save_dir=tmp_path / "saved", timeout=120,
              env={"https_proxy": closed, "HTTPS_PROXY": closed, "http_proxy": closed,
                   "HTTP_PROXY": closed, "no_proxy": "", "NO_PROXY": ""})
    assert r.returncode == 1, r.stderr
    line = error_line(r)
    assert "california_housing" in line and "network" in line and str(cache) in line
    assert not (tmp_path / "saved").exists()
    from data_loader.data_loaders import SklearnDataLoader

    with pytest.raises(RunError, match="download is false"):
        SklearnDataLoader("california_housing", data_home=str(cache), download=False)


def write(path, text):
    path.write_text(text)
    return str(path)


def test_csv_loader_reads_features_and_targets(tmp_path):
    from data_loader.csv_file import CsvDataLoader

    f = write(tmp_path / "t.csv", "a,b,label,c\n1,2,cat,3\n4,5,dog,6\n\n7,8,cat,9\n")
    dl = CsvDataLoader(f, target="label", task="classification", features=["c", "a"],
                       batch_size=3, validation_split=0.0, test_split=0.0, shuffle=False)
    assert dl.feature_names == ["c", "a"] and dl.class_names == ["cat", "dog"]
    x, y = next(iter(dl))
    assert x.tolist() == [[3, 1], [6, 4], [9, 7]] and y.tolist() == [0, 1, 0]
    reg = CsvDataLoader(REPO / "data_loader/data/crop_yield.csv", target="crop_yield",
                        validation_split=0.0, test_split=0.0)
    x, y = reg.dataset.tensors
    assert x.shape == (400, 5) and y.shape == (400, 1) and y.dtype == torch.float32
    assert reg.feature_names == ["temperature", "rainfall", "sunlight_hours", "soil_ph",
                                 "fertilizer"]


@pytest.mark.parametrize("text, args, message", [
    ("a,b\n1,2\n", {"target": "y"}, "data_loader.args.target: column 'y' not found in"),
    ("a,b\n1,2\n", {"target": "b", "features": ["a", "q"]},
     "data_loader.args.features: column 'q' not found in"),
    ("a,b\n1,2\n3\n", {"target": "b"}, "row 2 (line 3) has 1 fields, the header has 2"),
    ("a,b\n1,2\n3,\n", {"target": "b"}, "row 2 (line 3), column 'b': expected a number, got an "
                                        "empty value"),
    ("", {"target": "b"}, "the file is empty"),
    ("a,b\n1,2\n", {"target": "b", "task": "clustering"}, "data_loader.args.task: expected"),
])
def test_csv_problems_are_config_errors(tmp_path, text, args, message):
    """The loader says what is wrong (ValueError); building it from a config names the key."""
    from data_loader.csv_file import CsvDataLoader
    from trainer.config.parse_config import ConfigParser

    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError):
        CsvDataLoader(path, **args)
    config = load_config(CONFIG / "csv_regression.yaml")
    config["data_loader"]["args"] = {"path": str(path), **args}
    with pytest.raises(ConfigError) as e:
        ConfigParser(config, "test").build_data_loader()
    assert message in str(e.value) and str(e.value).startswith("data_loader.args")


@pytest.mark.slow
@pytest.mark.parametrize("override, expected", [
    ("data_loader.args.target=yield", "data_loader.args.target: column 'yield' not found in"),
    ("data_loader.args.path=BAD",
     "row 3 (line 4), column 'rainfall': expected a number, got 'lots'"),
])
def test_csv_errors_exit_2_with_one_line(tmp_path, override, expected):
    bad = write(tmp_path / "bad.csv", "temperature,rainfall,sunlight_hours,soil_ph,fertilizer,"
                "crop_yield\n" + "20,500,6,6.5,100,7\n" * 2 + "20,lots,6,6.5,100,7\n")
    r = train("-c", CONFIG / "csv_regression.yaml", override.replace("BAD", bad),
              save_dir=tmp_path / "saved")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and expected in error_line(r)
    assert not (tmp_path / "saved").exists()


def test_sequence_data_is_seeded_padded_per_batch_and_varied():
    from data_loader.datasets import pad_collate
    from data_loader.sequence_task import SequenceDataLoader

    a = SequenceDataLoader(n_samples=300, min_len=3, max_len=50, batch_size=16, seed=1)
    b = SequenceDataLoader(n_samples=300, min_len=3, max_len=50, batch_size=16, seed=2)
    c = SequenceDataLoader(n_samples=300, min_len=3, max_len=50, data_seed=1)
    ds = a.dataset
    assert torch.equal(ds.tokens, b.dataset.tokens) and torch.equal(ds.targets, b.dataset.targets)
    assert not torch.equal(ds.targets, c.dataset.targets)
    assert ds.lengths.min() <= 6 and ds.lengths.max() >= 45  # lengths vary widely
    assert set(ds.targets.tolist()) == {0, 1, 2, 3}
    for tokens, lengths, y in a:
        assert tokens.shape[1] == int(lengths.max())  # padded to the batch's longest only
        steps = torch.arange(tokens.shape[1])
        assert torch.all(tokens[steps >= lengths.unsqueeze(1)] == 0)
        assert torch.all(tokens[steps < lengths.unsqueeze(1)] > 0)
        assert lengths.dtype == torch.int64 and y.dtype == torch.int64
    idx = [5, 0, 17]
    batch = ds.__getitems__(idx)
    for got, want in zip(batch, pad_collate([ds[i] for i in idx])):
        assert torch.equal(got, want)
    # the label is the most frequent marker token (ids 1..n_class)
    for i in range(20):
        seq, label = ds[i]
        counts = torch.bincount(seq, minlength=5)[1:5]
        assert int(counts.argmax()) == int(label) and int((counts == counts.max()).sum()) == 1


# ------------------------------------------------------------------ example configs, end to end


@pytest.mark.slow
def test_digits_cnn_config_reaches_097(save_dir):
    metrics, best = train_and_test(CONFIG / "digits_cnn.yaml", save_dir)
    assert best["arch"] == "CNN"
    assert metrics["accuracy"] >= 0.97


@pytest.mark.slow
def test_diabetes_regression_config_reaches_r2_040(save_dir):
    metrics, best = train_and_test(CONFIG / "diabetes_regression.yaml", save_dir)
    assert list(metrics) == ["loss", "r2", "mae", "rmse"]
    assert metrics["r2"] >= 0.40
    assert metrics["loss"] == pytest.approx(metrics["rmse"] ** 2, rel=1e-4)  # mean loss is the mse


@pytest.mark.slow
def test_csv_regression_config_trains_and_tests(save_dir):
    metrics, _ = train_and_test(CONFIG / "csv_regression.yaml", save_dir, "trainer.epochs=15")
    assert metrics["r2"] >= 0.7


@pytest.mark.slow
def test_sequence_config_learns_well_above_chance(save_dir):
    metrics, best = train_and_test(CONFIG / "sequence_lstm_attention.yaml", save_dir,
                                   "data_loader.args.n_samples=800", "trainer.epochs=3")
    assert best["arch"] == "LSTMClassifier"
    assert "input_mean" not in best["model_state_dict"]
    assert metrics["accuracy"] >= 0.6  # chance is 0.25


@pytest.mark.parametrize("n_class", [10, 3, 1])
def test_digits_read_from_the_bundled_file_equal_scikit_learns(n_class):
    import numpy as np
    import sklearn.datasets

    from data_loader.digits import load_digits

    x, y = load_digits(n_class)
    want_x, want_y = sklearn.datasets.load_digits(n_class=n_class, return_X_y=True)
    assert x.dtype == want_x.dtype and np.array_equal(x, want_x)
    assert np.array_equal(y, want_y) and len(set(y.tolist())) == n_class


@pytest.mark.parametrize("n_class", [0, 11, 2.5, True])
def test_digits_n_class_out_of_range_is_named(n_class):
    from data_loader.digits import load_digits
    from utils.errors import ArgError

    with pytest.raises(ArgError, match="expected an integer from 1 to 10") as e:
        load_digits(n_class)
    assert e.value.arg == "n_class"
