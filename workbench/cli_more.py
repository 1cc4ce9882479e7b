"""CLI subcommands beyond inspect/build, one module each; registered by :mod:`workbench.cli`."""

from __future__ import annotations

import argparse
import importlib

# Each module has ``register(sub)`` adding its subcommand.
SUBCOMMAND_MODULES = ("cli_quantize", "cli_layers", "cli_compare", "cli_map")


def register(sub: argparse._SubParsersAction) -> None:
    for name in SUBCOMMAND_MODULES:
        module = f"{__package__}.{name}"
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real import error inside the module: don't hide it
                raise
