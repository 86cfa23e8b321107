"""The fast tier's module check (tests/conftest.py): Python imports this file at the start of
every process that has this folder on PYTHONPATH. When $PROJECT_MODULE_LOG names a folder, the
process writes there, at exit, the checkout's files it imported (paths relative to
$PROJECT_MODULE_ROOT). Nothing else happens: no import of the project, no output."""

import atexit
import os
import sys

# the script this process runs (`python train.py`): its __main__ module may have lost its
# __file__ by the time atexit runs, and the working directory may have changed
_SCRIPT = os.path.abspath(sys.argv[0]) if getattr(sys, "argv", None) and sys.argv[0] \
    and sys.argv[0] not in ("-c", "-m") else None


def record() -> None:
    """Append this process's imported checkout files to $PROJECT_MODULE_LOG/<pid>.txt."""
    log, root = os.environ.get("PROJECT_MODULE_LOG"), os.environ.get("PROJECT_MODULE_ROOT")
    if not log or not root or not os.path.isdir(log):
        return
    root = os.path.realpath(root) + os.sep
    paths = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
    files = set()
    for path in [_SCRIPT, *paths]:
        if isinstance(path, str) and os.path.isabs(path):  # (some modules name a bare file)
            path = os.path.realpath(path)
            if path.startswith(root):
                files.add(path[len(root):])
    if files:
        with open(os.path.join(log, f"{os.getpid()}.txt"), "a", encoding="utf-8") as out:
            out.write("".join(f"{name}\n" for name in sorted(files)))


if __name__ == "sitecustomize" and os.environ.get("PROJECT_MODULE_LOG"):
    atexit.register(record)
