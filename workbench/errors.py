"""Domain errors. Every message is written for the user: what is wrong, where, and what to do.

Pages catch :class:`WorkbenchError` and show ``st.error(err.message)``; the CLI maps it to exit code 2
(bad input) or 1 (:class:`BackendError`: the backend itself failed).
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class. ``message`` is user-facing; ``hint`` says what to do about it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} {hint}")

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message if not self.hint else f"{self.message} {self.hint}"


class ModelError(WorkbenchError):
    """The ONNX file (or archive) cannot be used: empty, not ONNX, truncated, unsafe external data, ..."""


class ArchiveError(WorkbenchError):
    """An uploaded archive is unsafe or malformed (path escapes, symlinks, bombs)."""


class SpecError(WorkbenchError):
    """A build spec is invalid: profile shapes, precision not supported by the backend, knobs out of range."""


class DataError(WorkbenchError):
    """Calibration or comparison data do not match the model (names, shapes, dtypes, NaN/Inf, pickles)."""


class BackendUnavailable(WorkbenchError):
    """The requested backend (TensorRT, TensorRT-RTX, a GPU) is not installed or not usable here."""


class BackendError(WorkbenchError):
    """The backend ran and failed (parser error on a node, builder error). Carries the backend's own words."""

    exit_code = 1


class JobError(WorkbenchError):
    """A job id is unknown, or a job is in a state that does not allow the action."""
