"""Calibration memory is bounded by a chunk of samples, not by how many samples there are (issue 16: ResNet-50
held about 115 MB per sample, 500 samples would need 57 GB).

ONNX Runtime's calibrators keep every intermediate output of the batches one ``collect_data`` call reads; the
workbench feeds them a chunk at a time and their histogram collector (MinMax: its running ranges) merges, so
the ranges are those of one pass over all samples (within the histogram's binning)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from workbench import quantize
from workbench.calibration_data import from_arrays, model_inputs
from workbench.quantize import QuantizeSpec, quantize_qdq

SIDE = 64  # 32 channels of 64x64 float32: about 1 MiB of intermediate outputs per sample


def _wide_cnn(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, (32, 3, 3, 3), (rng.normal(size=(32, 3, 3, 3)) * 0.3).ravel())
    wf = helper.make_tensor("wf", TensorProto.FLOAT, (32, 4), rng.normal(size=(32, 4)).ravel())
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "wf"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "wide_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w, wf],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _data(model: Path, n: int):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3, SIDE, SIDE)).astype(np.float32) * rng.uniform(0.5, 2.0, size=(n, 1, 1, 1))
    return from_arrays({"x": x.astype(np.float32)}, model_inputs(model))


def _ranges(model: Path, out: Path, calibrator: str, n: int) -> dict[str, dict[str, float]]:
    quantize_qdq(model, out / "qdq.onnx", _data(model, n), QuantizeSpec(calibrator=calibrator))
    return json.loads((out / "calibration.json").read_text())["tensors"]


@pytest.mark.parametrize("calibrator", ["entropy", "percentile", "minmax"])
def test_ranges_calibrated_in_chunks_are_those_of_one_pass(tmp_path, monkeypatch, calibrator):
    model = _wide_cnn(tmp_path / "wide.onnx")
    (tmp_path / "chunks").mkdir()
    (tmp_path / "one").mkdir()
    monkeypatch.setattr(quantize, "CALIBRATION_CHUNK_SAMPLES", 16)
    chunked = _ranges(model, tmp_path / "chunks", calibrator, 96)
    monkeypatch.setattr(quantize, "CALIBRATION_CHUNK_SAMPLES", 10**9)
    one_pass = _ranges(model, tmp_path / "one", calibrator, 96)
    assert chunked.keys() == one_pass.keys()
    for tensor, ref in one_pass.items():
        width = max(abs(ref["min"]), abs(ref["max"]))
        bins = {"entropy": quantize.ENTROPY_BINS, "percentile": 2048}.get(calibrator)
        tol = 0.0 if bins is None else 2 * 2 * width / bins  # two bins of the histogram
        for key in ("min", "max"):
            assert chunked[tensor][key] == pytest.approx(ref[key], abs=tol), (tensor, key, chunked[tensor], ref)


_PEAK = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_calibration_memory import _data
from workbench.quantize import QuantizeSpec, quantize_qdq
model, n = Path(sys.argv[1]), int(sys.argv[2])
data = _data(model, n)
quantize_qdq(model, Path(sys.argv[3]) / "qdq.onnx", data, QuantizeSpec(calibrator="entropy"))
status = Path("/proc/self/status").read_text()
print(int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) // 1024)
"""


def _peak_mib(model: Path, n: int, out: Path) -> int:
    out.mkdir()
    code = _PEAK.format(tests=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", code, str(model), str(n), str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_peak_memory_of_calibration_does_not_grow_with_the_sample_count(tmp_path):
    model = _wide_cnn(tmp_path / "wide.onnx")
    few = _peak_mib(model, 32, tmp_path / "few")
    many = _peak_mib(model, 384, tmp_path / "many")
    # 352 more samples: about 400 MiB more if every intermediate output were kept; their inputs are 16 MiB
    assert many - few < 80, f"peak RSS {few} MiB with 32 samples, {many} MiB with 384"
