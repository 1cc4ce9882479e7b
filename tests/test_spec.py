"""Build specs: profiles a user types are checked before any build, and the CI commands say the same thing."""

from __future__ import annotations

import re

import pytest

from workbench.errors import SpecError
from workbench.model import TensorDesc, summarize
from workbench.samples import get_sample
from workbench.spec import (
    BuildSpec,
    CalibrationSpec,
    Profile,
    default_profile,
    parse_shapes_arg,
    polygraphy_command,
    profiles_from_args,
    shared_dim_notes,
    trtexec_command,
    validate_profiles,
    validate_spec,
)


@pytest.fixture(scope="module")
def two_axis():
    return summarize(get_sample("dynamic_2axis").path).inputs  # image [batch, 3, height, width]


def test_the_proposed_profile_fixes_static_dims_and_opens_dynamic_ones(two_axis):
    prof = default_profile(two_axis)
    rng = prof.shapes["image"]
    assert rng.min[1] == rng.opt[1] == rng.max[1] == 3
    assert rng.min[0] <= rng.opt[0] <= rng.max[0]
    validate_profiles([prof], two_axis)  # the proposal itself is valid


@pytest.mark.parametrize(("mins", "opts", "maxs", "expected"), [
    ("image:8x3x64x64", "image:2x3x64x64", "image:4x3x64x64", "dim 0: need min <= opt <= max, got 8, 2, 4"),
    ("image:1x4x64x64", "image:1x4x64x64", "image:1x4x64x64", "dim 1: min = 4, but the model fixes this dim to 3"),
    ("image:1x3x64", "image:1x3x64x64", "image:1x3x64x64", "min shape 1x3x64 has rank 3"),
    ("image:0x3x64x64", "image:1x3x64x64", "image:1x3x64x64", "dim 0: min = 0 is not a valid size"),
    ("image:-1x3x64x64", "image:1x3x64x64", "image:1x3x64x64", "dim 0: min = -1 is not a valid size"),
    ("picture:1x3x64x64", "picture:1x3x64x64", "picture:1x3x64x64", "'picture' is not an input of the model"),
])
def test_bad_profiles_name_the_input_and_the_dim(two_axis, mins, opts, maxs, expected):
    with pytest.raises(SpecError) as err:
        validate_profiles(profiles_from_args([mins], [opts], [maxs]), two_axis)
    assert expected in err.value.message


def test_a_dynamic_input_without_shapes_is_named(two_axis):
    with pytest.raises(SpecError, match="'image'"):
        validate_profiles([], two_axis)


def test_trtexec_and_polygraphy_shape_syntax_both_parse():
    assert parse_shapes_arg("a:1x3x8x8,b:2x4") == {"a": (1, 3, 8, 8), "b": (2, 4)}
    assert parse_shapes_arg("a:[1,3,8,8],b:[2,4]") == {"a": (1, 3, 8, 8), "b": (2, 4)}
    with pytest.raises(SpecError, match="not a shape"):
        parse_shapes_arg("a:1xthree")


def test_spec_round_trips_through_json():
    spec = BuildSpec(precision="int8", profiles=profiles_from_args(["x:1x3"], ["x:2x3"], ["x:4x3"]),
                     calibration=CalibrationSpec(data_path="/d.npz", calibrator="percentile", percentile=99.9,
                                                 exclude_nodes=("fc",)))
    assert BuildSpec.from_json(spec.to_json()) == spec


def test_absurd_knobs_are_refused():
    for spec, words in [(BuildSpec(workspace_mb=1 << 40), "Workspace limit"),
                        (BuildSpec(optimization_level=9), "optimization level"),
                        (BuildSpec(compute_capabilities=("eighty-six",)), "Compute capability"),
                        (BuildSpec(precision="int4"), "Unknown precision"),
                        (BuildSpec(backend="tensorrt-rtx", precision="int8",
                                   calibration=CalibrationSpec(data_path="/d.npz", implicit=True)), "Implicit")]:
        with pytest.raises(SpecError, match=words):
            validate_spec(spec)


