"""test.py --export: each format reproduces test.py's predictions (digits MLP, bi-LSTM)."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from conftest import REPO, load, only_run, read_csv, run_script, train

# one worker runs this file's tests: its module fixtures train once (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("export")

_spec = importlib.util.spec_from_file_location("test_entry_point", REPO / "test.py")
TEST_PY = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(TEST_PY)

MLP = ("config/digits_mlp.json", "digits_mlp", ["trainer.epochs=2", "arch.args.hidden=32"])
LSTM = ("config/sequence_lstm_attention.yaml", "sequence_lstm_attention",
        ["trainer.epochs=1", "data_loader.args.n_samples=300", "arch.args.hidden_size=16",
         "arch.args.attention_dim=16"])


def _trained(tmp_path_factory, spec) -> Path:
    config, name, overrides = spec
    save = tmp_path_factory.mktemp(name) / "saved"
    r = train("-c", REPO / config, *overrides, "trainer.verbosity=0", save_dir=save)
    assert r.returncode == 0, r.stderr
    best = only_run(save, name) / "model_best.pth"
    assert TEST_PY.main(["-r", str(best), "--predict"]) == 0
    return best


@pytest.fixture(scope="module")
def mlp_ckpt(tmp_path_factory) -> Path:
    return _trained(tmp_path_factory, MLP)


@pytest.fixture(scope="module")
def lstm_ckpt(tmp_path_factory) -> Path:
    return _trained(tmp_path_factory, LSTM)


def split_inputs(ckpt: Path) -> list[tuple]:
    """The raw inputs of every test batch, in the order test.py --predict wrote them."""
    from trainer.config.parse_config import ConfigParser

    loader = ConfigParser.from_checkpoint(ckpt).build_data_loader(training=False)
    return [tuple(batch)[:-1] for batch in loader]


def runner(path: Path):
    """A callable (inputs tuple) -> output tensor for an exported file, loaded as a user would."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda xs: torch.from_numpy(session.run(None, {n: x.numpy()
                                                              for n, x in zip(names, xs)})[0])
    if path.suffix == ".pt2":
        module = torch.export.load(path).module()
        return lambda xs: module(*xs)
    from safetensors import safe_open
    from safetensors.torch import load_file

    from trainer.config.parse_config import ConfigParser, validate_config

    with safe_open(str(path), framework="pt") as f:  # the config travels in the metadata
        config, _ = validate_config(json.loads(f.metadata()["config"]))
    model = ConfigParser(config, "export").build_model()
    model.load_state_dict(load_file(path))
    model.eval()
    return lambda xs: model(*xs)


def assert_reproduces_predictions(ckpt: Path, exported: Path) -> None:
    run = runner(exported)
    with torch.no_grad():
        probs = torch.cat([torch.softmax(run(xs).double(), dim=1)
                           for xs in split_inputs(ckpt)])
    rows = read_csv(ckpt.parent / "predictions.csv")
    assert len(rows) == len(probs) > 0
    expected = torch.tensor([[float(r[f"prob_{c}"]) for c in range(probs.shape[1])]
                             for r in rows], dtype=torch.float64)
    assert torch.equal(probs.argmax(dim=1), torch.tensor([int(r["prediction"]) for r in rows]))
    assert (probs - expected).abs().max().item() < 1e-5


def export(ckpt: Path, target: Path, capsys) -> tuple[int, str, str]:
    """test.py -r CKPT --export TARGET in this process (the CLI in a subprocess: the first
    test): exit code, stdout, stderr."""
    capsys.readouterr()
    code = TEST_PY.main(["-r", str(ckpt), "--export", str(target)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".onnx", ".pt2", ".safetensors"])
def test_mlp_export_reproduces_test_py(mlp_ckpt, tmp_path, suffix, capsys):
    target = tmp_path / "out" / f"digits{suffix}"
    if suffix == ".onnx":  # as a user runs it
        r = run_script("test.py", "-r", mlp_ckpt, "--export", target)
        code, out, err = r.returncode, r.stdout, r.stderr
    else:
        code, out, err = export(mlp_ckpt, target, capsys)
    assert code == 0, err
    diff = float(out.split("max abs diff against PyTorch on a test batch: ")[1].split()[0])
    assert diff <= 1e-4
    assert f"saved {target}" in out
    assert {p.name for p in target.parent.iterdir()} == {f"digits{suffix}"}  # nothing beside
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    assert_reproduces_predictions(mlp_ckpt, target)
    if suffix == ".safetensors":  # its metadata holds the checkpoint's resolved config
        from safetensors import safe_open

        with safe_open(str(target), framework="pt") as f:
            assert json.loads(f.metadata()["config"]) == load(mlp_ckpt)["config"]


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".onnx", ".safetensors"])
def test_lstm_export_reproduces_test_py(lstm_ckpt, tmp_path, suffix, capsys):
    target = tmp_path / f"lstm{suffix}"
    code, _, err = export(lstm_ckpt, target, capsys)
    assert code == 0, err
    assert_reproduces_predictions(lstm_ckpt, target)  # batches of different sizes and lengths


def test_lstm_pt2_is_a_one_line_error(lstm_ckpt, tmp_path, capsys):
    code, _, err = export(lstm_ckpt, tmp_path / "lstm.pt2", capsys)
    assert code == 1
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: torch.export cannot export LSTMClassifier")
    assert "packed sequences" in errors[0] and ".onnx or .safetensors" in errors[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_unknown_suffix_lists_the_three(mlp_ckpt, tmp_path, capsys):
    code, _, err = export(mlp_ckpt, tmp_path / "model.h5", capsys)
    assert code == 2
    assert err.strip() == (f"error: --export {tmp_path / 'model.h5'}: unknown format '.h5' "
                                f"(expected a file ending in .onnx, .pt2, .safetensors)")


def test_missing_extra_names_the_pip_command(monkeypatch):
    import importlib.util

    from trainer import export as export_module
    from utils.errors import RunError

    real = importlib.util.find_spec
    monkeypatch.setattr(export_module.importlib.util, "find_spec",
                        lambda name: None if name == "onnxruntime" else real(name))
    with pytest.raises(RunError, match=r"needs onnxruntime, not installed .*: "
                                       r"pip install -e '\.\[onnx\]'"):
        export_module.check_export_target(Path("m.onnx"))
    export_module.check_export_target(Path("m.pt2"))  # torch alone


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
