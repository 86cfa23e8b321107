"""ConfigParser: the run's resolved config, its folders, and builders by name.

It follows the pytorch-template's ConfigParser (config.init_obj), with the
config validated up front and the three ways to start a run:
  -c FILE            a new run
  -r CHECKPOINT      resume exactly, config taken from the checkpoint
  -c FILE -r CKPT    fine-tune: the file's config, the checkpoint's weights
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from utils.config import (
    INJECTED_LOADER_ARGS,
    apply_overrides,
    command_overrides,
    component_spec,
    load_config_file,
    save_config,
    scheduler_bases,
    torch_class,
    validate_config,
)
from utils.errors import ConfigError


def _args_of(section: dict) -> dict:
    return dict(section.get("args") or {})


def _build(key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a configured constructor; a bad value the constructor rejects names its key."""
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}: {e}") from None


class ConfigParser:
    def __init__(self, config: dict, source: str, resume: Path | None = None,
                 checkpoint: dict | None = None, finetune: bool = False,
                 warnings: list[str] | None = None):
        self.config = config
        self.source = source
        self.resume = resume
        self.checkpoint = checkpoint
        self.finetune = finetune
        self.warnings = warnings or []
        self.save_dir: Path | None = None
        self.log_dir: Path | None = None
        self.run_id: str | None = None
        self.reused_run = False
        self.dry_run = False

    # ------------------------------------------------------------ loading

    @classmethod
    def from_args(cls, args: Any) -> ConfigParser:
        """Read -c/-r/overrides, validate, and return the parser (nothing is written)."""
        from utils.checkpoint import load_checkpoint

        overrides = command_overrides(args)
        checkpoint = None
        resume = Path(args.resume) if getattr(args, "resume", None) else None
        if resume is not None:
            checkpoint = load_checkpoint(resume)
        if getattr(args, "config", None):
            source = str(args.config)
            raw = load_config_file(args.config)
        elif checkpoint is not None:
            source = str(resume)
            raw = checkpoint["config"]
        else:
            raise ConfigError("no config given: use -c CONFIG_FILE, or -r CHECKPOINT to resume")
        raw = apply_overrides(raw, overrides)
        try:
            config, warnings = validate_config(raw)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        return cls(config, source, resume, checkpoint, finetune=bool(args.config and resume),
                   warnings=warnings)

    def __getitem__(self, key: str) -> Any:
        return self.config[key]

    @property
    def trainer(self) -> dict:
        return self.config["trainer"]

    # ------------------------------------------------------------ folders

    def _checkpoint_run(self) -> Path | None:
        """The resumed checkpoint's run folder, when output may go on there.

        Only for an exact resume from a checkpoint inside its own run folder
        that holds nothing newer than it: resuming from an earlier checkpoint
        of a run that went on gets a new folder, so no run's files are lost.
        """
        if self.resume is None or self.finetune:
            return None
        run_dir = self.resume.parent
        save_dir = Path(self.trainer["save_dir"]).resolve()
        if run_dir.resolve().parent != save_dir / "models" / self.config["name"]:
            return None
        epoch = self.checkpoint["epoch"]
        for p in run_dir.glob("checkpoint-epoch*.pth"):
            m = re.fullmatch(r"checkpoint-epoch(\d+)\.pth", p.name)
            if m and int(m.group(1)) > epoch:
                return None
        return run_dir

    def make_run_dirs(self) -> None:
        """Create (or reuse, on resume) the run's model and log folders; save config.json."""
        root = Path(self.trainer["save_dir"])
        name = self.config["name"]
        reuse = self._checkpoint_run()
        if reuse is not None:
            self.run_id, self.save_dir = reuse.name, reuse
            self.reused_run = True
            for stale in reuse.glob(".*.tmp"):  # left by a save that was killed mid-write
                stale.unlink(missing_ok=True)
        else:
            stamp = datetime.now().strftime("%m%d_%H%M%S")
            while True:  # unique even for runs started in the same second
                self.run_id = f"{stamp}_{os.urandom(3).hex()}"
                self.save_dir = root / "models" / name / self.run_id
                try:
                    self.save_dir.mkdir(parents=True, exist_ok=False)
                    break
                except FileExistsError:
                    continue
        self.log_dir = root / "log" / name / self.run_id
        self.log_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.save_dir / "config.json")

    # ------------------------------------------------------------ builders

    def build_data_loader(self, training: bool = True):
        from utils.registry import DATA_LOADERS

        section = self.config["data_loader"]
        cls = DATA_LOADERS.get(section["type"], "data_loader.type")
        args = _args_of(section)
        assert not set(args) & set(INJECTED_LOADER_ARGS)
        return _build("data_loader.args", cls, **args, training=training, seed=self.config["seed"])

    def build_model(self):
        from utils.registry import MODELS

        section = self.config["arch"]
        return _build("arch.args", MODELS.get(section["type"], "arch.type"), **_args_of(section))

    def build_criterion(self):
        import functools

        from utils.registry import LOSSES

        name, args = component_spec(self.config["loss"], "loss")
        loss = LOSSES.get(name, "loss")
        if isinstance(loss, type):
            return _build("loss.args", loss, **args)
        return functools.partial(loss, **args) if args else loss

    def build_metrics(self) -> dict:
        """{name: fn(output, target) -> float} in config order."""
        import functools

        from utils.registry import METRICS

        metrics = {}
        for i, spec in enumerate(self.config["metrics"]):
            name, args = component_spec(spec, f"metrics[{i}]")
            fn = METRICS.get(name, f"metrics[{i}]")
            metrics[name] = functools.partial(fn, **args) if args else fn
        return metrics

    def build_optimizer(self, params):
        import torch

        section = self.config["optimizer"]
        cls = torch_class(torch.optim, section["type"], torch.optim.Optimizer, "optimizer.type",
                          "optimizer")
        return _build("optimizer.args", cls, params, **_args_of(section))

    def build_scheduler(self, optimizer):
        import torch

        section = self.config.get("lr_scheduler")
        if not section:
            return None
        cls = torch_class(torch.optim.lr_scheduler, section["type"], scheduler_bases(),
                          "lr_scheduler.type", "lr_scheduler")
        return _build("lr_scheduler.args", cls, optimizer, **_args_of(section))


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict:
    """The validated config of a file plus overrides (for scripts and tests)."""
    config, _ = validate_config(apply_overrides(load_config_file(path), overrides or []))
    return config