def test_commands_carry_every_profile_and_precision():
    spec = BuildSpec(backend="tensorrt", precision="fp16", workspace_mb=512, profiles=profiles_from_args(
        ["x:1x3", "x:1x3"], ["x:2x3", "x:8x3"], ["x:4x3", "x:16x3"]))
    poly = polygraphy_command(spec, "m.onnx", "m.plan")
    assert poly.count("--trt-max-shapes") == 2 and "'x:[16,3]'" in poly and "--fp16" in poly
    trt = trtexec_command(spec, "m.onnx", "m.plan")
    assert trt.count("--maxShapes=") == 2 and "--fp16" in trt and "--memPoolSize=workspace:512M" in trt
    rtx = polygraphy_command(BuildSpec(), "m.onnx", "m.plan")
    assert rtx.startswith("POLYGRAPHY_USE_TENSORRT_RTX=1 ") and "no_tf32.py" in rtx


@pytest.mark.parametrize(("version", "strongly"), [
    ("", False), ("8.6.1", False), ("9.3.0", False), ("10.13.3.9", False), ("11.0.0", True), ("11.1.0.post1", True),
    ("not-a-version", False),
])
def test_full_tensorrt_is_strongly_typed_from_11_compared_as_versions(version, strongly):
    from workbench.spec import strongly_typed

    assert strongly_typed("tensorrt", version) is strongly  # "9.3.0" > "11.0.0" as strings, not as versions
    assert strongly_typed("tensorrt-rtx", version) is True


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_11_commands_build_the_converted_network_strongly_typed(precision):
    from workbench.reports.build_report import commands

    network = "network.onnx" if precision == "fp16" else "model_qdq.onnx"
    spec = BuildSpec(backend="tensorrt", precision=precision, profiles=profiles_from_args(["x:1x3"], ["x:2x3"],
                                                                                          ["x:4x3"]),
                     calibration=CalibrationSpec(synthetic=True) if precision == "int8" else None)
    new = commands(spec, "m.onnx", network, backend_version="11.0.0")
    assert f" {network} " in new["polygraphy"] and f"--onnx={network}" in new["trtexec"]
    assert "--strongly-typed" in new["polygraphy"].split() and "--stronglyTyped" in new["trtexec"].split()
    for flag in ("--fp16", "--int8", "--bf16", "--fp8"):
        assert flag not in new["polygraphy"].split() and flag not in new["trtexec"].split()
    old = commands(spec, "m.onnx", network if precision == "int8" else "", backend_version="10.13.0")
    assert f"--{precision}" in old["polygraphy"].split() and f"--{precision}" in old["trtexec"].split()
    assert "--strongly-typed" not in old["polygraphy"] and "--stronglyTyped" not in old["trtexec"]


def test_tensorrt_rtx_fp16_and_int8_commands_add_no_tf32_clearing_the_build_did_not_do():
    from workbench.reports.build_report import commands

    prof = profiles_from_args(["x:1x3"], ["x:2x3"], ["x:4x3"])
    for precision, network in (("fp16", "network.onnx"), ("int8", "model_qdq.onnx"), ("tf32", "")):
        spec = BuildSpec(precision=precision, profiles=prof,
                         calibration=CalibrationSpec(synthetic=True) if precision == "int8" else None)
        cmd = commands(spec, "m.onnx", network, backend_version="1.7.1.116")["polygraphy"]
        assert cmd.startswith("POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert " + (network or "m.onnx"))
        assert "no_tf32" not in cmd and f"--{precision}" not in cmd
    strict = commands(BuildSpec(profiles=prof), "m.onnx", backend_version="1.7.1.116")["polygraphy"]
    assert "no_tf32.py" in strict  # strict FP32: the build cleared TF32, and so does the command


def test_an_implicitly_calibrated_tensorrt_10_build_reuses_its_calibration_cache():
    spec = BuildSpec(backend="tensorrt", precision="int8", profiles=profiles_from_args(["x:1x3"], ["x:2x3"],
                                                                                        ["x:4x3"]),
                     calibration=CalibrationSpec(data_path="/d.npz", implicit=True))
    assert "--calibration-cache calibration.cache" in polygraphy_command(spec, "m.onnx", "m.plan", "10.13.0")
    assert "--calib=calibration.cache" in trtexec_command(spec, "m.onnx", "m.plan", "10.13.0")


