"""The server killed mid-build (SIGKILL: no shutdown code runs), then started again on the same workspace.

A user opens the CNN sample in a real browser, builds it (FP32, quick), then starts a slow build of a deep
network; once the page shows it building, the Streamlit server is killed. Workers run in their own session
(``start_new_session=True``) and write their log into the job folder, so nothing ties a worker to the server:
it outlives it. What the restarted server reports about that build then depends on the worker alone:

* it is left alone: it finishes while no server watches, the restarted server lists it running (its pid and
  start time still match) and then succeeded, with its plan;
* its process group is killed too (a reboot, an OOM kill, the container restarted): the restarted server finds
  neither the worker nor the server that started it, and lists the build failed, "Interrupted: ...", no plan.

Either way the first build is listed succeeded and the browser downloads the very plan its job folder holds.
Every process started here (two servers, the workers, the browser) is stopped, also when a step fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import onnx_models
from tests.browser_support import (
    browser_skip_reason,
    chromium,
    evidence_on_failure,
    fresh_context,
    go_to,
    main_area,
    open_app,
    open_sample,
    read_grid,
    running_app,
    shown_job_id,
    wait_finished,
)
from workbench.jobs import _proc_start

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SAMPLE = "cnn_residual"
SLOW_NAME = "deep_convs.onnx"
SLOW_DEPTH = 1200  # Conv→Relu blocks: an FP32 build of ~25 s on this 2-core machine, long enough to restart in
JOB_TIMEOUT_MS = 180_000
FINISH_TIMEOUT_S = 240.0  # the orphaned slow build, after the restart


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    import onnx

    path = tmp_path_factory.mktemp("slow") / SLOW_NAME
    onnx.save(onnx_models.slow_to_build(depth=SLOW_DEPTH), str(path))
    return path


# ---------------------------------------------------------------------------------------------- helpers


def _job_state(home: Path, job_id: str) -> dict:
    return json.loads((home / "jobs" / job_id / "job.json").read_text())


def _alive(pid: int, start: str) -> bool:
    """The process ``pid`` started at ``start`` still runs (not a zombie, not a reused pid)."""
    return bool(pid and start) and _proc_start(pid) == start


@contextlib.contextmanager
def _workers_stopped(home: Path) -> Iterator[None]:
    """Whatever happens in the block: every worker a job of ``home`` records, still running, is killed with its
    process group (workers live in sessions of their own: stopping a server does not stop them)."""
    try:
        yield
    finally:
        for job_file in (home / "jobs").glob("*/job.json"):
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(job_file.read_text())
                if _alive(state.get("pid") or 0, state.get("pid_start") or ""):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(state["pid"], signal.SIGKILL)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(page, button) -> tuple[str, bytes]:
    with page.expect_download(timeout=JOB_TIMEOUT_MS) as info:
        button.click()
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def _engine_rows(page) -> dict[str, dict[str, str]]:
    """The Engines page's table as the browser shows it: job id -> {column: cell text}."""
    main = main_area(page)
    grid = read_grid(main.get_by_test_id("stDataFrame").first)
    assert grid.row_count == len(grid.rows), grid  # every build in view: nothing hidden by virtualisation
    return {row[grid.columns.index("job")]: dict(zip(grid.columns, row, strict=True)) for row in grid.rows}


def _open_engines(page, app) -> dict[str, dict[str, str]]:
    open_app(page, app)
    go_to(page, "Engines")
    return _engine_rows(page)


def _select_build(page, rows: dict[str, dict[str, str]], job_id: str) -> None:
    """Click the row marker of the build's row (Streamlit's single-row selection); wait for its panel."""
    main = main_area(page)
    frame = main.get_by_test_id("stDataFrame").first
    box = frame.bounding_box()
    assert box, "the Engines table is not drawn"
    row_px = 35  # Streamlit's data grid: header and rows 35 px high
    index = list(rows).index(job_id)
    page.mouse.click(box["x"] + 16, box["y"] + row_px * (index + 1) + row_px / 2)
    main.get_by_text(f"job {job_id}", exact=True).wait_for(timeout=30_000)


def _no_traceback(page) -> None:
    main = main_area(page)
    assert main.get_by_test_id("stException").count() == 0, main.get_by_test_id("stException").first.inner_text()
    assert main.get_by_text(re.compile(r"^Unexpected error")).count() == 0


def _start_two_builds(page, app, slow_model: Path) -> tuple[str, str]:
    """In the browser: the CNN sample built (FP32) to the end, then the deep model's build started; returns
    (finished build, building build) once the page shows TensorRT building the second."""
    from workbench.samples import get_sample
    from workbench.service import Workbench

    Workbench.open(app.home).import_path(slow_model)  # in the workspace: offered under "Recent models"
    main = main_area(page)
    s = get_sample(SAMPLE)
    open_app(page, app)
    open_sample(page, s.title, s.path.name)
    go_to(page, "Build")
    main.get_by_role("button", name="Build", exact=True).click()
    wait_finished(main, JOB_TIMEOUT_MS)
    fast = shown_job_id(main)
    assert (app.home / "jobs" / fast / "engine.plan").is_file()

    go_to(page, "Model")
    page.get_by_label("Recent models").click()
    page.get_by_role("option", name=re.compile(rf"^{re.escape(SLOW_NAME)} · ")).click()
    page.get_by_role("heading", name=SLOW_NAME, exact=True).wait_for(timeout=JOB_TIMEOUT_MS)
    go_to(page, "Build")
    main.get_by_text(re.compile(rf"^Model {re.escape(SLOW_NAME)} · ")).wait_for()  # the form is this model's
    main.get_by_role("button", name="Build", exact=True).click()
    building = main.get_by_test_id("stProgress").filter(has_text=re.compile(r"^Building: "))
    building.first.wait_for(timeout=JOB_TIMEOUT_MS)
    slow = shown_job_id(main)
    assert slow != fast
    state = _job_state(app.home, slow)
    assert state["status"] == "running" and state["title"].startswith(SLOW_NAME.removesuffix(".onnx")), state
    return fast, slow


