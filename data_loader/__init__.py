"""Data loaders, found by name: any concrete BaseDataLoader subclass in a module here
(or elsewhere, by import path: `type: mypkg.data.MyLoader`)."""

from __future__ import annotations

import inspect

from base import BaseDataLoader
from utils.registry import Registry, subclasses_in


def _data_loaders(module) -> dict:
    return subclasses_in(module, BaseDataLoader)


def _is_loader(obj: object) -> bool:
    return inspect.isclass(obj) and issubclass(obj, BaseDataLoader)


DATA_LOADERS = Registry("data loader", "data_loader", _data_loaders,
                        accepts=(_is_loader, "a subclass of base.BaseDataLoader"))
