"""How long-running core functions report back, without knowing who listens.

Core functions (build, calibrate, compare) take a :class:`Reporter`. The job worker passes one that
writes to the job folder; tests and the CLI pass :class:`NullReporter` or :class:`LoggingReporter`.
"""

from __future__ import annotations

import logging
from typing import Protocol


class Cancelled(Exception):
    """Raised inside a core function when its reporter says the user cancelled."""


class Reporter(Protocol):
    def log(self, message: str, level: int = logging.INFO) -> None:
        """One line (or block) of log text."""

    def progress(self, fraction: float, phase: str) -> None:
        """Overall progress in [0, 1] and the name of the current phase."""

    def cancelled(self) -> bool:
        """True once the user asked to cancel; long loops check it and raise :class:`Cancelled`."""


class NullReporter:
    def log(self, message: str, level: int = logging.INFO) -> None:
        pass

    def progress(self, fraction: float, phase: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


class LoggingReporter(NullReporter):
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("workbench")

    def log(self, message: str, level: int = logging.INFO) -> None:
        self._logger.log(level, message)

    def progress(self, fraction: float, phase: str) -> None:
        self._logger.debug("%3.0f%% %s", fraction * 100, phase)


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (a job worker's: what the job needed); 0 where unknown."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    except (ImportError, OSError):
        return 0.0


def check_cancel(reporter: Reporter) -> None:
    if reporter.cancelled():
        raise Cancelled("Cancelled by the user.")


class SubReporter:
    """A step of a longer task: maps the step's 0..1 progress onto [lo, hi] of the parent's, optionally
    prefixing its log lines and phases (e.g. with the calibrator being scored)."""

    def __init__(self, parent: Reporter, lo: float, hi: float, prefix: str = "") -> None:
        self.parent, self.lo, self.hi, self.prefix = parent, lo, hi, prefix

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.parent.log(f"[{self.prefix}] {message}" if self.prefix else message, level)

    def progress(self, fraction: float, phase: str) -> None:
        self.parent.progress(self.lo + (self.hi - self.lo) * fraction, f"{self.prefix}: {phase}" if self.prefix
                             else phase)

    def cancelled(self) -> bool:
        return self.parent.cancelled()
