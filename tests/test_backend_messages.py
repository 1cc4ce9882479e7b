"""The backend's own words where they explain a failure, and nowhere else: a builder failure quotes the builder's
error lines (not Polygraphy's "Invalid Engine") in the CLI and on the Build page; the parser check prints no raw
backend lines, and never the harmless CUDA-driver line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from tests import onnx_models
from tests.conftest import open_page
from workbench import ui
from workbench.spec import BuildSpec, profiles_from_args

_PROFILE = (["x:1x16"], ["x:2x16"], ["x:4x16"])
_BUILDER_LINE = "reshape would change volume"


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "ws")}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def _save(tmp_path: Path, maker) -> Path:
    path = tmp_path / f"{maker.__name__}.onnx"
    onnx.save(maker(), str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])  # fp16: after the parser check and the conversion
def test_a_build_the_builder_refuses_quotes_the_builders_error_lines(tmp_path, precision):
    model = _save(tmp_path, onnx_models.reshape_to_fixed_size)
    out = _cli(tmp_path, "build", str(model), "-o", "m.plan", "--min-shapes", "x:1x16", "--opt-shapes", "x:2x16",
               "--max-shapes", "x:4x16", "--precision", precision)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.splitlines()
    quoted = [ln for ln in lines if ln.startswith("[E] ")]
    assert quoted and _BUILDER_LINE in quoted[0] and "fixed_reshape" in quoted[0], out.stderr
    assert "Invalid Engine" not in out.stderr and "see the build log" not in out.stderr.lower()
    assert "cudaError 35" not in out.stderr and "Traceback" not in out.stderr
    # the hint sits on its own line under the quote; the full log is still named
    assert any(ln.startswith("Those are the builder's own error lines") for ln in lines)
    assert "(full log: " in out.stderr
    assert not (tmp_path / "m.plan").exists()


def test_the_parser_check_prints_no_backend_lines_and_names_the_node(tmp_path):
    model = _save(tmp_path, onnx_models.unknown_rank_attention)
    out = _cli(tmp_path, "inspect", str(model))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # nothing from the backend on the terminal's error stream
    assert "node 'attn/q' (MatMul)" in out.stdout and "must match" in out.stdout
    assert "cudaError 35" not in out.stdout and "checkMacros" not in out.stdout
    # asked for, the backend's log is there (through the CLI's logging on stderr)
    verbose = _cli(tmp_path, "--log-level", "INFO", "inspect", str(model))
    assert "parser log" in verbose.stderr and "[E]" in verbose.stderr


@pytest.mark.slow
def test_the_build_page_shows_the_builders_error_lines_of_a_failed_build(app_ws, tmp_path):
    ref = app_ws.import_path(_save(tmp_path, onnx_models.reshape_to_fixed_size))
    job_id = app_ws.submit_build(ref, BuildSpec(profiles=profiles_from_args(*_PROFILE)))
    job = app_ws.jobs.wait(job_id, timeout=300)
    assert job.status == "failed"
    at = open_page("build", 60, **{ui.MODEL_DIGEST: ref.digest, ui.BUILD_JOB: job_id})
    assert not at.exception, [e.value for e in at.exception]
    shown = "\n".join(e.value for e in at.error)
    assert _BUILDER_LINE in shown and "[E] IBuilder::buildSerializedNetwork" in shown, shown
    assert "```" in shown  # verbatim: layer names keep their underscores
    assert "Invalid Engine" not in shown and "cudaError 35" not in shown
