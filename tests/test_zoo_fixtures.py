"""The committed real-model fixtures (issue 11) stay small, valid and runnable, and the zoo runner works on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from bench.zoo import FIXTURE_SHAPES, make_data

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MAX_BYTES = 1 << 20  # CI fixtures stay below 1 MiB each


def test_every_fixture_is_described_and_has_runner_shapes():
    readme = (FIXTURES / "README.md").read_text()
    names = sorted(p.stem for p in FIXTURES.glob("*.onnx"))
    assert set(FIXTURE_SHAPES) <= set(names), "bench/zoo.py names a fixture that is not committed"
    for name in names:
        assert f"`{name}.onnx`" in readme, f"{name}.onnx is not described in tests/fixtures/README.md"


@pytest.mark.parametrize("name", sorted(FIXTURE_SHAPES))
def test_fixture_is_small_valid_onnx_that_onnx_runtime_runs(name, tmp_path):
    path = FIXTURES / f"{name}.onnx"
    assert path.stat().st_size < MAX_BYTES
    onnx.checker.check_model(onnx.load(str(path)))
    shapes = FIXTURE_SHAPES[name].get("shapes", {})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {}
    for i in sess.get_inputs():  # the profile's opt shape for dynamic inputs, ones for ids/masks/bytes
        shape = [int(v) for v in shapes[i.name][1].split("x")] if i.name in shapes else list(i.shape)
        feed[i.name] = (rng.standard_normal(shape).astype(np.float32) if i.type == "tensor(float)"
                        else np.ones(shape, np.int32 if i.type == "tensor(int32)" else np.int64))
    outs = sess.run(None, feed)
    assert outs and all(np.isfinite(o).all() for o in outs if np.issubdtype(o.dtype, np.floating))


def test_zoo_runner_makes_calibration_data_shaped_by_the_profile(tmp_path):
    data = np.load(make_data(FIXTURES / "bert_tiny_mask.onnx", FIXTURE_SHAPES["bert_tiny_mask"],
                             tmp_path / "d.npz"))
    assert data["input_ids"].shape == (8, 16) and data["input_ids"].dtype == np.int64
    assert data["input_ids"].max() < 1000 and set(np.unique(data["attention_mask"])) == {0, 1}


def test_zoo_runner_reports_each_step_of_a_fixture(tmp_path):
    """bench/zoo.py on the Q/DQ fixture: inspect, an FP32 build and the fusion accounting, as the table says."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "zoo.py"), "--fixtures", "--no-zoo",
                           "--models", "qdq_cnn", "--steps", "inspect", "fp32", "layers", "-q",
                           "--work", str(tmp_path / "w"), "--json", str(out), "--timeout", "300"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| qdq_cnn | ok | ok " in proc.stdout
    cells = json.loads(out.read_text())["models"][0]["cells"]
    assert cells["fp32"]["status"] == "ok" and (tmp_path / "w" / "qdq_cnn" / "fp32.plan").stat().st_size > 0
    assert cells["layers"]["note"].startswith("0 unaccounted")
