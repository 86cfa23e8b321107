"""Logging through the standard logging module: the console and the run's info.log."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from utils.files import open_append

LOGGER_NAME = "train"
LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
FILE_ONLY = {"file_only": True}  # logger.debug(msg, extra=FILE_ONLY): info.log, not the console


class LogFile(logging.FileHandler):
    """info.log, appended to through utils.files.open_append: a link planted in its place is
    replaced by a fresh file, never written through."""

    def _open(self):
        return open_append(Path(self.baseFilename))


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def setup_logging(verbosity: int = 2, log_file: Path | None = None) -> logging.Logger:
    """Console output at the config's verbosity; everything from INFO up to `log_file`.

    Called again (e.g. once the run folder exists) it replaces the handlers.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(LEVELS.get(verbosity, logging.DEBUG))
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    logger.addHandler(console)
    if log_file is not None:
        file_handler = LogFile(log_file, mode="a", encoding="utf-8")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(file_handler)
    return logger


def close_logging() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
