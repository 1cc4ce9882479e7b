"""A user builds real TensorRT-RTX engines from the bundled samples (no GPU needed) and takes the plan to CI."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from workbench.errors import SpecError
from workbench.samples import get_sample
from workbench.spec import BuildSpec, CalibrationSpec, Profile, ShapeRange, profiles_from_args

pytestmark = pytest.mark.slow


def _build(wb, model: Path, spec: BuildSpec, timeout: float = 300):
    ref = wb.import_path(model)
    job = wb.jobs.wait(wb.submit_build(ref, spec), timeout=timeout)
    return job, wb.jobs.read_log(job.id)[0]


def _layers(wb, job_id: str):
    from workbench.layers import load_layers

    return load_layers(wb.jobs.artifact(job_id, "layers.json"))


def test_fp32_build_of_the_cnn_sample_leaves_a_plan_report_and_bundle(session_wb, cnn_build):
    wb = session_wb
    job = wb.jobs.get(cnn_build)
    plan = wb.plan_path(cnn_build)
    assert plan.stat().st_size == job.result["plan_bytes"] > 10_000
    assert job.result["backend"] == "tensorrt-rtx"
    report = wb.jobs.artifact(cnn_build, "report.md").read_text()
    assert "cnn_residual.onnx" in report and "input" in report
    commands = wb.jobs.artifact(cnn_build, "commands.sh").read_text()
    assert "polygraphy convert cnn_residual.onnx" in commands
    assert "--trt-min-shapes 'input:[1,3,32,32]'" in commands
    # The bundle is made when first asked for (a build does not double its disk use), then kept.
    assert wb.bundle_path(cnn_build) == wb.bundle_path(cnn_build) == wb.jobs.job_dir(cnn_build) / "bundle.zip"
    assert not list(wb.jobs.job_dir(cnn_build).glob("*.part"))
    with zipfile.ZipFile(wb.bundle_path(cnn_build)) as zf:
        names = set(zf.namelist())
        assert {"engine.plan", "spec.json", "layers.json", "report.md", "commands.sh", "job.log"} <= names
        assert zf.read("engine.plan") == plan.read_bytes()
    # The FP32 request is honoured: every compute layer of the engine is FP32.
    layers = _layers(wb, cnn_build)
    compute = [ly for ly in layers.layers if ly.onnx_nodes]
    assert compute and all(ly.precision == "FP32" for ly in compute)
    assert job.result["precision_check"]["honoured"]


def test_the_build_report_json_carries_spec_versions_and_layers(session_wb, cnn_build):
    doc = json.loads(session_wb.build_report_json(cnn_build))
    assert doc["spec"]["profiles"][0]["input"]["max"] == [16, 3, 32, 32]
    assert doc["versions"]["polygraphy"]
    assert len(doc["layers"]["layers"]) == len(_layers(session_wb, cnn_build).layers)


def test_the_emitted_polygraphy_command_rebuilds_the_engine_outside_the_workbench(session_wb, cnn_build, tmp_path):
    wb = session_wb
    job_dir = wb.jobs.job_dir(cnn_build)
    line = next(ln for ln in wb.jobs.artifact(cnn_build, "commands.sh").read_text().splitlines()
                if "polygraphy convert" in ln)
    shutil.copyfile(get_sample("cnn_residual").path, tmp_path / "cnn_residual.onnx")
    for extra in ("no_tf32.py",):
        if (job_dir / extra).exists():
            shutil.copyfile(job_dir / extra, tmp_path / extra)
    words = shlex.split(line)
    env = dict(os.environ)
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    exe = Path(sys.executable).parent / words[0]
    proc = subprocess.run([str(exe), *words[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "engine.plan").stat().st_size > 10_000


def _run_command(line: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run one emitted command line (``VAR=value polygraphy …``) with this environment's executables."""
    words = shlex.split(line)
    env = dict(os.environ)
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    exe = Path(sys.executable).parent / words[0]
    return subprocess.run([str(exe), *words[1:], *extra], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_emitted_command_of_an_fp16_build_rebuilds_the_same_fp16_engine(session_wb, tmp_path):
    """The command builds the FP16-converted network shipped in the bundle, with TF32 as the build had it (on: the
    FP16 build does not clear it), and the engine it makes has the app's layers in the app's precisions."""
    from workbench.layers import parse_build_log

    wb = session_wb
    sample = get_sample("cnn_residual")
    job = wb.jobs.wait(wb.submit_build(wb.import_path(sample.path), BuildSpec(
        precision="fp16", profiles=sample.profiles())), timeout=300)
    assert job.status == "succeeded", job.error
    line = next(ln for ln in wb.jobs.artifact(job.id, "commands.sh").read_text().splitlines()
                if "polygraphy convert" in ln)
    network = job.result["network_model"]
    assert network and f"convert {network} " in line
    assert "no_tf32" not in line and "--fp16" not in line.split()
    assert not (wb.jobs.job_dir(job.id) / "bundle.zip").exists()  # nothing zipped until someone asks
    with zipfile.ZipFile(wb.bundle_path(job.id)) as zf:
        zf.extract(network, tmp_path)  # the network ships in the bundle
    proc = _run_command(line, tmp_path, "--verbosity", "extra_verbose")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "engine.plan").stat().st_size > 10_000
    again = parse_build_log(proc.stdout + proc.stderr)
    built = _layers(wb, job.id)
    assert [(ly.type, ly.precision, ly.onnx_nodes) for ly in again.layers] == [
        (ly.type, ly.precision, ly.onnx_nodes) for ly in built.layers]
    assert "FP16" in {ly.precision for ly in again.layers}


