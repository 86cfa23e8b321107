"""Data loaders, found by name: any concrete BaseDataLoader subclass in a module here."""

from __future__ import annotations

from base import BaseDataLoader
from utils.registry import Registry, subclasses_in


def _data_loaders(module) -> dict:
    return subclasses_in(module, BaseDataLoader)


DATA_LOADERS = Registry("data loader", "data_loader", _data_loaders)
