"""api.py: train, evaluate, load and predict from Python; the CLI's validation as exceptions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REPO, read_json, run_script

import api
from utils.errors import ConfigError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    save = tmp_path_factory.mktemp("api") / "saved"
    run = api.train(REPO / "config/digits_mlp.json",
                    ["trainer.epochs=2", "arch.args.hidden=32", "trainer.verbosity=0",
                     f"trainer.save_dir={save}"])
    return run


def raw_test_features(run_dir) -> torch.Tensor:
    return torch.cat([x for x, _ in _loader(run_dir)])


def test_train_returns_the_run_folder(run_dir, tmp_path):
    assert run_dir.parent.name == "digits_mlp"
    assert (run_dir / "model_best.pth").is_file()
    config = read_json(run_dir / "config.json")
    assert config["trainer"]["epochs"] == 2 and config["arch"]["args"]["hidden"] == 32


def test_evaluate_equals_test_py(run_dir, tmp_path):
    out = tmp_path / "metrics.json"
    r = run_script("test.py", "-r", run_dir / "model_best.pth", "--output", out)
    assert r.returncode == 0, r.stderr
    metrics = api.evaluate(run_dir)
    assert list(metrics) == ["loss", "accuracy", "top_k_acc"]
    assert metrics == read_json(out)
    assert not (run_dir / "test_metrics.json").exists()  # evaluate writes nothing


def test_predict_equals_load_and_forward(run_dir):
    x = raw_test_features(run_dir)
    model, config = api.load(run_dir / "model_best.pth")
    assert not model.training and config["arch"]["args"]["hidden"] == 32
    with torch.no_grad():
        expected = model(x)
    assert torch.equal(api.predict(run_dir, x), expected)
    assert torch.equal(api.predict(model, x.numpy().astype(np.float64)), expected)
    model.train()
    assert torch.equal(api.predict(model, x.tolist()), expected)
    assert model.training  # its mode is the caller's
    accuracy = (expected.argmax(dim=1) == torch.cat(
        [t for _, t in _loader(run_dir)])).double().mean().item()
    assert accuracy == pytest.approx(api.evaluate(run_dir)["accuracy"])


def _loader(run_dir):
    from trainer.config.parse_config import ConfigParser

    return ConfigParser.from_checkpoint(run_dir / "model_best.pth").build_data_loader(
        training=False)


def test_load_a_safetensors_export(run_dir, tmp_path):
    from trainer.inference.export import export_model

    model, config = api.load(run_dir)
    x = raw_test_features(run_dir)
    export_model(model, config, (x[:16],), tmp_path / "m.safetensors")
    loaded, loaded_config = api.load(tmp_path / "m.safetensors")
    assert loaded_config == config
    assert torch.equal(api.predict(loaded, x), api.predict(model, x))


def test_errors_are_exceptions_with_the_cli_message(run_dir, tmp_path):
    config = json.loads((REPO / "config/digits_mlp.json").read_text())
    config["trainer"]["epohcs"] = 3
    with pytest.raises(ConfigError, match=r"^config: trainer\.epohcs: unknown key; did you mean "
                                          r"'epochs'\?"):
        api.train(config)
    with pytest.raises(ConfigError, match=r"add -m \(--multirun\) to sweep them"):
        api.train(REPO / "config/digits_mlp.json", ["trainer.epochs=1,2"])
    with pytest.raises(ConfigError, match=r"config file not found"):
        api.train(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"nope\.pth"):
        api.load(tmp_path / "nope.pth")
    with pytest.raises(ConfigError, match=r"^predict: the inputs \(torch.float32 \[2, 5\]\) "
                                          r"do not fit MLP: "):
        api.predict(run_dir, torch.zeros(2, 5))
    with pytest.raises(ConfigError, match=r"^predict: inputs must hold one or more examples"):
        api.predict(run_dir, torch.zeros(0, 64))


def test_one_example_and_bad_inputs(run_dir):
    """A 1-D input is one example: (1, n_outputs), the row a batch gives it. None, strings,
    mappings and ragged lists are one ConfigError line each."""
    model, _ = api.load(run_dir)
    x = raw_test_features(run_dir)[:3]
    one = api.predict(model, x[1])
    assert one.shape == (1, 10)
    assert torch.allclose(one[0], api.predict(model, x)[1], atol=1e-6)
    assert api.predict(model, x[1].tolist()).shape == (1, 10)
    expected = "expected a tensor, a NumPy array or a nested list of numbers, got"
    for bad, got in ((None, "NoneType"), ("1,2,3", "str"), ({"x": 1}, "dict")):
        with pytest.raises(ConfigError, match=rf"^predict: inputs: {expected} {got}$"):
            api.predict(model, bad)
    with pytest.raises(ConfigError, match=r"^predict: inputs: cannot be read as numbers "
                                          r"\(expected sequence of length 64 at dim 1 \(got 2\)\);"
                                          r" .* every example with the same number of values$"):
        api.predict(model, [[0.0] * 64, [0.0] * 2])
    with pytest.raises(ConfigError, match=r"^predict: inputs\[1\]: expected .* got NoneType$"):
        api.predict(model, (x, None))
