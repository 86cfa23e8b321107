"""`train.py -c CFG --resume auto`: continue this config's newest checkpoint, or start fresh.

The search looks at every run folder of the config's name (saved/models/<name>/*/), takes the
newest checkpoint of each (checkpoint-interrupted.pth, taken mid-epoch on a stop signal, or
the highest checkpoint-epoch<N>.pth) and keeps those whose stored `config_hash`
(utils/run_config.py) is the resolved config's own. Of those, the one furthest into training
(epoch, then batches into the next epoch, then optimizer steps) is resumed exactly; a run that
already finished is not trained again. Checkpoints of the same name but another config are
refused, naming the keys that differ, unless --allow-changed (which resumes the newest of them
with the new config). So the same command can be requeued blindly.

One --resume auto run of a name at a time: it holds saved/models/<name>/.lock (utils/run_lock.py)
from before it chooses until it exits, so a second copy of the same job (started at the same
moment, or while the first still trains) cannot also start fresh: it stops with one line naming
the holder's process, before it writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logger.logger import get_logger
from trainer.config.parse_config import ConfigParser
from trainer.run.resume_checks import differing_keys
from utils import dist
from utils.best_model import repair_best
from utils.checkpoint import BEST_NAME, INTERRUPT_NAME, epoch_checkpoints, load_checkpoint
from utils.checkpoint_arg import best_ahead
from utils.errors import ConfigError, RunError
from utils.run_config import config_hash, stored_hash
from utils.run_limits import max_steps_reached
from utils.run_lock import lock_run_folder
from utils.run_pointer import run_folders

AUTO = "auto"


def take_auto(args: Any) -> bool:
    """Whether the command asks for `--resume auto` (then args.resume is cleared: the
    checkpoint is found once the config is built). ConfigError without -c."""
    if getattr(args, "resume", None) != AUTO:
        if getattr(args, "allow_changed", False) and not getattr(args, "resume", None):
            raise ConfigError("--allow-changed goes with --resume auto or -r CHECKPOINT")
        return False
    if not getattr(args, "config", None):
        raise ConfigError("--resume auto needs -c CONFIG_FILE: it looks for a run of that "
                          "config (give ./auto for a checkpoint file named auto)")
    args.resume = None
    return True


@dataclass(frozen=True)
class Candidate:
    path: Path
    ckpt: dict
    mtime: float

    @property
    def progress(self) -> tuple[int, int, int, int]:
        """How far into training: (epochs done, batches into the next, in its validation,
        optimizer steps)."""
        partial = self.ckpt.get("partial_epoch") or {}
        return (int(self.ckpt["epoch"]), int(partial.get("batches_done", 0)),
                int(bool(partial.get("validating"))), int(self.ckpt.get("global_step", 0)))

    def describe(self) -> str:
        epoch, batches, validating, _ = self.progress
        into = f", {batches} batches into epoch {epoch + 1}" if batches else ""
        if validating:
            into = f", epoch {epoch + 1} trained, stopped in its validation"
        return f"{self.path} (epoch {epoch}{into})"


def _load(path: Path) -> Candidate | None:
    try:
        return Candidate(path, load_checkpoint(path), path.stat().st_mtime)
    except (ConfigError, OSError) as e:
        get_logger().warning(f"warning: --resume auto skips {path}: {e}")
        return None


def newest_in(run_dir: Path) -> Candidate | None:
    """The run folder's checkpoint furthest into training (None when it has none)."""
    epochs = [p for _, p in reversed(epoch_checkpoints(run_dir))]
    interrupted = run_dir / INTERRUPT_NAME
    ahead = [run_dir / BEST_NAME] if best_ahead(run_dir) else []  # written before the epoch's
    found = []
    for path in ([interrupted] if interrupted.is_file() else []) + ahead + epochs:
        candidate = _load(path)
        if candidate is None:
            continue
        found.append(candidate)
        if path not in (interrupted, *ahead):  # the highest readable epoch checkpoint wins
            break                              # over the older ones
    return max(found, key=lambda c: (c.progress, c.mtime), default=None)


