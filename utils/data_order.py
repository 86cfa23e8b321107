"""What the order of a run's training batches depends on, recorded in a mid-epoch checkpoint.

A checkpoint taken mid-epoch only says how many batches of that epoch were done; the batches
that follow are the right ones only when everything below is unchanged on resume.
"""

from __future__ import annotations

from typing import Any

from utils.errors import ConfigError

# recorded key -> how a user changes it
KEY_PATHS = {
    "seed": "seed",
    "batch_size": "data_loader.args.batch_size",
    "shuffle": "data_loader.args.shuffle",
    "drop_last": "data_loader.args.drop_last",
    "train_samples": "the training split's size",
    "validation_samples": "data_loader.args.validation_split",
    "test_samples": "data_loader.args.test_split",
    "accumulate_steps": "trainer.accumulate_steps",
    "world_size": "the number of processes (world size)",
    "balanced": "data_loader.args.sampler",
    "len_epoch": "trainer.len_epoch",
}


def _length(indices: Any) -> int | None:
    return None if indices is None else len(indices)


def data_order(loader: Any, seed: int, accumulate_steps: int, world_size: int,
               len_epoch: int | None = None) -> dict:
    """The training loader's order parameters as plain data (a checkpoint's partial_epoch)."""
    sampler = loader.batch_sampler
    return {
        "seed": int(seed),
        "batch_size": int(sampler.batch_size),
        "shuffle": bool(sampler.shuffle),
        "drop_last": bool(sampler.drop_last),
        "train_samples": len(sampler.indices),
        "validation_samples": _length(getattr(loader, "valid_indices", None)),
        "test_samples": _length(getattr(loader, "test_indices", None)),
        "accumulate_steps": int(accumulate_steps),
        "world_size": int(world_size),
        "balanced": getattr(sampler, "weights", None) is not None,
        "len_epoch": len_epoch,
    }


def order_changes(recorded: dict, current: dict) -> list[str]:
    """'key: old -> new' for every recorded key whose value differs now (keys a checkpoint
    does not record, older checkpoints' for example, are not compared)."""
    return [f"{KEY_PATHS.get(k, k)} {recorded[k]!r} -> {current[k]!r}"
            for k in current if k in recorded and recorded[k] != current[k]]


def check_resume_order(ckpt: dict, current: dict, source: str) -> list[str]:
    """The changes of data order from `ckpt` to `current`, for a warning (an epoch checkpoint:
    the next epoch just starts in the new order); ConfigError for a mid-epoch checkpoint."""
    partial = ckpt.get("partial_epoch")
    recorded = dict(ckpt.get("data_order") or {})
    if partial:
        recorded.setdefault("world_size", partial.get("world_size", 1))
    changes = order_changes(recorded, current)
    if not changes or not partial:
        return changes
    hint = ""
    if recorded["world_size"] != current["world_size"]:
        hint = f" (e.g. torchrun --nproc_per_node={recorded['world_size']} train.py -r ...)"
    raise ConfigError(f"{source}: taken mid-epoch ({partial.get('batches_done')} batches of "
                      f"epoch {partial.get('epoch')} done), and what its data order depends on "
                      f"changed: {'; '.join(changes)}; resume without those changes{hint}, or "
                      f"from an epoch checkpoint")
