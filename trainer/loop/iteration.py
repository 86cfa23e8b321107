"""Iteration-based epochs: `trainer.len_epoch` batches per epoch, `trainer.max_steps` in all.

With `len_epoch: N` the training batches form one endless stream, the loader's
epochs 1, 2, 3, ... one after the other, each in its own (seed, loader epoch)
order; trainer epoch e takes the stream's batches (e-1)*N .. e*N-1. The
batches of any trainer epoch, and of any point inside one, are therefore a pure
function of (seed, e, batches done): a mid-epoch resume skips exactly the
batches already done, and a run split over several trainer epochs sees what one
long run over consecutive loader epochs would see.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from utils.errors import ConfigError


def epoch_length(loader: Any, len_epoch: int | None) -> int:
    """Batches in one trainer epoch: `len_epoch`, or the loader's length when it is None."""
    return len(loader) if len_epoch is None else len_epoch


def stream_position(epoch: int, start_batch: int, len_epoch: int, per_loader: int
                    ) -> tuple[int, int]:
    """(loader epoch, batch within it) of batch `start_batch` of trainer epoch `epoch`."""
    loader_epoch, offset = divmod((epoch - 1) * len_epoch + start_batch, per_loader)
    return loader_epoch + 1, offset


def epoch_batches(loader: Any, epoch: int, start_batch: int = 0,
                  len_epoch: int | None = None) -> Iterator:
    """The batches of trainer epoch `epoch`, from its batch `start_batch` on."""
    if len_epoch is None:
        loader.set_epoch(epoch, start_batch)
        yield from loader
        return
    per_loader = len(loader)
    if per_loader == 0:
        raise ConfigError("trainer.len_epoch: the training loader yields no batch to cycle "
                          "(fewer samples than batch_size with drop_last)")
    remaining = len_epoch - start_batch
    loader_epoch, offset = stream_position(epoch, start_batch, len_epoch, per_loader)
    while remaining > 0:
        loader.set_epoch(loader_epoch, offset)
        for batch in loader:
            yield batch
            remaining -= 1
            if remaining == 0:
                return
        loader_epoch, offset = loader_epoch + 1, 0

