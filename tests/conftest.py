"""Shared fixtures: a fresh workspace per test, small real ONNX models, and session-scoped real builds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests import onnx_models

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """An empty workspace, also used by jobs' worker processes (through WORKBENCH_HOME)."""
    from workbench.workspace import Workspace

    root = tmp_path / "ws"
    monkeypatch.setenv("WORKBENCH_HOME", str(root))
    return Workspace.at(root)


@pytest.fixture()
def wb(workspace):
    from workbench.service import Workbench

    return Workbench.open(workspace.root)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return onnx_models.write_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def session_wb(tmp_path_factory):
    """One workspace for the whole session, for fixtures that build real engines once."""
    from workbench.service import Workbench

    root = tmp_path_factory.mktemp("session-ws")
    old = os.environ.get("WORKBENCH_HOME")
    os.environ["WORKBENCH_HOME"] = str(root)
    yield Workbench.open(root)
    if old is None:
        os.environ.pop("WORKBENCH_HOME", None)
    else:
        os.environ["WORKBENCH_HOME"] = old
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cnn_build(session_wb):
    """A real TensorRT-RTX FP32 build of the CNN sample with a dynamic-batch profile (job id)."""
    from workbench.samples import get_sample
    from workbench.spec import BuildSpec, profiles_from_args

    ref = session_wb.import_path(get_sample("cnn_residual").path)
    spec = BuildSpec(profiles=profiles_from_args(["input:1x3x32x32"], ["input:4x3x32x32"], ["input:16x3x32x32"]))
    job_id = session_wb.submit_build(ref, spec)
    job = session_wb.jobs.wait(job_id, timeout=300)
    assert job.status == "succeeded", (job.error, session_wb.jobs.read_log(job_id)[0][-3000:])
    return job_id


def gpu_reason() -> str | None:
    """Why engine-running tests cannot run here (None when they can)."""
    from workbench.backends import backend_info, gpu_info

    gpu = gpu_info()
    if not gpu.present:
        return f"needs a GPU to run engines: {gpu.reason}"
    if not backend_info("tensorrt").installed and not backend_info("tensorrt-rtx").can_run_engines:
        return "needs full TensorRT, or a GPU TensorRT-RTX supports"
    return None


def tensorrt_reason() -> str | None:
    from workbench.backends import backend_info, gpu_info

    if not backend_info("tensorrt").installed:
        return "full TensorRT is not installed (its libraries come only from NVIDIA's index, unreachable here)"
    if not gpu_info().present:
        return "full TensorRT needs a GPU to build"
    return None


@pytest.fixture()
def fresh_caches(monkeypatch):
    """Pages cache the Workbench per process: clear Streamlit's caches so a page sees this test's workspace."""
    import streamlit as st

    monkeypatch.chdir(REPO)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture()
def app_ws(wb, fresh_caches):
    """The workspace the app's pages see in this test."""
    return wb


def open_page(name: str, timeout: float = 60, **state):
    """The app as a user reaches a page: the entry file's navigation, session state set, then that page."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)
    for k, v in state.items():
        at.session_state[k] = v
    if name != "model":  # the default page
        at.switch_page(f"pages/{name}.py")
    return at.run()


SAMPLES = REPO / "sample_models"


def sample_file(name: str) -> Path:
    """A file of the bundled samples (committed with the repository: missing means broken, not skipped)."""
    path = SAMPLES / name
    assert path.is_file(), f"sample file {path} is missing; regenerate with sample_models/generate.py"
    return path