def finished(ckpt: dict, trainer: dict) -> str | None:
    """Why the run of `ckpt` has nothing left to train under `trainer` (None: it has)."""
    if ckpt.get("partial_epoch"):
        return None
    steps, max_steps = ckpt.get("global_step", 0), trainer["max_steps"]
    if max_steps_reached(max_steps, steps):
        return f"trainer.max_steps {max_steps} reached"
    if ckpt["epoch"] >= trainer["epochs"]:
        return f"epoch {ckpt['epoch']} of {trainer['epochs']} done"
    if trainer["early_stop"] and ckpt.get("early_stop_count", 0) >= trainer["early_stop"]:
        return f"early-stopped after epoch {ckpt['epoch']}"
    return None


def _changed(config: ConfigParser, others: list[Candidate]) -> Candidate:
    """The newest checkpoint of another config: refused unless --allow-changed."""
    newest = max(others, key=lambda c: c.mtime)
    keys = differing_keys(newest.ckpt["config"], config.config)
    if not config.allow_changed:
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        raise ConfigError(f"{config.source}: --resume auto found {newest.describe()}, a run of "
                          f"'{config['name']}' with another config (the keys that differ: "
                          f"{shown}); add --allow-changed to resume it with this config, or "
                          f"drop --resume auto (or change name) to start a fresh run")
    get_logger().warning(f"warning: --allow-changed: resuming with this config; the keys "
                         f"that differ from the checkpoint's: {', '.join(keys)}")
    return newest


def models_dir(config: ConfigParser) -> Path:
    """saved/models/<name>/: the run folders of the config's name."""
    return Path(config.trainer["save_dir"]) / "models" / config["name"]


def hold_name(config: ConfigParser) -> None:
    """Take the name's lock for the rest of this process (ConfigError naming the holder)."""
    folder = models_dir(config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock_run_folder(folder)
    except ConfigError as e:
        raise ConfigError(f"--resume auto runs one at a time per name ('{config['name']}'): "
                          f"{e}") from None
    except OSError as e:
        raise RunError(f"--resume auto: cannot lock {folder}: {e.strerror or e}") from None


def find(config: ConfigParser) -> tuple[Candidate | None, list[Candidate]]:
    """(the newest checkpoint of a run of this very config, the newest of other configs)."""
    wanted = config_hash(config.config)
    same, others = [], []
    for run_dir in run_folders(models_dir(config)):
        candidate = newest_in(run_dir)
        if candidate is not None:
            (same if stored_hash(candidate.ckpt) == wanted else others).append(candidate)
    return max(same, key=lambda c: (c.progress, c.mtime), default=None), others


def decide(config: ConfigParser) -> tuple[Candidate | None, str, bool]:
    """(checkpoint to resume or None, the one log line, whether the run is finished)."""
    chosen, others = find(config)
    if chosen is None and others:
        chosen = _changed(config, others)
    if chosen is None:
        return None, f"--resume auto: no resumable run of {config['name']}: starting fresh", \
            False
    done = finished(chosen.ckpt, config.trainer)
    if done:
        _, note = repair_best(chosen.path.parent)  # a finished run's model_best.pth too
        if note:
            get_logger().warning(note)
        return chosen, f"--resume auto: {config['name']} is finished ({done}, " \
                       f"{chosen.path}): nothing to train", True
    return chosen, f"--resume auto: resuming {chosen.describe()}", False


def apply_auto_resume(config: ConfigParser, hold: bool = True
                      ) -> tuple[ConfigParser, str, bool]:
    """Decide on rank 0 (every rank follows): (the config, resuming the chosen checkpoint if
    any, the decision's log line, whether there is nothing to train). `hold`: take the name's
    lock first (not for --dry-run, which writes nothing)."""
    decision: Any = None
    if dist.is_main():
        try:
            if hold:
                hold_name(config)
            decision = decide(config)
        except (ConfigError, RunError) as e:  # every rank leaves with it, none waits
            decision = e
    shared = dist.broadcast_object(decision if not dist.is_distributed() else
                                   _portable(decision))
    if isinstance(shared, ConfigError | RunError):
        raise shared
    chosen, line, done = shared
    if chosen is not None and not done:
        ckpt = chosen.ckpt if chosen.ckpt is not None else load_checkpoint(chosen.path)
        config = config.with_checkpoint(chosen.path, ckpt)
    return config, line, done


def _portable(decision: Any) -> Any:
    """The decision without the loaded checkpoint (each rank loads its own copy)."""
    if decision is None or isinstance(decision, ConfigError | RunError) or decision[0] is None:
        return decision
    chosen, line, done = decision
    return Candidate(chosen.path, None, chosen.mtime), line, done