def test_backend_specific_knobs_are_refused_on_the_other_backend():
    for spec, words in [(BuildSpec(compute_capabilities=("9.0",)), r"cannot target compute capability 9\.0"),
                        (BuildSpec(backend="tensorrt", compute_capabilities=("8.6",)), "TensorRT-RTX setting"),
                        (BuildSpec(hardware_compatible=True), "Hardware compatibility is a full-TensorRT"),
                        (BuildSpec(hardware_compatible=True, version_compatible=True), "Hardware and version")]:
        with pytest.raises(SpecError, match=words):
            validate_spec(spec)
    validate_spec(BuildSpec(compute_capabilities=("8.6", "12.0")))
    validate_spec(BuildSpec(backend="tensorrt", hardware_compatible=True, version_compatible=True))


def test_keeping_layers_in_fp32_is_for_fp16_and_bf16_builds():
    with pytest.raises(SpecError, match="applies to FP16 and BF16 builds, not INT8"):
        validate_spec(BuildSpec(precision="int8", keep_fp32_nodes=("fc",),
                                calibration=CalibrationSpec(synthetic=True)))
    validate_spec(BuildSpec(precision="bf16", keep_fp32_op_types=("Softmax",)))


# ---------------------------------------------------------------------------------------------- models users bring


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    from tests import onnx_models

    folder = onnx_models.write_intake(tmp_path_factory.mktemp("intake"))
    return {p.stem: summarize(p) for p in folder.glob("*.onnx")}


def test_a_minus_one_dim_gets_a_profile_like_any_dynamic_dim(intake):
    inputs = intake["neg_dim"].inputs
    prof = default_profile(inputs)
    assert prof.shapes["x"].min == (1, 3, 16, 16) and prof.shapes["x"].max[1:] == (3, 16, 16)
    validate_profiles([prof], inputs)
    with pytest.raises(SpecError, match="dynamic input 'x' \\[\\?, 3, 16, 16\\] has no shapes"):
        validate_profiles([Profile({})], inputs)


def test_dims_sharing_a_name_are_proposed_equal_and_the_hint_says_why(intake):
    inputs = intake["shared_sym_dims"].inputs  # image [N, 3, S, S]
    rng = default_profile(inputs).shapes["image"]
    assert rng.min[2] == rng.min[3] and rng.opt[2] == rng.opt[3] and rng.max[2] == rng.max[3]
    assert shared_dim_notes(inputs) == ["Input 'image' dims 2 and 3 share the symbolic name 'S': TensorRT treats "
                                        "them as one size, so their min/opt/max must be equal (the proposal gives "
                                        "them equal values)."]
    with pytest.raises(SpecError) as err:  # no profile at all: the hint proposes one, equal, and says why
        validate_profiles([], inputs)
    assert "--opt-shapes image:1x3x64x64" in err.value.hint and "share the symbolic name 'S'" in err.value.hint
    # a name on the batch dim and on H/W: every dim of that name gets the first one's values
    both = [TensorDesc("x", "float32", ("?", 3, "?", "?"))]
    rng = default_profile(both).shapes["x"]
    assert rng.min[0] == rng.min[2] == rng.min[3] and rng.max[0] == rng.max[2] == rng.max[3]
    validate_profiles([default_profile(both)], both)


@pytest.mark.parametrize(("model", "mins", "opts", "maxs", "expected"), [
    ("shared_sym_dims", "image:1x3x16x16", "image:2x3x32x48", "image:4x3x64x64",
     "Profile 0: Input 'image' dims 2 and 3 share the symbolic name 'S', so TensorRT treats them as one size and "
     "needs equal values; the opt shapes give 32 (dim 2 of 'image'), 48 (dim 3 of 'image')."),
    ("shared_sym_dims", "image:1x3x16x32", "image:1x3x32x32", "image:1x3x64x64",
     "the min shapes give 16 (dim 2 of 'image'), 32 (dim 3 of 'image')"),
    ("shared_batch_seq", "hidden:1x8,mask:1x8", "hidden:2x16,mask:2x16", "hidden:4x32,mask:4x64",
     "Dim 1 of 'hidden' and dim 1 of 'mask' share the symbolic name 'seq'"),
])
def test_a_profile_giving_shared_dims_different_sizes_is_refused_naming_them(intake, model, mins, opts, maxs,
                                                                             expected):
    # TensorRT-RTX would fail the build ("Dimensions with name ? must be equal") or narrow the range silently.
    with pytest.raises(SpecError) as err:
        validate_profiles(profiles_from_args([mins], [opts], [maxs]), intake[model].inputs)
    assert expected in err.value.message
    assert "same min/opt/max" in err.value.hint


