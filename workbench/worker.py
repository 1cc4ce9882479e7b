"""Worker process entry: ``python -m workbench.worker JOB_DIR``. Never imports Streamlit.

Reads ``job.json``, runs the job's kind, writes progress and the final state. stdout/stderr are the job log
(the parent opened it), so everything the backend prints lands there too.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .errors import WorkbenchError
from .jobs import (
    CANCEL_FILE,
    CANCELLED,
    ENV_PARENT_JOB,
    FAILED,
    JOB_FILE,
    PROGRESS_FILE,
    SUCCEEDED,
    Job,
    _write_json,
)
from .progress import Cancelled

_PREFIX = {logging.DEBUG: "[V]", logging.INFO: "[I]", logging.WARNING: "[W]", logging.ERROR: "[E]",
           logging.CRITICAL: "[E]"}


class JobReporter:
    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self._last = (-1.0, "")

    def log(self, message: str, level: int = logging.INFO) -> None:
        prefix = _PREFIX.get(level, "[I]")
        sys.stdout.write(f"{prefix} [workbench] {message}\n")
        sys.stdout.flush()

    def progress(self, fraction: float, phase: str) -> None:
        fraction = max(0.0, min(1.0, float(fraction)))
        if (round(fraction, 3), phase) == self._last:
            return
        self._last = (round(fraction, 3), phase)
        _write_json(self.job_dir / PROGRESS_FILE, {"fraction": fraction, "phase": phase, "time": time.time()})

    def cancelled(self) -> bool:
        return (self.job_dir / CANCEL_FILE).exists()


def run_job(job_dir: Path) -> int:
    job = Job.from_dict(json.loads((job_dir / JOB_FILE).read_text()))
    os.environ[ENV_PARENT_JOB] = job.id  # jobs this one submits (a demo's builds) are cancelled with it
    if job.timeout_s:  # the kernel ends this process at the limit, whatever the backend is doing (no handler)
        signal.alarm(job.timeout_s)
    reporter = JobReporter(job_dir)
    reporter.log(f"Worker {os.getpid()} started {job.kind} job {job.id}: {job.title}")
    reporter.progress(0.0, "Starting")
    status, error, hint, result, code = SUCCEEDED, "", "", {}, 0
    try:
        result = _dispatch(job, job_dir, reporter)
        signal.alarm(0)
    except Cancelled as err:
        status, error = CANCELLED, str(err) or "Cancelled by the user."
    except WorkbenchError as err:
        status, error, hint, code = FAILED, err.message, err.hint or "", err.exit_code
    except MemoryError:
        status, error, hint, code = FAILED, "The worker ran out of memory.", "Lower the workspace limit or max shapes.", 1
    except ImportError as err:
        traceback.print_exc()
        status, error, code = FAILED, f"A module the job needs is missing: {err}", 1
        hint = "Reinstall the workbench (pip install -e .)."
    except Exception as err:  # a bug or an unexpected backend failure: keep the traceback in the log
        traceback.print_exc()
        status, error, code = FAILED, f"Unexpected error: {type(err).__name__}: {err}", 1
        hint = "The traceback is in the job log."
    if status == CANCELLED and reporter.cancelled():
        reporter.log("Cancelled by the user.", logging.WARNING)
    elif status == FAILED:
        reporter.log(error + (f" {hint}" if hint else ""), logging.ERROR)
    else:
        reporter.log("Finished.")
    sys.stdout.flush()
    if status != SUCCEEDED:
        _cancel_children(job_dir, job.id)
    job = Job.from_dict(json.loads((job_dir / JOB_FILE).read_text()))
    job.status, job.error, job.hint, job.result, job.finished = status, error, hint, result, time.time()
    job.exit_code = code
    job.progress = 1.0 if status == SUCCEEDED else job.progress
    _write_json(job_dir / JOB_FILE, job.to_dict())
    _start_next(job_dir)
    return 0


def _dispatch(job: Job, job_dir: Path, reporter: JobReporter) -> dict[str, Any]:
    from . import tasks

    runner = tasks.TASKS.get(job.kind)
    if runner is None:
        raise WorkbenchError(f"Unknown job kind '{job.kind}'.")
    return runner(job, job_dir, reporter)


def _cancel_children(job_dir: Path, job_id: str) -> None:
    """A job that failed or was cancelled cancels the jobs it submitted and that have not finished."""
    try:
        from .jobs import JobStore
        from .workspace import Workspace

        JobStore(Workspace.at(job_dir.parent.parent)).cancel_children(job_id)
    except Exception:
        traceback.print_exc()


def _start_next(job_dir: Path) -> None:
    """Let queued jobs start even when nobody is polling."""
    try:
        from .jobs import JobStore
        from .workspace import Workspace

        JobStore(Workspace.at(job_dir.parent.parent)).schedule()
    except Exception:  # never let scheduling failures turn a finished job into a failed one
        traceback.print_exc()


def prefer_oom_kill() -> None:
    """Ask the kernel to kill this worker (and what it starts), not the Streamlit server, when memory runs out.

    Linux only, best effort: raising one's own ``oom_score_adj`` needs no privilege; elsewhere nothing happens."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m workbench.worker JOB_DIR\n")
        return 2
    prefer_oom_kill()
    logging.basicConfig(level=logging.INFO, format="[I] [%(name)s] %(message)s", stream=sys.stdout)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return run_job(Path(argv[0]).resolve())


if __name__ == "__main__":
    sys.exit(main())
