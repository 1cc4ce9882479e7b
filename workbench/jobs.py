"""Background jobs (builds, calibrations, comparisons): submit, poll, cancel, list — state on disk.

Each job is a folder ``jobs/<id>/`` in the workspace: ``job.json`` (state), ``job.log`` (everything the worker and
the backend print, Polygraphy-style ``[I]/[W]/[E]/[V]/[X]`` prefixes), ``progress.json``, a ``cancel`` flag file,
and the artifacts the job writes (see :mod:`workbench.build` for names). Workers are separate OS processes
(``python -m workbench.worker JOB_DIR``) in their own session, so a crashing build cannot take the server down,
and page reruns or a server restart do not lose jobs. Ids are unguessable (128 random bits).

The interface (:class:`JobStore`) is deliberately small so that another executor could replace the local one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import JobError
from .workspace import Workspace

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
JOB_FILE, LOG_FILE, PROGRESS_FILE, CANCEL_FILE = "job.json", "job.log", "progress.json", "cancel"
CANCEL_GRACE_S = 5.0
# Outside the bound on heavy jobs: quick checks, and orchestrators that wait for heavy jobs. Parser checks have their
# own small bound (WORKBENCH_MAX_PARSE_JOBS, default 2): N sessions opening models must not start N parsers at once.
LIGHT_KINDS = ("parse", "demo")
PARSE_KIND = "parse"
_ID = re.compile(r"[A-Za-z0-9_-]{22}")
# Wall-clock limit per job (seconds; 0: none): one build of a huge graph must not hold the single build slot
# (WORKBENCH_MAX_JOBS=1) for everyone for hours. Set by WORKBENCH_JOB_TIMEOUT or on the Settings page (kept in
# the workspace's settings.json, which wins). Demos only wait for the jobs they submit, which have their own.
ENV_JOB_TIMEOUT = "WORKBENCH_JOB_TIMEOUT"
DEFAULT_JOB_TIMEOUT_S = 900
SETTINGS_FILE = "settings.json"
UNTIMED_KINDS = ("demo",)
ENV_PARENT_JOB = "WORKBENCH_PARENT_JOB"  # set in a worker: the jobs it submits are its children


def _new_job_id() -> str:
    """128 random bits, url-safe, never starting with '-': ids are typed on command lines, where one would read as an option."""
    while (job_id := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return job_id
_POPENS: dict[int, subprocess.Popen[bytes]] = {}  # children started by this process, reaped on refresh


@dataclass(frozen=True)
class LogTail:
    text: str  # whole lines from the end of the log
    cut: bool  # earlier lines were left out
    size: int  # the whole log, in bytes


@dataclass
class Job:
    id: str
    kind: str
    title: str
    status: str
    created: float
    payload: dict[str, Any]
    model_digest: str = ""
    model_name: str = ""
    started: float | None = None
    finished: float | None = None
    pid: int | None = None
    pid_start: str = ""
    owner_pid: int | None = None  # the server (or CLI) process that started the worker, to tell a restart apart
    owner_start: str = ""
    error: str = ""
    hint: str = ""
    exit_code: int = 0  # for the CLI: 2 bad input, 1 backend failure
    result: dict[str, Any] = field(default_factory=dict)
    progress: float = 0.0
    phase: str = ""
    timeout_s: int = 0  # wall-clock limit of this job (0: none), fixed when it was submitted
    parent: str = ""  # the job (a demo) that submitted this one: cancelling that cancels this

    @property
    def finished_ok(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUNNING)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _proc_start(pid: int) -> str:
    """The process start time from /proc (guards against pid reuse); empty when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # zombie: finished, not yet reaped
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return ""
    return fields[19]


def _owner_alive(job: Job) -> bool:
    """Whether the process that started the job's worker still runs (False for jobs from before owners were kept)."""
    return bool(job.owner_pid and job.owner_start) and _proc_start(job.owner_pid or 0) == job.owner_start


