"""``trt-workbench map-data``: an .npz whose arrays have other names than the model's inputs, mapped."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map-data",
        help="rename the arrays of an .npz to the model's input names (and 'label'), for --calib-data / --data",
    )
    p.add_argument("data", type=Path, help="the .npz to map (never unpickled)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the mapped .npz to write")
    p.add_argument("--map", dest="mapping", nargs="+", required=True, metavar="TARGET=ARRAY",
                   help="e.g. --map input=x label=y (TARGET: a model input, or 'label' for top-1)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .errors import DataError
    from .npz_mapping import parse_mapping, remap_npz

    if not args.data.is_file():
        raise DataError(f"'{args.data}' does not exist.", "Check the path.")
    mapping = parse_mapping(args.mapping)
    out = remap_npz(args.data, args.output, mapping)
    print(f"{out}: " + ", ".join(f"{t} <- {s}" for t, s in mapping.items()), file=sys.stderr)
    return 0