def test_a_static_model_builds_without_any_profile(wb, models_dir):
    job, log = _build(wb, models_dir / "static_mlp.onnx", BuildSpec())
    assert job.status == "succeeded", (job.error, log[-2000:])
    assert wb.plan_path(job.id).stat().st_size > 0


def test_two_profiles_over_two_dynamic_axes(wb):
    sample = get_sample("dynamic_2axis")
    spec = BuildSpec(profiles=profiles_from_args(
        ["image:1x3x32x32", "image:1x3x64x64"], ["image:2x3x64x64", "image:4x3x96x96"],
        ["image:4x3x64x64", "image:8x3x128x128"]))
    job, log = _build(wb, sample.path, spec)
    assert job.status == "succeeded", (job.error, log[-2000:])
    layers = _layers(wb, job.id)
    image = next(t for t in layers.io_tensors if t.name == "image")
    assert len(image.profiles) == 2
    assert [list(p.max) for p in image.profiles] == [[4, 3, 64, 64], [8, 3, 128, 128]]


@pytest.mark.parametrize("precision, datatype", [("fp16", "Half"), ("bf16", "BFloat16")])
def test_a_half_precision_build_converts_the_network_and_the_engine_really_runs_in_it(wb, precision, datatype):
    from workbench.backends import backend_info

    assert backend_info("tensorrt-rtx").precisions[precision][0]  # offered because it really builds (below)
    job, log = _build(wb, get_sample("cnn_residual").path, BuildSpec(
        precision=precision, profiles=get_sample("cnn_residual").profiles()))
    assert job.status == "succeeded", (job.error, log[-2000:])
    assert datatype in log  # the builder's own layer listing
    layers = [ly for ly in _layers(wb, job.id).layers if precision.upper() in ly.precision]
    assert layers, f"no engine layer runs in {precision.upper()}"
    assert job.result["precision_check"]["honoured"]
    assert wb.jobs.artifact(job.id, "network.onnx").stat().st_size > 0  # the converted model ships too


def test_a_bf16_build_keeps_the_chosen_op_type_in_fp32(wb):
    job, log = _build(wb, get_sample("cnn_residual").path, BuildSpec(
        precision="bf16", profiles=get_sample("cnn_residual").profiles(), keep_fp32_op_types=("Gemm",)))
    assert job.status == "succeeded", (job.error, log[-2000:])
    assert "Kept in FP32: Gemm" in log
    layers = _layers(wb, job.id).layers
    fc = [ly for ly in layers if "head/fc" in ly.onnx_nodes]
    assert fc and all(ly.precision == "FP32" for ly in fc), [(ly.name, ly.precision) for ly in fc]
    assert any(ly.precision == "BF16" for ly in layers if any(n.endswith("/conv") for n in ly.onnx_nodes))


def test_bf16_conversion_keeps_fp32_io_and_rounds_weights_from_fp32_without_clamping():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from workbench.bfloat16 import convert_float_to_bfloat16

    w = np.array([[1e5, -3e-9], [0.1, 70000.0]], np.float32)  # outside FP16's range: the FP16 converter clamps them
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = convert_float_to_bfloat16(model)
    onnx.checker.check_model(out)
    assert out.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert out.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    (weight,) = [i for i in out.graph.initializer if i.name == "w"]
    assert weight.data_type == TensorProto.BFLOAT16
    np.testing.assert_allclose(numpy_helper.to_array(weight).astype(np.float32), w, rtol=2 ** -8)
    half = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    half.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((2, 2), np.float16), "w"))
    with pytest.raises(Exception, match="already has FP16"):
        convert_float_to_bfloat16(half)


