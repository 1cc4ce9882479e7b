"""The bundled sample models: what each one is, where its files are, and which profiles suit it.

The models, their data files and ``catalog.json`` are made by ``python sample_models/generate.py``
(see ``sample_models/README.md``). This module only reads the catalog; it never imports ONNX.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError

if TYPE_CHECKING:
    from .spec import Profile

log = logging.getLogger(__name__)

ENV_VAR = "WORKBENCH_SAMPLES"
CATALOG = "catalog.json"
REGENERATE = "Regenerate them with `python sample_models/generate.py` from the repository root."


@dataclass(frozen=True)
class Sample:
    """One catalog entry with its paths resolved against the samples folder."""

    name: str
    path: Path
    title: str
    description: str
    shows: tuple[str, ...]
    calibration_data: Path | None
    test_data: Path | None
    # Each profile is {"min": {input: shape}, "opt": {...}, "max": {...}}, shapes as lists of ints.
    suggested_profiles: tuple[dict, ...]

    def profiles(self) -> tuple[Profile, ...]:
        """The suggested profiles as :class:`workbench.spec.Profile` objects, ready for a ``BuildSpec``."""
        from .spec import Profile

        return tuple(
            Profile.from_dict({name: {k: p[k][name] for k in ("min", "opt", "max")} for name in p["min"]})
            for p in self.suggested_profiles
        )


def samples_dir() -> Path:
    """``$WORKBENCH_SAMPLES`` if set, else ``sample_models/`` next to the ``workbench`` package."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "sample_models"


def list_samples() -> list[Sample]:
    """Every sample in the catalog, in catalog order."""
    folder = samples_dir()
    catalog = folder / CATALOG
    if not catalog.is_file():
        raise ModelError(
            f"No sample catalog at {catalog}.",
            f"Set {ENV_VAR} to the folder that holds {CATALOG}, or run from a checkout of the repository. "
            + REGENERATE,
        )
    try:
        entries = json.loads(catalog.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"The sample catalog {catalog} cannot be read ({err}).", REGENERATE) from err
    if not isinstance(entries, list):
        raise ModelError(f"The sample catalog {catalog} must hold a JSON list of entries.", REGENERATE)
    return [_sample(folder, catalog, i, e) for i, e in enumerate(entries)]


def get_sample(name: str) -> Sample:
    """The sample called ``name``; :class:`ModelError` listing the valid names if there is none."""
    samples = list_samples()
    for sample in samples:
        if sample.name == name:
            return sample
    valid = ", ".join(s.name for s in samples) or "(none)"
    raise ModelError(f"There is no sample model called '{name}'.", f"Choose one of: {valid}.")


def _sample(folder: Path, catalog: Path, index: int, entry: Any) -> Sample:
    where = f"entry {index} of {catalog}"
    if not isinstance(entry, Mapping):
        raise ModelError(f"The sample catalog is malformed: {where} is not an object.", REGENERATE)
    try:
        name = str(entry["name"])
        data = entry.get("data") or {}
        profiles = tuple(dict(p) for p in entry.get("suggested_profiles", ()))
        return Sample(
            name=name,
            path=folder / str(entry["file"]),
            title=str(entry.get("title", name)),
            description=str(entry.get("description", "")),
            shows=tuple(str(s) for s in entry.get("shows", ())),
            calibration_data=folder / data["calibration"] if data.get("calibration") else None,
            test_data=folder / data["test"] if data.get("test") else None,
            suggested_profiles=profiles,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ModelError(f"The sample catalog is malformed: {where} ({err!r}).", REGENERATE) from err


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sample_digest(sample: Sample) -> str:
    """The content digest the workspace stores the sample's model under (kept per file size and mtime)."""
    from .model import _hash_model_file

    st = sample.path.stat()
    key = (str(sample.path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _hash_model_file(sample.path)
    return _DIGESTS[key]


def sample_for(model: Any) -> Sample | None:
    """The bundled sample whose model *is* ``model`` (a ModelRef, or its digest), by content digest: a user's own
    model that happens to share a sample's file name is not that sample (its data would not fit)."""
    digest = model if isinstance(model, str) else getattr(model, "digest", "")
    try:
        samples = list_samples()
    except ModelError:
        return None
    for sample in samples:
        try:
            if sample.path.is_file() and sample_digest(sample) == digest:
                return sample
        except OSError:
            continue
    return None


def sample_at(model_path: Path) -> Sample | None:
    """:func:`sample_for` the model file at ``model_path``: a workspace copy (stored under its digest) or a file
    elsewhere (hashed here when small: samples are)."""
    import re

    folder = model_path.parent.name
    if re.fullmatch(r"[0-9a-f]{64}", folder) and (model_path.parent / "meta.json").is_file():
        return sample_for(folder)
    try:
        if model_path.stat().st_size > 64 << 20:
            return None
        from .model import _hash_model_file

        return sample_for(_hash_model_file(model_path))
    except OSError:
        return None
