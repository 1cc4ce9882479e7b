"""Builds run in worker processes: the user can cancel them, a killed worker is reported, restarts lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests import onnx_models
from workbench.jobs import CANCEL_GRACE_S, CANCELLED, FAILED, RUNNING, SUCCEEDED, JobStore, _proc_start
from workbench.spec import BuildSpec, profiles_from_args

pytestmark = pytest.mark.slow

# Several seconds of real building: two profiles over a deep network.
SLOW_SPEC = BuildSpec(profiles=profiles_from_args(
    ["x:1x32x64x64", "x:1x32x64x64"], ["x:8x32x64x64", "x:2x32x64x64"], ["x:32x32x64x64", "x:4x32x64x64"]))


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    import onnx

    path = tmp_path_factory.mktemp("slow") / "deep_convs.onnx"
    onnx.save(onnx_models.slow_to_build(depth=400), str(path))
    return path


def _wait_until_building(wb, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = wb.jobs.get(job_id)
        assert job.status in ("queued", RUNNING), (job.status, job.error)
        if job.status == RUNNING and job.phase.startswith("Building"):
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never started building")


def test_cancel_mid_build_stops_the_worker_and_offers_no_plan(wb, slow_model):
    """A real cancel (the progress monitor returns False), told apart from the SIGKILL fallback after the grace."""
    ref = wb.import_path(slow_model)
    job_id = wb.submit_build(ref, SLOW_SPEC)  # ~10 s of building here: the cancel lands mid-build
    _wait_until_building(wb, job_id)
    assert wb.jobs.get(job_id).progress < 0.5
    t0 = time.monotonic()
    wb.jobs.cancel(job_id)
    job = wb.jobs.wait(job_id, timeout=60)
    elapsed = time.monotonic() - t0
    assert job.status == CANCELLED
    # The kill fallback cannot act before CANCEL_GRACE_S; the builder stops at its next progress step.
    assert elapsed < CANCEL_GRACE_S - 1, f"took {elapsed:.1f} s: the worker was killed, not cancelled"
    assert job.error == "Build cancelled by the user." and "worker was stopped" not in job.error
    log = wb.jobs.read_log(job_id)[0]
    assert "Error Code 7: BuildCanceled" in log  # TensorRT's own words: it was building when told to stop
    assert "[W] [workbench] Cancelled by the user." in log and "worker was stopped" not in log
    assert not (wb.jobs.job_dir(job_id) / "engine.plan").exists()
    assert not (wb.jobs.job_dir(job_id) / "engine.plan.part").exists()
    with pytest.raises(Exception, match="not a finished build"):
        wb.plan_path(job_id)


def test_a_worker_killed_mid_build_is_marked_failed_and_the_next_job_runs(wb, slow_model, models_dir):
    ref = wb.import_path(slow_model)
    victim = wb.submit_build(ref, SLOW_SPEC)
    _wait_until_building(wb, victim)
    queued = wb.submit_build(wb.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    assert wb.jobs.get(queued).status == "queued"  # one heavy job at a time by default
    pid = wb.jobs.get(victim).pid
    # Under memory pressure the kernel kills a worker first, never the server.
    assert open(f"/proc/{pid}/oom_score_adj").read().strip() == "1000"
    assert open("/proc/self/oom_score_adj").read().strip() != "1000"
    os.killpg(pid, signal.SIGKILL)
    job = wb.jobs.wait(victim, timeout=30)
    assert job.status == FAILED
    assert "killed by signal 9" in job.error or "process is gone" in job.error
    assert not (wb.jobs.job_dir(victim) / "engine.plan").exists()
    assert "worker process died" in wb.jobs.read_log(victim)[0]
    nxt = wb.jobs.wait(queued, timeout=120)
    assert nxt.status == SUCCEEDED, nxt.error


def test_after_a_server_restart_finished_builds_are_still_listed_and_downloadable(wb, models_dir):
    from workbench.service import Workbench

    job_id = wb.submit_build(wb.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    assert wb.jobs.wait(job_id, timeout=120).status == SUCCEEDED
    plan = wb.plan_path(job_id).read_bytes()
    restarted = Workbench.open(wb.ws.root)  # a new process would see exactly this: the files
    assert [j.id for j in restarted.builds()] == [job_id]
    assert restarted.plan_path(job_id).read_bytes() == plan


def test_a_worker_that_vanished_while_the_server_was_down_is_marked_interrupted(wb, models_dir):
    import json

    job_id = wb.submit_build(wb.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    wb.jobs.wait(job_id, timeout=120)
    # Rewrite the state as a server that died mid-build left it: running, with a worker pid that is no longer ours,
    # started by a server process that is gone (the pid of a finished process, with its start time).
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_start = _proc_start(gone.pid)
    gone.wait()
    path = wb.jobs.job_dir(job_id) / "job.json"
    state = json.loads(path.read_text())
    assert state["owner_pid"] == os.getpid() and state["owner_start"]  # the worker's starter is recorded
    state.update(status=RUNNING, finished=None, pid=os.getpid(), pid_start="not-this-process", result={},
                 owner_pid=gone.pid, owner_start=gone_start or "1")
    path.write_text(json.dumps(state))
    restarted = JobStore(wb.ws)
    job = restarted.get(job_id)
    assert job.status == FAILED and job.exit_code == 1
    assert job.error.startswith("Interrupted: the worker") and "was gone when the server came back" in job.error
    assert "submit the job again" in job.hint
    assert "Interrupted: the worker" in wb.jobs.read_log(job_id)[0]
    # A worker that dies while the server that started it still runs is not "interrupted": it died.
    state.update(owner_pid=os.getpid(), owner_start=_proc_start(os.getpid()))
    path.write_text(json.dumps(state))
    job = JobStore(wb.ws).get(job_id)
    assert job.status == FAILED and "worker process died" in job.error and "Interrupted" not in job.error


def test_two_sessions_building_at_once_get_their_own_logs_and_plans(wb, models_dir):
    from workbench.service import Workbench

    other = Workbench.open(wb.ws.root)  # a second browser session: same server, same workspace
    a = wb.submit_build(wb.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    b = other.submit_build(other.import_path(models_dir / "tiny_cnn.onnx"),
                           BuildSpec(profiles=profiles_from_args(["x:1x3x16x16"], ["x:2x3x16x16"], ["x:4x3x16x16"])))
    ja, jb = wb.jobs.wait(a, timeout=120), other.jobs.wait(b, timeout=120)
    assert ja.status == jb.status == SUCCEEDED
    log_a, log_b = wb.jobs.read_log(a)[0], other.jobs.read_log(b)[0]
    assert "static_mlp" in log_a and "tiny_cnn" not in log_a
    assert "tiny_cnn" in log_b and "static_mlp" not in log_b
    assert wb.plan_path(a).read_bytes() != other.plan_path(b).read_bytes()
    # Bounded concurrency: the two heavy jobs did not overlap.
    assert ja.finished <= jb.started + 0.5 or jb.finished <= ja.started + 0.5


def test_job_ids_are_unguessable_and_artifacts_cannot_escape_the_job_folder(wb, models_dir):
    from workbench.errors import JobError

    job_id = wb.submit_build(wb.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    wb.jobs.wait(job_id, timeout=120)
    assert len(job_id) == 22  # 128 random bits
    for name in ("../job.json", "/etc/passwd", "..", ".lock", ""):
        with pytest.raises(JobError):
            wb.jobs.artifact(job_id, name)
    for bad_id in ("../../etc", job_id[:-1] + ("A" if job_id[-1] != "A" else "B"), "x" * 22):
        with pytest.raises(JobError):
            wb.jobs.get(bad_id)


def test_job_ids_never_start_with_a_dash_so_the_cli_takes_them_as_arguments():
    from workbench.jobs import _ID, _new_job_id

    ids = [_new_job_id() for _ in range(5000)]  # about 78 would start with '-' if nothing prevented it
    assert all(_ID.fullmatch(i) and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_long_log_shows_its_end_in_whole_lines_says_it_was_cut_and_offers_the_whole_log(wb, models_dir,
                                                                                         fresh_caches):
    from tests.conftest import open_page
    from workbench import ui

    job_id = wb.submit_build(wb.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    assert wb.jobs.wait(job_id, timeout=120).status == SUCCEEDED
    path = wb.jobs.job_dir(job_id) / "job.log"
    head = path.read_bytes()
    with open(path, "a") as fh:  # a verbose build: about 9 MiB of log lines after the worker's own
        for i in range(120_000):
            fh.write(f"[V] [TRT] filler line {i:06d} " + "x" * 60 + "\n")
        fh.write("[I] [workbench] THE LAST LINE\n")
    size = path.stat().st_size
    assert size > 2 * ui.LOG_BYTES

    tail = wb.jobs.read_log_tail(job_id)
    assert tail.cut and tail.size == size
    assert len(tail.text.encode()) <= 4 << 20
    assert tail.text.endswith("[I] [workbench] THE LAST LINE\n")
    assert tail.text.startswith("[V] [TRT] filler line ")  # a whole line, not the middle of one
    assert "Worker" not in tail.text and head.decode() not in tail.text  # the early lines are the ones cut
    assert all(ln.startswith("[") for ln in tail.text.splitlines())
    # A cut exactly at a line start keeps that line; a short log is whole and not cut.
    line = len(b"[V] [TRT] filler line 000000 " + b"x" * 60 + b"\n")
    exact = wb.jobs.read_log_tail(job_id, max_bytes=len(b"[I] [workbench] THE LAST LINE\n") + line)
    assert exact.text.splitlines() == ["[V] [TRT] filler line 119999 " + "x" * 60, "[I] [workbench] THE LAST LINE"]
    whole = wb.jobs.read_log_tail(job_id, max_bytes=size)
    assert not whole.cut and whole.text.encode() == path.read_bytes()

    at = open_page("build", **{ui.MODEL_DIGEST: wb.jobs.get(job_id).model_digest, ui.BUILD_JOB: job_id})
    assert not at.exception, [e.value for e in at.exception]
    assert any("earlier lines were cut" in c.value for c in at.caption), [c.value for c in at.caption]
    assert any("THE LAST LINE" in h.proto.body for h in at.get("html"))
    downloads = [d for d in at.get("download_button") if "whole log" in d.proto.label]
    assert len(downloads) == 1


def test_parser_checks_have_their_own_small_bound_so_many_sessions_cannot_start_many_parsers(wb, models_dir,
                                                                                           monkeypatch):
    from workbench.samples import get_sample
    from workbench.service import Workbench

    monkeypatch.setenv("WORKBENCH_MAX_PARSE_JOBS", "2")  # also what the workers see when they start the next
    sessions = [Workbench.open(wb.ws.root) for _ in range(5)]  # five sessions each open a different model
    models = [models_dir / "static_mlp.onnx", models_dir / "tiny_cnn.onnx", models_dir / "custom_op.onnx",
              get_sample("cnn_residual").path, get_sample("digits_mlp").path]
    ids = []
    for session, model in zip(sessions, models, strict=True):
        result, job_id = session.parse_check(session.import_path(model), "tensorrt-rtx")
        assert result is None and job_id
        ids.append(job_id)
    statuses = [wb.jobs.get(i).status for i in ids]
    assert statuses.count(RUNNING) <= 2 and statuses.count("queued") >= 3, statuses
    jobs = [wb.jobs.wait(i, timeout=180) for i in ids]
    assert all(j.status == SUCCEEDED for j in jobs), [(j.status, j.error) for j in jobs]
    # Never more than two parsers at once (a queued one starts only once a running one has finished), and two did run
    # side by side: a bound, not a queue of one.
    events = sorted([(j.started, 1) for j in jobs] + [(j.finished, -1) for j in jobs])
    level, peak = 0, 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == 2
    # Heavy jobs do not wait for parser checks (nor count against them).
    build = wb.submit_build(wb.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    assert wb.jobs.get(build).status in (RUNNING, SUCCEEDED)
    assert wb.jobs.wait(build, timeout=120).status == SUCCEEDED


def test_a_build_over_the_time_limit_is_stopped_marked_timed_out_and_frees_the_slot(wb, slow_model, models_dir,
                                                                                   monkeypatch):
    """A build that runs past the job time limit (WORKBENCH_JOB_TIMEOUT, or the Settings page's, which wins) is
    stopped and marked failed, its log kept; the queued job says what it waits for, then runs."""
    monkeypatch.setenv("WORKBENCH_JOB_TIMEOUT", "3600")
    assert wb.jobs.timeout_s == 3600
    wb.jobs.set_timeout_s(3)  # the Settings page
    assert wb.jobs.timeout_s == 3
    ref = wb.import_path(slow_model)
    victim = wb.submit_build(ref, SLOW_SPEC)  # ~10 s of building here: over the limit
    assert wb.jobs.get(victim).status == RUNNING
    wb.jobs.set_timeout_s(600)  # for jobs submitted from now on; the running one keeps its 3 s
    queued = wb.submit_build(wb.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    waits = wb.jobs.waiting_for(wb.jobs.get(queued))
    title = wb.jobs.get(victim).title
    assert "build slot" in waits and f"held by '{title}'" in waits and "stopped at the latest in" in waits, waits
    pid = wb.jobs.get(victim).pid
    job = wb.jobs.wait(victim, timeout=60)
    assert job.status == FAILED and job.error.startswith("Timed out after 3 s"), job.error
    assert "Settings" in job.hint and "WORKBENCH_JOB_TIMEOUT" in job.hint
    assert job.duration is not None and job.duration < 3 + 5
    for _ in range(50):  # SIGKILL is delivered at once; the exit takes a moment
        if _proc_start(pid) == "":
            break
        time.sleep(0.1)
    assert _proc_start(pid) == "", "the timed-out worker is still running"
    log = wb.jobs.read_log(victim)[0]
    assert f"Worker {pid} started build job" in log and "Timed out after 3 s" in log  # the log up to the stop
    assert not (wb.jobs.job_dir(victim) / "engine.plan").exists()
    nxt = wb.jobs.wait(queued, timeout=120)
    assert nxt.status == SUCCEEDED, nxt.error
    assert nxt.timeout_s == 600 and wb.jobs.waiting_for(nxt) == ""


def test_the_worker_stops_itself_at_the_limit_even_when_nobody_polls(wb, slow_model):
    """Nobody watching (no page, no CLI polling): the kernel ends the worker at the limit all the same."""
    wb.jobs.set_timeout_s(3)
    job_id = wb.submit_build(wb.import_path(slow_model), SLOW_SPEC)
    pid = wb.jobs.get(job_id).pid
    start = _proc_start(pid)
    deadline = time.monotonic() + 30
    while _proc_start(pid) == start and time.monotonic() < deadline:
        time.sleep(0.2)  # only watching /proc: no JobStore call that could kill it
    assert _proc_start(pid) != start, "the worker outlived its time limit"
    job = wb.jobs.get(job_id)
    assert job.status == FAILED and "Timed out after 3 s" in job.error


def test_a_very_large_graph_gets_a_build_time_warning_before_it_is_submitted(wb, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"relu{i}") for i in range(10_000)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("t10000", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph), str(tmp_path / "chain.onnx"))
    ref = wb.import_path(tmp_path / "chain.onnx")
    warning = wb.build_time_warning(ref)
    assert warning and "10,000 nodes" in warning and "holds the build slot" in warning and "15 min" in warning
    onnx.save(onnx_models.static_mlp(), str(tmp_path / "small.onnx"))
    assert wb.build_time_warning(wb.import_path(tmp_path / "small.onnx")) is None
