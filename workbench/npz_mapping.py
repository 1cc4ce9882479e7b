"""Data whose arrays are named otherwise than the model's inputs (an .npz of ``x`` and ``y``): map them — model
input <- array, ``label`` <- array — into a new .npz that the workbench reads like any other. Never unpickled."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import DataError

LABEL = "label"


def array_names(path: str | Path) -> list[str]:
    """The arrays an .npz holds (names only: nothing is read)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files)
    except Exception as err:
        raise DataError(f"'{path.name}' could not be read as .npz ({err}).", "Write it with numpy.savez.") from err


def parse_mapping(items: Sequence[str]) -> dict[str, str]:
    """``["input=x", "label=y"]`` -> ``{"input": "x", "label": "y"}`` (target = array of the file)."""
    mapping: dict[str, str] = {}
    for item in items:
        target, sep, source = item.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise DataError(f"'{item}' is not a mapping.", "Write MODEL_INPUT=ARRAY (or label=ARRAY), e.g. input=x.")
        mapping[target.strip()] = source.strip()
    return mapping


def mapped_path(src: str | Path, mapping: Mapping[str, str]) -> Path:
    """Where :func:`remap_npz` puts the mapped copy of ``src`` in the same folder (one file per mapping)."""
    src = Path(src)
    tag = hashlib.sha256(repr(sorted(mapping.items())).encode()).hexdigest()[:8]
    return src.with_name(f"{src.stem}.mapped-{tag}.npz")


def remap_npz(src: str | Path, dst: str | Path, mapping: Mapping[str, str], name: str | None = None) -> Path:
    """Write ``dst`` holding ``mapping``'s arrays of ``src`` under their new names (only those). ``name``: the
    file's name as the user knows it, for messages. Same number of samples (first axis) everywhere."""
    src, dst = Path(src), Path(dst)
    name = name or src.name
    names = array_names(src)
    missing = [a for a in mapping.values() if a not in names]
    if missing:
        raise DataError(f"'{name}' has no array {', '.join(repr(a) for a in missing)}; it holds "
                        f"{', '.join(names) or 'none'}.", "Map each model input to one of the arrays it holds.")
    arrays: dict[str, np.ndarray] = {}
    with np.load(src, allow_pickle=False) as npz:
        for target, source in mapping.items():
            arrays[target] = np.asarray(npz[source])
    counts = {t: (a.shape[0] if a.ndim else None) for t, a in arrays.items()}
    if len(set(counts.values())) > 1 or None in counts.values():
        said = ", ".join(f"'{mapping[t]}' → {t}: {c if c is not None else 'a scalar'}" for t, c in counts.items())
        raise DataError(f"The arrays mapped from '{name}' hold different numbers of samples ({said}).",
                        "Map arrays whose first axis is the sample axis, the same length for all.")
    part = dst.with_name(dst.name + ".part")
    with open(part, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle among the kwargs
    part.replace(dst)
    return dst
