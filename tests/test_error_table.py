"""Issue 17: mistakes that used to escape the one-line contract. Each case runs train.py as a
subprocess and must exit 2 with one `error:` line naming the culprit, no traceback, and leave
every file under save_dir as it was. (Started: more cases of the issue are still to come.)"""

from __future__ import annotations

import hashlib

import pytest
from conftest import REPO, train

DIGITS = REPO / "config/digits_mlp.json"


def checksums(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def a_file(t):
    (t / "afile").write_text("x")
    return t / "afile"


# (id, the arguments from tmp_path, text the error must name)
CASES = [
    ("save-dir-a-file", lambda t: ["-c", DIGITS, f"trainer.save_dir={a_file(t)}"],
     "trainer.save_dir"),
    ("save-dir-under-a-file", lambda t: ["-c", DIGITS, f"trainer.save_dir={a_file(t)}/sub"],
     "trainer.save_dir"),
    ("seed-beyond-int64", lambda t: ["-c", DIGITS, "seed=99999999999999999999"], "seed"),
    ("batch-size-beyond-int64", lambda t: ["-c", DIGITS, "--bs", "99999999999999999999"],
     "data_loader.args.batch_size"),
    ("non-utf8-config", lambda t: ["-c", (t / "c.yaml", (t / "c.yaml").write_bytes(
        b"name: x\n\xff\n"))[0]], "UTF-8"),
    ("recursive-alias", lambda t: ["-c", (t / "r.yaml", (t / "r.yaml").write_text(
        "a: &a [1, *a]\n"))[0]], "alias"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_error_line_and_nothing_written(tmp_path, case):
    _, make_args, named = case
    save = tmp_path / "saved"
    args = make_args(tmp_path)
    before = checksums(tmp_path)
    r = train(*args, "--dry-run", save_dir=save) if not any(
        str(a).startswith("trainer.save_dir=") for a in args) else \
        train(*args[:-1], "--dry-run", save_dir=args[-1].split("=", 1)[1])
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and named in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert checksums(tmp_path) == before