def test_an_explicitly_quantized_model_builds_int8_without_calibration_and_refuses_what_would_change_it(intake):
    s = intake["qdq_cnn"]  # static input [1, 3, 32, 32]: no profile
    prof = ()
    validate_spec(BuildSpec(precision="int8", profiles=prof), s)  # no calibration asked: fine
    validate_spec(BuildSpec(precision="fp32", profiles=prof), s)
    assert BuildSpec(precision="int8", profiles=prof).summary() == "tensorrt-rtx · INT8, the model's own Q/DQ · 0 profiles"
    for spec, expected in (
        (BuildSpec(precision="int8", profiles=prof, calibration=CalibrationSpec(synthetic=True)),
         "already explicitly quantized (Q/DQ: 10 Quantize/Dequantize pairs, 4 quantized weights, INT8)"),
        (BuildSpec(precision="int8", profiles=prof, calibration=CalibrationSpec(data_path="d.npz")),
         "takes no calibration"),
        (BuildSpec(precision="fp16", profiles=prof), "converting a Q/DQ model to FP16 is not supported"),
        (BuildSpec(precision="bf16", profiles=prof), "converting a Q/DQ model to BF16"),
        (BuildSpec(precision="fp8", profiles=prof), "but FP8 was asked for"),
    ):
        with pytest.raises(SpecError, match=re.escape(expected)):
            validate_spec(spec, s)
    # a float model still needs calibration data for INT8
    with pytest.raises(SpecError, match="INT8 needs calibration data"):
        validate_spec(BuildSpec(precision="int8", profiles=(default_profile(intake["neg_dim"].inputs),)),
                      intake["neg_dim"])


@pytest.mark.parametrize(("backend", "version", "flags", "absent"), [
    ("tensorrt-rtx", "1.7.1", [], ["--int8", "--calib", "--strongly-typed", "no_tf32"]),
    ("tensorrt", "10.13.0", ["--int8"], ["--calibration-cache", "--calib=", "--strongly-typed"]),
    ("tensorrt", "11.0.0", ["--strongly-typed", "--stronglyTyped"], ["--int8", "--calib"]),
])
def test_the_commands_for_a_qdq_model_build_the_file_as_it_is(backend, version, flags, absent):
    spec = BuildSpec(backend=backend, precision="int8",
                     profiles=profiles_from_args(["x:1x3x16x16"], ["x:2x3x16x16"], ["x:4x3x16x16"]))
    poly = polygraphy_command(spec, "qdq_cnn.onnx", "engine.plan", version)
    trtexec = trtexec_command(spec, "qdq_cnn.onnx", "engine.plan", version)
    assert " qdq_cnn.onnx " in poly and "--onnx=qdq_cnn.onnx" in trtexec  # the user's own file, no model_qdq.onnx
    both = poly + " " + trtexec
    assert all(f in both for f in flags), both
    assert not any(a in both for a in absent), both


def test_the_workbench_refuses_to_calibrate_a_qdq_model_again(wb, tmp_path):
    from tests.onnx_models import FIXTURES
    from workbench.quantize_task import QuantizeRequest

    ref = wb.import_path(FIXTURES / "qdq_cnn.onnx")
    for submit in (wb.submit_quantize, wb.submit_score):
        with pytest.raises(SpecError, match="already explicitly quantized"):
            submit(ref, QuantizeRequest(synthetic=True))
    from workbench.accuracy.job import CompareRequest, submit_compare  # the Accuracy page's made candidates

    with pytest.raises(SpecError, match="already explicitly quantized"):
        submit_compare(wb.jobs, ref, CompareRequest(source="int8", calib_random=True))
    with pytest.raises(SpecError, match="FP16 conversion of a Q/DQ model is not supported"):
        submit_compare(wb.jobs, ref, CompareRequest(source="fp16"))
    assert wb.jobs.list() == []
