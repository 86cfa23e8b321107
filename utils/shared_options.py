"""The command-line options train.py and test.py both take, defined once (standard library
only: they are read before torch is imported)."""

from __future__ import annotations

import argparse
import os

TRUST_RULE = ("by default a config read from a file is data: a dotted type must be a class of "
              "the kind its key needs (an nn.Module for arch and loss, an Optimizer, ...)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--device", help="GPUs to use, like CUDA_VISIBLE_DEVICES (e.g. 0,1)")


def add_trust_option(parser: argparse.ArgumentParser, allows: str, after: str = "") -> None:
    """--trust-config: `allows` says whose config it trusts, `after` what else it reaches."""
    parser.add_argument("--trust-config", action="store_true",
                        help=f"{allows} name any class or function by import path; {TRUST_RULE}"
                             f"{after}")


def select_devices(args: argparse.Namespace) -> None:
    """-d: the GPUs this process sees, set before torch is imported."""
    if args.device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.device