def test_int8_build_calibrates_on_the_users_data_and_runs_int8_layers(wb):
    sample = get_sample("digits_mlp")
    spec = BuildSpec(precision="int8", profiles=sample.profiles(),
                     calibration=CalibrationSpec(data_path=str(sample.calibration_data), calibrator="minmax"))
    job, log = _build(wb, sample.path, spec)
    assert job.status == "succeeded", (job.error, log[-2000:])
    int8 = [ly for ly in _layers(wb, job.id).layers if "INT8" in ly.precision]
    assert int8, "no engine layer runs in INT8"
    assert wb.jobs.artifact(job.id, "model_qdq.onnx").stat().st_size > 0
    ranges = wb.jobs.artifact(job.id, "calibration.json")
    # A later build reuses the ranges instead of recalibrating.
    again = spec.with_(calibration=CalibrationSpec(ranges_path=str(ranges), calibrator="minmax"))
    job2, log2 = _build(wb, sample.path, again)
    assert job2.status == "succeeded", (job2.error, log2[-2000:])
    assert "Reusing the calibration ranges" in log2


def test_a_custom_op_the_parser_rejects_fails_naming_the_node(wb, models_dir):
    job, log = _build(wb, models_dir / "custom_op.onnx", BuildSpec())
    assert job.status == "failed"
    assert "my_fancy_node" in job.error + job.hint
    assert "FancyActivation" in job.error + job.hint
    assert job.exit_code == 1  # BackendError: the backend ran and refused the node
    with pytest.raises(Exception, match="not a finished build"):
        wb.plan_path(job.id)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_a_custom_op_fails_a_converted_or_quantized_build_before_converting_or_calibrating(wb, models_dir,
                                                                                           precision):
    calibration = CalibrationSpec(synthetic=True, calibrator="minmax") if precision == "int8" else None
    job, log = _build(wb, models_dir / "custom_op.onnx", BuildSpec(precision=precision, calibration=calibration))
    assert job.status == "failed" and job.exit_code == 1
    assert "my_fancy_node" in job.error and "FancyActivation" in job.error
    # the parser's verdict came first: nothing was converted, calibrated or written
    assert "Calibrat" not in log and "Converting float tensors" not in log
    assert not (wb.jobs.job_dir(job.id) / "network.onnx").exists()
    assert not (wb.jobs.job_dir(job.id) / "model_qdq.onnx").exists()


def test_bad_profiles_are_refused_before_any_worker_starts(wb):
    ref = wb.import_path(get_sample("cnn_residual").path)
    bad = BuildSpec(profiles=(Profile({"input": ShapeRange((8, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))}),))
    with pytest.raises(SpecError, match="input") as err:
        wb.submit_build(ref, bad)
    assert "min" in err.value.message and "opt" in err.value.message
    wrong_static = BuildSpec(profiles=(Profile({"input": ShapeRange((1, 3, 32, 32), (1, 3, 32, 32),
                                                                    (1, 3, 64, 64))}),))
    with pytest.raises(SpecError, match="input"):
        wb.submit_build(ref, wrong_static)
    with pytest.raises(SpecError, match="input"):
        wb.submit_build(ref, BuildSpec())  # the dynamic batch needs a profile
    assert wb.builds() == []


def test_int8_without_calibration_data_is_refused(wb):
    sample = get_sample("digits_mlp")
    ref = wb.import_path(sample.path)
    with pytest.raises(SpecError, match="calibration data"):
        wb.submit_build(ref, BuildSpec(precision="int8", profiles=sample.profiles()))


def test_int8_transformer_with_a_scalar_scale_builds(wb):
    """The attention scale is a Mul by a scalar constant: a quantized constant TensorRT refuses to broadcast.
    The quantizer keeps such nodes in float, so the Q/DQ transformer builds."""
    sample = get_sample("transformer_block")
    spec = BuildSpec(precision="int8", profiles=sample.profiles()[:1],
                     calibration=CalibrationSpec(synthetic=True, calibrator="minmax"))
    job, log = _build(wb, sample.path, spec)
    assert job.status == "succeeded", (job.error, log[-3000:])
    assert "attn/scale" in log and "Kept in float" in log
    assert [ly for ly in _layers(wb, job.id).layers if "INT8" in ly.precision]


