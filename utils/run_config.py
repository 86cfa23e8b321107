"""A resolved config's identity, and a run folder's config.json next to its checkpoint.

`--resume auto` recognises a run of the same config by `config_hash`, stored in every
checkpoint: a SHA-256 of the resolved config as canonical JSON (sorted keys), so key order
and formatting in the file do not matter, every value does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from utils.files import read_json


def config_hash(config: dict) -> str:
    """Hex SHA-256 of `config` as canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stored_hash(ckpt: dict) -> str:
    """The checkpoint's config_hash (computed from its config when an older checkpoint lacks
    one)."""
    return ckpt.get("config_hash") or config_hash(ckpt["config"])


def edited_config_json(checkpoint_path: Path, stored: dict) -> dict | None:
    """The config.json beside `checkpoint_path` when it is a mapping that differs from the
    checkpoint's config `stored` (a user edited it), else None."""
    on_disk: Any = read_json(Path(checkpoint_path).parent / "config.json")
    return on_disk if isinstance(on_disk, dict) and on_disk != stored else None
