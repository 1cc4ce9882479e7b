"""CLI subcommands, registered lazily: a subcommand's module (and what it imports: ONNX, ONNX Runtime, numpy …)
is imported only when that subcommand is parsed or its ``--help`` is shown, so ``trt-workbench`` starts fast.

A module that fails to import is not skipped: its subcommand is still listed, and running it says why it is
unavailable (exit 1), like Polygraphy's ``MissingTool``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from .errors import WorkbenchError

# (subcommand, module with ``register(sub)`` adding it, one-line help for ``trt-workbench --help``)
SUBCOMMAND_MODULES: tuple[tuple[str, str, str], ...] = (
    ("quantize", "cli_quantize", "calibrate and write a Q/DQ ONNX model (INT8 or FP8)"),
    ("layers", "cli_layers", "engine layers and fusion report of a build (job, layers.json or plan)"),
    ("compare", "cli_compare",
     "compare an engine, FP16 or Q/DQ model against ONNX Runtime running the FP32 model (Polygraphy)"),
    ("map-data", "cli_map",
     "rename the arrays of an .npz to the model's input names (and 'label'), for --calib-data / --data"),
)


class CommandUnavailable(WorkbenchError):
    """A subcommand's module could not be imported (a broken or incomplete installation)."""

    exit_code = 1


class LazyParser(argparse.ArgumentParser):
    """A subcommand's parser whose arguments are added by ``populate`` the first time it is used."""

    def __init__(self, *args: Any, populate: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def fill(self) -> None:
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self.fill()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.fill()
        return super().format_help()

    def format_usage(self) -> str:
        self.fill()
        return super().format_usage()


class _Into:
    """What a module's ``register(sub)`` sees: ``add_parser`` hands back the lazy parser being filled."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._parser = parser

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        for what in ("description", "epilog", "formatter_class"):  # how the module wants its --help laid out
            if kwargs.get(what):
                setattr(self._parser, what, kwargs[what])
        return self._parser


def _from_module(command: str, module: str) -> Callable[[argparse.ArgumentParser], None]:
    def populate(parser: argparse.ArgumentParser) -> None:
        try:
            register = importlib.import_module(f"{__package__}.{module}").register
        except Exception as err:  # ImportError, or a module broken at import time: report it when run
            why = f"{type(err).__name__}: {err}"
            parser.add_argument("ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

            def unavailable(args: argparse.Namespace) -> int:
                raise CommandUnavailable(f"'trt-workbench {command}' is unavailable in this installation ({why}).",
                                         "Reinstall the workbench with its dependencies (pip install "
                                         "trt-workbench), then run it again.")

            parser.set_defaults(func=unavailable)
            return
        register(_Into(parser))

    return populate


def register(sub: argparse._SubParsersAction) -> None:
    for command, module, help_text in SUBCOMMAND_MODULES:
        sub.add_parser(command, help=help_text, populate=_from_module(command, module))