def test_rebuilding_with_culprits_kept_in_float_leaves_them_out_of_quantization(wb):
    """From the accuracy page's culprits to a new engine in one step: the same INT8 build, those nodes in float."""
    from workbench.quantize import qdq_summary

    sample = get_sample("digits_mlp")
    spec = BuildSpec(precision="int8", profiles=sample.profiles(),
                     calibration=CalibrationSpec(data_path=str(sample.calibration_data), calibrator="entropy"))
    first, log = _build(wb, sample.path, spec)
    assert first.status == "succeeded", (first.error, log[-2000:])
    quantized = qdq_summary(wb.jobs.artifact(first.id, "model_qdq.onnx")).quantized_nodes
    keep = [quantized[0]]
    second = wb.jobs.wait(wb.rebuild_keeping_float(first.id, keep), timeout=300)
    assert second.status == "succeeded", second.error
    assert second.payload["spec"]["calibration"]["exclude_nodes"] == keep
    after = qdq_summary(wb.jobs.artifact(second.id, "model_qdq.onnx"))
    assert keep[0] not in after.quantized_nodes and keep[0] in after.float_nodes
    with pytest.raises(Exception, match="not a quantized build"):
        fp32, _ = _build(wb, sample.path, BuildSpec(profiles=sample.profiles()))
        wb.rebuild_keeping_float(fp32.id, keep)


