"""Inputs for a comparison: the user's data (the same ``.npz`` loader as calibration, with an optional ``label``
array for the task metric) or generated data, labelled as such, cut into the batches the runners are fed."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..calibration_data import CalibrationData, load_npz, model_inputs, random_data
from ..errors import DataError

log = logging.getLogger(__name__)

LABEL_KEY = "label"


def load_data(
    model_path: str | Path,
    data_path: str | Path | None = None,
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
    n_random: int = 32,
    seed: int = 0,
) -> CalibrationData:
    """Data for ``model_path``: the ``.npz`` at ``data_path`` (checked against the model's inputs; a ``label``
    array is kept for the task metric), else random samples (``shapes``: per-sample shape of each dynamic input)."""
    inputs = model_inputs(Path(model_path))
    if data_path:
        return load_npz(Path(data_path), inputs, extra_keys=(LABEL_KEY,))
    return random_data(inputs, shapes, n=n_random, seed=seed)


def feeds(
    data: CalibrationData, model_path: str | Path, max_samples: int, batch_size: int
) -> tuple[list[dict[str, np.ndarray]], int, list[str]]:
    """(feed dicts, samples used, notes). A model with a fixed batch size gets batches of exactly that size."""
    n = min(data.n_samples, max_samples)
    notes: list[str] = []
    if n < data.n_samples:
        notes.append(f"Compared the first {n} of {data.n_samples} samples.")
    static = next((i.static_batch for i in model_inputs(Path(model_path)) if i.static_batch), None)
    size = static or min(batch_size, n)
    if static:
        if n < static:
            raise DataError(
                f"The model takes batches of exactly {static} samples, but only {n} are available.",
                f"Give at least {static} samples (or raise the sample limit).",
            )
        if n % static:
            notes.append(
                f"The model's batch size is fixed at {static}: the last {n % static} sample(s) are left out."
            )
            n -= n % static
    out = []
    for start in range(0, n, size):
        stop = min(start + size, n)
        out.append({k: np.ascontiguousarray(v[start:stop]) for k, v in data.arrays.items()})
    return out, n, notes


def labels_for(data: CalibrationData, n: int) -> np.ndarray | None:
    labels = data.extras.get(LABEL_KEY)
    return None if labels is None else np.asarray(labels)[:n]
