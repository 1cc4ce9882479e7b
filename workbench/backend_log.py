"""The backend's own log lines: recorded (not printed) so they go to the job log, and quoted in a failure message
where they explain it.

TensorRT reports a failed build as an engine that is ``None`` (Polygraphy: "Invalid Engine. Please ensure the engine
was built correctly"); the reason is only in the lines it logged at ERROR severity. :func:`records` keeps those
lines (everything still goes on to Polygraphy's logger, so the job log stays complete); :func:`quoted_errors`
picks the ones worth quoting. Some backend code writes straight to the process's stdout/stderr
file descriptors, past any logger: :func:`captured_output` catches that too (the CLI's one-shot parser check).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

# Lines the backend logs as errors that do not explain any failure (see DESIGN.md: a TensorRT-RTX build on a
# machine without a CUDA driver logs this and still succeeds).
HARMLESS = ("cudaError 35", "CUDA driver version is insufficient")
_MAX_LINE = 600


def is_harmless(line: str) -> bool:
    return any(h in line for h in HARMLESS)


def without_harmless(text: str) -> str:
    """``text`` without its harmless lines (a parser error's description carries the CUDA driver line too)."""
    return "\n".join(ln for ln in text.splitlines() if not is_harmless(ln)).strip()


def quoted_errors(lines: Sequence[str], limit: int = 4) -> list[str]:
    """The error lines worth quoting: harmless ones out, duplicates once, each cut to a readable length."""
    out: list[str] = []
    for line in lines:
        line = " ".join(line.split())
        if not line or is_harmless(line) or line in out:
            continue
        out.append(line if len(line) <= _MAX_LINE else line[:_MAX_LINE] + " …")
        if len(out) == limit:
            break
    return out


def quote(lines: Sequence[str]) -> str:
    """Error lines as they go into a message: ``[E] …`` each on its own line."""
    return "\n".join(f"[E] {ln}" for ln in lines)


class Records:
    """What the backend logged in this process since :func:`records` installed the recording: ``lines``
    ("[E] …", "[W] …") and ``errors`` (the bare error messages)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []


def records(trt: Any) -> Records:
    """Record everything the backend logs in this process, and keep passing it to Polygraphy's TensorRT logger.

    TensorRT has one process-wide logger (the first one it was given: Polygraphy's, registered when Polygraphy
    imports the backend) besides the one each builder/parser gets, and builder errors arrive through either. So
    the recording goes into that one Polygraphy logger object, which every loader uses, rather than beside it."""
    from polygraphy.backend.trt import util as trt_util

    logger = trt_util.get_trt_logger()
    rec = getattr(logger, "_workbench_records", None)
    if rec is not None:
        return rec
    rec = Records()
    passed_on = type(logger).log

    def log(severity: Any, msg: str) -> None:
        try:
            if severity in (trt.Logger.INTERNAL_ERROR, trt.Logger.ERROR):
                rec.errors.append(msg)
                rec.lines.append(f"[E] {msg}")
            elif severity == trt.Logger.WARNING:
                rec.lines.append(f"[W] {msg}")
        except Exception:  # log() must not throw into the backend
            pass
        passed_on(logger, severity, msg)

    logger.log = log  # the backend calls the instance's log(): this one records, then Polygraphy's prints
    logger._workbench_records = rec
    return rec


class Captured:
    text = ""


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Redirect this process's stdout and stderr *file descriptors* (what native code writes, past Python) into a
    buffer for the duration; ``.text`` holds it afterwards."""
    result = Captured()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    try:
        fds = [sys.stdout.fileno(), sys.stderr.fileno()]
    except (AttributeError, OSError, ValueError):  # no real descriptors (a test runner's capture): nothing to do
        yield result
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        for fd in fds:
            saved.append(os.dup(fd))
            os.dup2(tmp.fileno(), fd)
        try:
            yield result
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, old in zip(fds, saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
            tmp.seek(0)
            result.text = tmp.read().decode("utf-8", "replace")
