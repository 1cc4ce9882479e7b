"""The backend's own log lines: recorded (not printed) so they go to the job log, and quoted in a failure message
where they explain it.

TensorRT reports a failed build as an engine that is ``None`` (Polygraphy: "Invalid Engine. Please ensure the engine
was built correctly"); the reason is only in the lines it logged at ERROR severity. :class:`Recorder` is a TensorRT
logger that keeps those lines (and passes everything on to the logger it wraps, so the job log stays complete);
:func:`quoted_errors` picks the ones worth quoting. Some backend code writes straight to the process's stdout/stderr
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


def recorder(trt: Any, forward: Any | None = None) -> Any:
    """A TensorRT logger that records what the backend logs (``.errors``, ``.lines``) and passes every message on
    to ``forward`` (another TensorRT logger, e.g. Polygraphy's), if given."""

    class Recorder(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.lines: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            try:
                if severity in (trt.Logger.INTERNAL_ERROR, trt.Logger.ERROR):
                    self.errors.append(msg)
                    self.lines.append(f"[E] {msg}")
                elif severity == trt.Logger.WARNING:
                    self.lines.append(f"[W] {msg}")
                if forward is not None:
                    forward.log(severity, msg)
            except Exception:  # log() must not throw into the backend
                pass

    return Recorder()


def record_polygraphy_builds(trt: Any) -> Any:
    """Make Polygraphy's TensorRT loaders (network, builder) log through a :func:`recorder` wrapping Polygraphy's
    own logger, for this process (a build worker builds once). Returns the recorder."""
    from polygraphy.backend.trt import util as trt_util

    current = trt_util.get_trt_logger()
    if hasattr(current, "errors"):
        return current
    rec = recorder(trt, forward=current)
    trt_util.TRT_LOGGER = rec  # get_trt_logger() hands out this module-level logger to every loader
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
