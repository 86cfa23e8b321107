"""The fast tier's module check (tests/conftest.py): Python imports this file at the start of
every process that has this folder on PYTHONPATH. When $PROJECT_MODULE_LOG names a folder, the
process writes there, at exit, the checkout's files it imported (paths relative to
$PROJECT_MODULE_ROOT). Nothing else happens: no import of the project, no output."""

import atexit
import os
import sys


def record() -> None:
    """Append this process's imported checkout files to $PROJECT_MODULE_LOG/<pid>.txt."""
    log, root = os.environ.get("PROJECT_MODULE_LOG"), os.environ.get("PROJECT_MODULE_ROOT")
    if not log or not root or not os.path.isdir(log):
        return
    root = os.path.realpath(root) + os.sep
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.realpath(path).startswith(root):
            files.add(os.path.realpath(path)[len(root):])
    if files:
        with open(os.path.join(log, f"{os.getpid()}.txt"), "a", encoding="utf-8") as out:
            out.write("".join(f"{name}\n" for name in sorted(files)))


if __name__ == "sitecustomize" and os.environ.get("PROJECT_MODULE_LOG"):
    atexit.register(record)