# ---------------------------------------------------------------------------------------------- the test


@pytest.mark.parametrize("worker", ["left-alone", "killed-too"])
def test_server_killed_mid_build_then_restarted_tells_the_truth_about_both_builds(
    tmp_path, browser, slow_model, worker
):
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    home = tmp_path / "workbench-home"
    with _workers_stopped(home):
        # ---- the first server: one build finished, one building when the server is killed
        with running_app(tmp_path / "first", home=home) as first:
            with fresh_context(browser) as (context, guard):
                page = context.new_page()
                with evidence_on_failure(page, first, tmp_path):
                    fast, slow = _start_two_builds(page, first, slow_model)
                    state = _job_state(home, slow)
                    pid, pid_start = state["pid"], state["pid_start"]
                    assert state["owner_pid"] == first.process.pid  # the server started this worker
                    first.process.send_signal(signal.SIGKILL)
                    assert first.process.wait(timeout=10) == -signal.SIGKILL
                guard.assert_clean()

        # The worker is in a session of its own, its output goes to a file: the server's death leaves it running.
        assert _alive(pid, pid_start), "the build worker died with the server"
        assert _job_state(home, slow)["status"] == "running"
        if worker == "killed-too":
            os.killpg(pid, signal.SIGKILL)  # what a reboot or the container's restart does to it
            deadline = time.monotonic() + 10
            while _alive(pid, pid_start) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _alive(pid, pid_start)
        fast_plan = (home / "jobs" / fast / "engine.plan").read_bytes()

        # ---- the server started again on the same workspace, a fresh browser profile on the Engines page
        with running_app(tmp_path / "second", home=home) as second:
            with fresh_context(browser, accept_downloads=True) as (context, guard):
                page = context.new_page()
                main = main_area(page)
                with evidence_on_failure(page, second, tmp_path):
                    rows = _open_engines(page, second)
                    assert list(rows) == [slow, fast], rows  # both builds, newest first
                    assert rows[fast]["status"] == "succeeded"
                    assert rows[fast]["plan (KiB)"] == str(round(len(fast_plan) / 1024, 1))
                    _no_traceback(page)

                    if worker == "left-alone":
                        # Not declared interrupted while it still runs: the restarted server sees the same worker.
                        assert rows[slow]["status"] in ("running", "succeeded"), rows[slow]
                        deadline = time.monotonic() + FINISH_TIMEOUT_S
                        while rows[slow]["status"] == "running" and time.monotonic() < deadline:
                            time.sleep(2)
                            rows = _open_engines(page, second)  # a new session: the page as a user reloads it
                        assert rows[slow]["status"] == "succeeded", (rows[slow], _job_state(home, slow))
                        assert not _alive(pid, pid_start)
                    else:
                        assert rows[slow]["status"] == "failed", rows[slow]
                        assert rows[slow]["plan (KiB)"] in ("", "None"), rows[slow]  # no plan claimed

                    # The first build: listed succeeded, its plan is the job folder's, byte for byte.
                    _select_build(page, rows, fast)
                    main.get_by_test_id("stAlertContentSuccess").filter(
                        has_text=re.compile(r"^Finished in ")
                    ).wait_for()
                    name, data = _download(page, main.get_by_role("button", name="Download plan"))
                    assert name == f"{SAMPLE}.fp32.{fast[:8]}.plan" and _sha256(data) == _sha256(fast_plan)

                    slow_dir = home / "jobs" / slow
                    _select_build(page, rows, slow)
                    if worker == "left-alone":
                        # The orphan finished on its own: a whole plan, downloadable like any other.
                        main.get_by_test_id("stAlertContentSuccess").filter(
                            has_text=re.compile(r"^Finished in ")
                        ).wait_for()
                        plan = (slow_dir / "engine.plan").read_bytes()
                        assert rows[slow]["plan (KiB)"] == str(round(len(plan) / 1024, 1))
                        name, data = _download(page, main.get_by_role("button", name="Download plan"))
                        assert name == f"deep_convs.fp32.{slow[:8]}.plan" and _sha256(data) == _sha256(plan)
                        assert "[I] [workbench] Finished." in (slow_dir / "job.log").read_text()
                    else:
                        said = main.get_by_test_id("stAlertContentError").filter(
                            has_text=re.compile(r"^Failed: Interrupted: ")
                        )
                        said.wait_for()
                        text = said.inner_text()
                        assert f"the worker (pid {pid}) was gone when the server came back" in text, text
                        assert "submit the job again" in text, text
                        # Nothing offers a plan: no button, no file, no half-written part.
                        assert main.get_by_role("button", name="Download plan").count() == 0
                        assert main.get_by_role("button", name="Open fusion report").count() == 0
                        assert not (slow_dir / "engine.plan").exists()
                        assert not (slow_dir / "engine.plan.part").exists()
                        state = _job_state(home, slow)
                        assert state["status"] == "failed" and state["error"].startswith("Interrupted: ")
                        assert "[E] [workbench] Interrupted: " in (slow_dir / "job.log").read_text()
                    _no_traceback(page)
                guard.assert_clean()
