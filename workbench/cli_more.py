"""CLI subcommands for the reports (layers, quantize, compare); registered by :mod:`workbench.cli`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds the subcommands whose core modules are present."""
    return None
