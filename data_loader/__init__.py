"""Data loaders, found by name: any concrete BaseDataLoader subclass in a module here
(or elsewhere, by import path: `type: mypkg.data.MyLoader`)."""

from __future__ import annotations

from base import BaseDataLoader
from utils.registry import Kind, Registry, subclasses_in


def _data_loaders(module) -> dict:
    return subclasses_in(module, BaseDataLoader)


DATA_LOADERS = Registry("data loader", "data_loader", _data_loaders,
                        Kind("a subclass of base.BaseDataLoader", (BaseDataLoader,)),
                        accepts=None)