_CONFIG_PROBE = r"""
import json, sys
from workbench.build import builder_config, select_backend
from workbench.spec import BuildSpec
select_backend("tensorrt-rtx")
from polygraphy.backend.trt import NetworkFromOnnxPath
from polygraphy.mod.trt_importer import lazy_import_trt
trt = lazy_import_trt()
spec = BuildSpec.from_json(sys.argv[2])
builder, network, parser = NetworkFromOnnxPath(sys.argv[1], strongly_typed=True)()
config = builder_config(spec, trt, True)(builder, network)
print(json.dumps({
    "opt_level": config.builder_optimization_level,
    "tf32": config.get_flag(trt.BuilderFlag.TF32),
    "workspace": config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE),
    "profiles": config.num_optimization_profiles,
    "verbosity": str(config.profiling_verbosity),
}))
"""


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_one_builder_config_carries_every_setting_of_the_spec(precision):
    """The build and the per-layer engine rebuild of a comparison share builder_config: what it sets is what the
    deployed engine was built with (a real TensorRT-RTX builder config, read back)."""
    import json
    import subprocess
    import sys

    sample = get_sample("cnn_residual")
    spec = BuildSpec(precision=precision, optimization_level=2, workspace_mb=64,
                     profiles=sample.profiles() * 2, compute_capabilities=("8.6",))
    out = subprocess.run([sys.executable, "-c", _CONFIG_PROBE, str(sample.path), spec.to_json()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["opt_level"] == 2 and got["workspace"] == 64 << 20 and got["profiles"] == 2
    assert got["tf32"] == (precision == "tf32")  # strict FP32 clears TensorRT-RTX's default TF32
    assert got["verbosity"].endswith("DETAILED")


# ---------------------------------------------------------------------------------------------- models users bring


@pytest.fixture(scope="module")
def intake_dir(tmp_path_factory):
    from tests import onnx_models

    return onnx_models.write_intake(tmp_path_factory.mktemp("intake"))


def test_an_already_quantized_model_builds_int8_as_it_is_and_the_command_does_the_same(wb, intake_dir, tmp_path):
    """A Q/DQ model with --precision int8 used to be refused ("INT8 needs calibration data"): it builds as it is,
    no data asked, no model_qdq.onnx made, the engine's layers are INT8, and the emitted command rebuilds it."""
    from workbench.layers import parse_build_log

    spec = BuildSpec(precision="int8")  # the zoo's Q/DQ CNN has a static input
    job, log = _build(wb, intake_dir / "qdq_cnn.onnx", spec)
    assert job.status == "succeeded", (job.error, log[-2000:])
    assert job.payload["spec"]["calibration"] is None
    assert job.result["network_model"] == ""  # the user's file itself was parsed
    assert not (wb.jobs.job_dir(job.id) / "model_qdq.onnx").exists()
    assert any("own Q/DQ nodes" in n for n in job.result["notes"])
    layers = _layers(wb, job.id)
    int8 = [ly for ly in layers.layers if "INT8" in ly.precision]
    assert int8 and all(any(n in ly.onnx_nodes for ly in int8) for n in ("/0/Conv", "/3/Conv", "/6/Conv", "/11/Gemm")), [(ly.name, ly.precision) for ly in layers.layers]
    assert job.result["precision_check"]["honoured"]
    from workbench.errors import JobError

    with pytest.raises(JobError, match="explicitly quantized"):  # the culprit finder's rebuild says what to do
        wb.rebuild_keeping_float(job.id, ["/0/Conv"])
    from workbench.accuracy.candidates import candidate_from_build, engines_runnable
    from workbench.errors import BackendUnavailable

    if not engines_runnable("tensorrt-rtx")[0]:  # no ONNX Runtime "simulation" that is the reference itself
        with pytest.raises(BackendUnavailable, match="compared with itself"):
            candidate_from_build(wb.jobs.job_dir(job.id), intake_dir / "qdq_cnn.onnx")
    line = next(ln for ln in wb.jobs.artifact(job.id, "commands.sh").read_text().splitlines()
                if "polygraphy convert" in ln)
    assert "convert qdq_cnn.onnx " in line and "--int8" not in line.split()
    shutil.copyfile(intake_dir / "qdq_cnn.onnx", tmp_path / "qdq_cnn.onnx")
    proc = _run_command(line, tmp_path, "--verbosity", "extra_verbose")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    again = parse_build_log(proc.stdout + proc.stderr)
    assert [(ly.type, ly.precision) for ly in again.layers] == [(ly.type, ly.precision) for ly in layers.layers]
    # with no precision asked (FP32) the same file is still an INT8 engine, and the result says why
    job, log = _build(wb, intake_dir / "qdq_cnn.onnx", BuildSpec())
    assert job.status == "succeeded", (job.error, log[-2000:])
    assert any("INT8" in ly.precision for ly in _layers(wb, job.id).layers)
    assert any("runs its Q/DQ layers quantized whatever the precision chosen" in n for n in job.result["notes"])


def test_a_model_with_a_minus_one_dim_builds_with_a_profile_and_compares_on_its_shapes(wb, intake_dir, tmp_path):
    from workbench.accuracy import options

    spec = BuildSpec(profiles=profiles_from_args(["x:1x3x16x16"], ["x:2x3x16x16"], ["x:4x3x16x16"]))
    job, log = _build(wb, intake_dir / "neg_dim.onnx", spec)
    assert job.status == "succeeded", (job.error, log[-2000:])
    assert wb.plan_path(job.id).stat().st_size > 10_000
    io = _layers(wb, job.id)
    assert [ly.precision for ly in io.layers if ly.onnx_nodes] and all(
        ly.precision == "FP32" for ly in io.layers if ly.onnx_nodes)
    # comparison data: per-sample shapes from the build's profile, and the -1 dim is the batch axis
    ref = wb.import_path(intake_dir / "neg_dim.onnx")
    assert options.random_shapes(ref.path, ref.name, options.build_profile_shapes(wb.jobs, job.id)) == {"x": [3, 16, 16]}
    assert options.random_shapes(ref.path, ref.name) == {"x": [3, 16, 16]}  # its other dims are static
    # and a real comparison (ONNX Runtime FP32 against the FP16 simulation) runs on data of those shapes
    from workbench.accuracy import CompareSpec, compare, load_data
    from workbench.accuracy.candidates import simulate_fp16

    data = load_data(ref.path, None, n_random=4)
    assert data.arrays["x"].shape == (4, 3, 16, 16)
    result = compare(ref.path, simulate_fp16(ref.path, tmp_path), data, CompareSpec(), out_dir=tmp_path)
    assert result.n_samples == 4 and result.tensors


def test_a_profile_that_gives_shared_dims_different_sizes_is_refused_before_any_worker(wb, intake_dir):
    # today's failure: the build ran and failed with "Invalid Engine" (TensorRT: "Dimensions with name S must be equal")
    ref = wb.import_path(intake_dir / "shared_sym_dims.onnx")
    spec = BuildSpec(profiles=profiles_from_args(["image:1x3x16x16"], ["image:2x3x32x48"], ["image:4x3x64x64"]))
    with pytest.raises(SpecError, match="Input 'image' dims 2 and 3 share the symbolic name 'S'"):
        wb.submit_build(ref, spec)
    assert wb.builds() == []
    ok = BuildSpec(profiles=profiles_from_args(["image:1x3x16x16"], ["image:2x3x32x32"], ["image:4x3x64x64"]))
    job = wb.jobs.wait(wb.submit_build(ref, ok), timeout=300)
    assert job.status == "succeeded", job.error