class JobStore:
    def __init__(self, ws: Workspace, max_running: int | None = None, max_parse: int | None = None) -> None:
        self.ws = ws
        env = os.environ.get("WORKBENCH_MAX_JOBS")
        self.max_running = max(1, int(max_running or (env if env and env.isdigit() else 1)))
        env = os.environ.get("WORKBENCH_MAX_PARSE_JOBS")
        self.max_parse = max(1, int(max_parse or (env if env and env.isdigit() else 2)))

    @property
    def timeout_s(self) -> int:
        """The wall-clock limit new jobs get: the Settings page's (kept in the workspace), else
        WORKBENCH_JOB_TIMEOUT, else 15 minutes. 0 means no limit."""
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            value = json.loads((self.ws.root / SETTINGS_FILE).read_text()).get("job_timeout_s")
            if isinstance(value, int) and value >= 0:
                return value
        env = os.environ.get(ENV_JOB_TIMEOUT, "").strip()
        return int(env) if env.isdigit() else DEFAULT_JOB_TIMEOUT_S

    def set_timeout_s(self, seconds: int) -> None:
        """Keep ``seconds`` as the limit for jobs submitted from now on, for every session of this workspace."""
        if not isinstance(seconds, int) or seconds < 0 or seconds > 7 * 24 * 3600:
            raise JobError(f"A job time limit of {seconds!r} s is not allowed.",
                           "Give whole seconds from 0 (no limit) to 604800 (a week).")
        path = self.ws.root / SETTINGS_FILE
        data: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.read_text())
            data = loaded if isinstance(loaded, dict) else {}
        data["job_timeout_s"] = seconds
        _write_json(path, data)

    # ------------------------------------------------------------------ paths and locking
    def job_dir(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
            raise JobError(f"'{job_id}' is not a job id.", "Pick the job from the Engines page.")
        path = self.ws.jobs_dir / job_id
        if not (path / JOB_FILE).is_file():
            raise JobError(f"Job {job_id} does not exist in this workspace.", "It may have been deleted.")
        return path

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.ws.jobs_dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self, job_dir: Path) -> Job:
        try:
            return Job.from_dict(json.loads((job_dir / JOB_FILE).read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise JobError(f"Job {job_dir.name} has unreadable state ({err}).") from err

    def _save(self, job_dir: Path, job: Job) -> None:
        _write_json(job_dir / JOB_FILE, job.to_dict())

    # ------------------------------------------------------------------ public interface
    def submit(self, kind: str, payload: dict[str, Any], *, title: str, model_digest: str = "",
               model_name: str = "", parent: str = "") -> str:
        """Queue a job; its folder is removed again when it cannot be written (a full disk), so nothing is left."""
        job_id = _new_job_id()
        job_dir = self.ws.jobs_dir / job_id
        job_dir.mkdir()
        job = Job(id=job_id, kind=kind, title=title, status=QUEUED, created=time.time(), payload=payload,
                  model_digest=model_digest, model_name=model_name,
                  parent=parent or os.environ.get(ENV_PARENT_JOB, ""),
                  timeout_s=0 if kind in UNTIMED_KINDS else self.timeout_s)
        try:
            self._save(job_dir, job)
            (job_dir / LOG_FILE).touch()
        except BaseException as err:
            shutil.rmtree(job_dir, ignore_errors=True)
            from .archives import is_disk_full

            if isinstance(err, OSError) and is_disk_full(err):
                raise JobError(f"Not enough disk space to queue the job ({err.strerror}); nothing was kept.",
                               "Free disk space in the workspace (WORKBENCH_HOME), then submit it again.") from err
            raise
        log.info("submitted %s job %s: %s", kind, job_id, title)
        self.schedule()
        return job_id

    def get(self, job_id: str) -> Job:
        job_dir = self.job_dir(job_id)
        job = self._refresh(job_dir, self._read(job_dir))
        if job.status == QUEUED:
            self.schedule()
            job = self._read(job_dir)
        return self._with_progress(job_dir, job)

    def list(self, kind: str | None = None) -> list[Job]:
        self.schedule()
        jobs = []
        for job_file in self.ws.jobs_dir.glob(f"*/{JOB_FILE}"):
            try:
                job = self._read(job_file.parent)
            except JobError:
                continue
            if kind is None or job.kind == kind:
                jobs.append(self._with_progress(job_file.parent, job))
        return sorted(jobs, key=lambda j: -j.created)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job, and every job it submitted (a demo's builds, comparisons) that has not finished."""
        job_dir = self.job_dir(job_id)
        with self._lock():
            self._cancel_locked(job_dir, self._read(job_dir))
            self._cancel_children_locked(job_id)
        return self.get(job_id)

    def cancel_children(self, job_id: str) -> None:
        """Cancel the unfinished jobs ``job_id`` submitted (and theirs): a demo that stops leaves no work behind."""
        with self._lock():
            self._cancel_children_locked(job_id)

    def _cancel_children_locked(self, job_id: str) -> None:
        pending = [job_id]
        while pending:
            parent = pending.pop()
            for job_file in self.ws.jobs_dir.glob(f"*/{JOB_FILE}"):
                with contextlib.suppress(JobError):
                    child = self._read(job_file.parent)
                    if child.parent == parent and child.id != job_id:
                        self._cancel_locked(job_file.parent, child)
                        pending.append(child.id)

    def _cancel_locked(self, job_dir: Path, job: Job) -> None:
        if job.status == QUEUED:
            job.status, job.finished, job.error = CANCELLED, time.time(), "Cancelled before it started."
            self._save(job_dir, job)
        elif job.status == RUNNING:
            (job_dir / CANCEL_FILE).touch()

    def waiting_for(self, job: Job) -> str:
        """What a queued job waits for, in words: the slot it needs, the jobs holding it and those ahead of it."""
        if job.status != QUEUED:
            return ""
        heavy = job.kind not in LIGHT_KINDS
        holders, ahead = [], 0
        for other in self.list():
            same_pool = (other.kind == PARSE_KIND) == (job.kind == PARSE_KIND) and other.kind not in UNTIMED_KINDS
            if not same_pool or other.id == job.id:
                continue
            if other.status == RUNNING:
                holders.append(other)
            elif other.status == QUEUED and other.created < job.created:
                ahead += 1
        slots = self.max_running if heavy else self.max_parse
        what = "build slot" if heavy and slots == 1 else f"one of the {slots} worker slots" if heavy else \
            "a parser-check slot"
        parts = [f"waits for the {what} (builds, quantizations and comparisons take turns)" if heavy
                 else f"waits for {what}"]
        for other in holders[:3]:
            ran = time.time() - (other.started or time.time())
            limit = (f", stopped at the latest in {max(0, other.timeout_s - ran) / 60:.0f} min" if other.timeout_s
                     else "")
            parts.append(f"held by '{other.title}' (running {ran / 60:.0f} min{limit})")
        if ahead:
            parts.append(f"{ahead} queued job(s) ahead of it")
        return "; ".join(parts) + "."

    def delete(self, job_id: str) -> None:
        job_dir = self.job_dir(job_id)
        job = self.get(job_id)
        if job.active:
            raise JobError(f"Job {job_id} is {job.status}.", "Cancel it first, then delete it.")
        shutil.rmtree(job_dir)

    def read_log(self, job_id: str, offset: int = 0, max_bytes: int = 4 << 20) -> tuple[str, int]:
        """Log text from ``offset``; returns (text, next offset). Only whole lines are returned."""
        path = self.job_dir(job_id) / LOG_FILE
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(max_bytes)
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n")
            data = data[: cut + 1] if cut >= 0 else b""
        return data.decode("utf-8", errors="replace"), offset + len(data)

    def read_log_tail(self, job_id: str, max_bytes: int = 4 << 20) -> LogTail:
        """The end of the log, at most ``max_bytes``, starting on a whole line: what a page shows of a long log."""
        path = self.job_dir(job_id) / LOG_FILE
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max(1, max_bytes))
            fh.seek(max(0, start - 1))  # one byte before: tells whether ``start`` is itself the start of a line
            data = fh.read(size - start + (1 if start else 0))
        if start:
            nl = data.find(b"\n")
            data = data[nl + 1:] if nl >= 0 else data[1:]  # one line longer than max_bytes: its end, still cut
        return LogTail(data.decode("utf-8", errors="replace"), start > 0, size)

    def artifact(self, job_id: str, name: str) -> Path:
        """A file of a job by its plain name; refuses anything that is not directly inside the job folder."""
        job_dir = self.job_dir(job_id)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
            raise JobError(f"'{name}' is not an artifact name.")
        path = job_dir / name
        if not path.is_file():
            raise JobError(f"Job {job_id} has no '{name}'.", "The job may have failed or not finished yet.")
        return path

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.05,
             on_log: Callable[[str], None] | None = None) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        offset = 0
        while True:
            job = self.get(job_id)
            if on_log:
                text, offset = self.read_log(job_id, offset)
                if text:
                    on_log(text)
            if job.status in FINISHED:
                if on_log:
                    text, offset = self.read_log(job_id, offset)
                    if text:
                        on_log(text)
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise JobError(f"Job {job_id} did not finish within {timeout:.0f} s.")
            time.sleep(poll)

    # ------------------------------------------------------------------ scheduling
    def schedule(self) -> None:
        """Mark dead workers failed and start queued jobs up to the concurrency bounds (heavy jobs, parser checks)."""
        with self._lock():
            running, parsing, queued = 0, 0, []
            for job_file in self.ws.jobs_dir.glob(f"*/{JOB_FILE}"):
                try:
                    job = self._refresh(job_file.parent, self._read(job_file.parent), locked=True)
                except JobError:
                    continue
                if job.status == RUNNING and job.kind == PARSE_KIND:
                    parsing += 1
                elif job.status == RUNNING and job.kind not in LIGHT_KINDS:
                    running += 1
                elif job.status == QUEUED:
                    queued.append((job.created, job_file.parent, job))
            for _, job_dir, job in sorted(queued, key=lambda q: q[0]):
                if job.kind == PARSE_KIND:
                    if parsing < self.max_parse:
                        self._start(job_dir, job)
                        parsing += 1
                    continue
                if job.kind in LIGHT_KINDS:
                    self._start(job_dir, job)
                    continue
                if running >= self.max_running:
                    continue
                self._start(job_dir, job)
                running += 1

    def _start(self, job_dir: Path, job: Job) -> None:
        env = dict(os.environ)
        env["WORKBENCH_HOME"] = str(self.ws.root)
        env.pop("POLYGRAPHY_USE_TENSORRT_RTX", None)  # the worker decides per job
        env["PYTHONUNBUFFERED"] = "1"
        with open(job_dir / LOG_FILE, "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workbench.worker", str(job_dir)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=str(job_dir), env=env, start_new_session=True,
            )
        _POPENS[proc.pid] = proc
        job.status, job.started, job.pid, job.pid_start = RUNNING, time.time(), proc.pid, ""
        job.owner_pid, job.owner_start = os.getpid(), _proc_start(os.getpid())
        for _ in range(50):  # /proc entry appears at once; retry briefly anyway
            job.pid_start = _proc_start(proc.pid)
            if job.pid_start:
                break
            time.sleep(0.01)
        self._save(job_dir, job)

    def _refresh(self, job_dir: Path, job: Job, locked: bool = False) -> Job:
        if job.status != RUNNING or job.pid is None:
            return job
        proc = _POPENS.get(job.pid)
        code = proc.poll() if proc else None
        alive = code is None and bool(job.pid_start) and _proc_start(job.pid) == job.pid_start
        cancel_flag = job_dir / CANCEL_FILE
        if alive and cancel_flag.exists() and time.time() - cancel_flag.stat().st_mtime > CANCEL_GRACE_S:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)
            alive = False
        if alive and self._over_time(job):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)
            alive = False
        if alive:
            return job
        ctx = contextlib.nullcontext() if locked else self._lock()
        with ctx:
            job = self._read(job_dir)  # the worker may have finished and written its state meanwhile
            if job.status != RUNNING:
                return job
            if proc is not None and code is None:
                code = proc.poll()
            job.finished = time.time()
            if cancel_flag.exists():
                job.status, job.error = CANCELLED, "Cancelled by the user (the worker was stopped)."
            elif self._over_time(job) or code == -signal.SIGALRM:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if job.pid:
                        os.killpg(job.pid, signal.SIGKILL)  # what the worker started, too
                job.status, job.exit_code = FAILED, 1
                job.error = f"Timed out after {job.timeout_s} s (the job time limit); the worker was stopped."
                job.hint = ("The log up to that point is kept. Raise the limit on the Settings page (or "
                            f"{ENV_JOB_TIMEOUT}), or build fewer profiles or a smaller model.")
            elif proc is None and not _owner_alive(job):
                job.status, job.exit_code = FAILED, 1
                job.error = (f"Interrupted: the worker (pid {job.pid}) was gone when the server came back; the "
                             "server that started it stopped while the job ran.")
                job.hint = "The log up to that point is kept; submit the job again."
            else:
                how = (f"killed by signal {-code}" if code is not None and code < 0 else
                       f"exit code {code}" if code is not None else "the process is gone")
                job.status, job.exit_code = FAILED, 1
                job.error = f"The worker process died ({how}) before finishing."
                job.hint = ("It may have run out of memory or been killed. "
                            "The log up to that point is kept; submit the job again.")
            (job_dir / PLAN_PART).unlink(missing_ok=True)
            self._save(job_dir, job)
            with open(job_dir / LOG_FILE, "a") as fh:
                fh.write(f"[E] [workbench] {job.error}\n")
        _POPENS.pop(job.pid or -1, None)
        return job

    @staticmethod
    def _over_time(job: Job) -> bool:
        return bool(job.timeout_s and job.started and time.time() - job.started >= job.timeout_s)

    def _with_progress(self, job_dir: Path, job: Job) -> Job:
        if job.status == RUNNING:
            try:
                data = json.loads((job_dir / PROGRESS_FILE).read_text())
                job.progress, job.phase = float(data["fraction"]), str(data["phase"])
            except (OSError, ValueError, KeyError):
                pass
        elif job.status == SUCCEEDED:
            job.progress, job.phase = 1.0, "Done"
        return job


PLAN_PART = "engine.plan.part"


# ---------------------------------------------------------------------------------------------- log lines

_SEVERITY = {"[E]": "error", "[!]": "error", "[W]": "warning", "[I]": "info", "[S]": "info", "[V]": "verbose",
             "[X]": "debug", "[D]": "debug"}


@dataclass(frozen=True)
class LogLine:
    severity: str  # error, warning, info, verbose, debug
    text: str


def parse_log(text: str, previous: str = "info") -> list[LogLine]:
    """Split job log text into lines with a severity; continuation lines inherit the previous severity."""
    out = []
    sev = previous
    for line in text.splitlines():
        head = line[:3]
        if head in _SEVERITY:
            sev = _SEVERITY[head]
        elif line.startswith("Traceback") or "Error Code" in line:
            sev = "error"
        out.append(LogLine(sev, line))
    return out
