"""The CLI a CI job uses: same core as the app, exit codes 0 (ok) / 1 (backend failed) / 2 (bad input)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.samples import get_sample


def cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture()
def run(tmp_path):
    return lambda *a: cli(*a, cwd=tmp_path, home=tmp_path / "ws")


def test_inspect_prints_inputs_with_dynamic_dims_and_json(run):
    model = str(get_sample("dynamic_2axis").path)
    out = run("inspect", model)
    assert out.returncode == 0, out.stderr
    assert "image" in out.stdout and "(dynamic)" in out.stdout
    doc = json.loads(run("inspect", model, "--json").stdout)
    assert doc["inputs"][0]["name"] == "image"


def test_inspect_of_a_non_onnx_file_is_exit_2_with_the_file_named_and_no_traceback(run, tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("hello")
    out = run("inspect", str(bad))
    assert out.returncode == 2
    assert "notes.onnx" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_build_writes_the_plan_and_a_report(run, tmp_path):
    out = run("build", str(get_sample("cnn_residual").path), "-o", "cnn.plan", "--min-shapes", "input:1x3x32x32",
              "--opt-shapes", "input:2x3x32x32", "--max-shapes", "input:4x3x32x32", "--report", "r.json")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cnn.plan").stat().st_size > 10_000
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["result"]["plan_bytes"] == (tmp_path / "cnn.plan").stat().st_size


def test_build_with_a_bad_profile_is_exit_2_naming_the_input(run):
    out = run("build", str(get_sample("cnn_residual").path), "-o", "x.plan", "--min-shapes", "input:8x3x32x32",
              "--opt-shapes", "input:2x3x32x32", "--max-shapes", "input:4x3x32x32")
    assert out.returncode == 2
    assert "input" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_build_of_a_model_the_parser_rejects_is_a_clear_failure(run, models_dir, tmp_path):
    out = run("build", str(models_dir / "custom_op.onnx"), "-o", "x.plan")
    assert out.returncode == 1, out.stderr  # the backend ran and refused the model: exit 1, not "bad input" (2)
    assert "my_fancy_node" in out.stderr and "FancyActivation" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.plan").exists()


@pytest.mark.slow
def test_quantize_then_build_int8_from_the_cli(run, tmp_path):
    sample = get_sample("digits_mlp")
    out = run("quantize", str(sample.path), "-o", "qdq.onnx", "--calib-data", str(sample.calibration_data),
              "--calibrator", "percentile", "--percentile", "99.99", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["dequantize_nodes"] > 0 and (tmp_path / "qdq.onnx").is_file()
    assert Path(doc["ranges_path"]).is_file()
    out = run("build", str(sample.path), "-o", "int8.plan", "--precision", "int8", "--calib-data",
              str(sample.calibration_data), "--calibrator", "entropy", "--min-shapes", "input:1x64",
              "--opt-shapes", "input:8x64", "--max-shapes", "input:32x64")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "int8.plan").stat().st_size > 0


def test_quantize_with_data_that_does_not_fit_the_model_is_exit_2(run, tmp_path):
    import numpy as np

    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((4, 64), np.float32))
    out = run("quantize", str(get_sample("digits_mlp").path), "-o", "q.onnx", "--calib-data", "wrong.npz")
    assert out.returncode == 2
    assert "pixels" in out.stderr and "input" in out.stderr
    assert not (tmp_path / "q.onnx").exists()


def test_every_subcommand_is_there(run):
    out = run("--help")
    for cmd in ("inspect", "build", "quantize", "layers", "compare"):
        assert cmd in out.stdout, f"'{cmd}' missing from trt-workbench --help"


@pytest.mark.slow
def test_quantize_from_a_folder_of_images(run, tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    out = run("quantize", str(get_sample("cnn_residual").path), "-o", "qdq.onnx", "--calib-data", "images",
              "--calibrator", "minmax", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["n_samples"] == 10 and doc["dequantize_nodes"] > 0
    (tmp_path / "images" / "broken.png").write_text("not a png")
    out = run("quantize", str(get_sample("cnn_residual").path), "-o", "qdq2.onnx", "--calib-data", "images")
    assert out.returncode == 2 and "broken.png" in out.stderr


def test_build_targets_compute_capabilities_and_refuses_full_tensorrt_knobs_on_tensorrt_rtx(run, tmp_path):
    model = str(get_sample("cnn_residual").path)
    shapes = ["--min-shapes", "input:1x3x32x32", "--opt-shapes", "input:2x3x32x32", "--max-shapes", "input:4x3x32x32"]
    refused = run("build", model, "-o", str(tmp_path / "x.plan"), "--hardware-compatible", *shapes)
    assert refused.returncode == 2 and "full-TensorRT setting" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "x.plan").exists()
    refused = run("build", model, "-o", str(tmp_path / "x.plan"), "--compute-capabilities", "9.0", *shapes)
    assert refused.returncode == 2 and "compute capability 9.0" in refused.stderr
    out = run("build", model, "-o", str(tmp_path / "m.plan"), "--compute-capabilities", "8.6", "--report",
              str(tmp_path / "r.json"), *shapes)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["spec"]["compute_capabilities"] == ["8.6"]
    from workbench.backends import gpu_info

    gpu = gpu_info()
    assert report["result"]["built_on"] == (f"{gpu.name} (CC {gpu.compute_capability})" if gpu.present
                                            else "a machine without GPU")
    assert (tmp_path / "m.plan").stat().st_size > 0
    # the worker's own peak memory: TensorRT-RTX alone maps over 100 MiB, so a figure from the CLI would be caught
    assert report["result"]["peak_rss_mib"] > 100


def test_build_fp16_keeps_named_nodes_and_op_types_in_fp32(run, tmp_path):
    from workbench.layers import load_layers

    model = str(get_sample("cnn_residual").path)
    shapes = ["--min-shapes", "input:1x3x32x32", "--opt-shapes", "input:2x3x32x32", "--max-shapes", "input:4x3x32x32"]
    out = run("build", model, "-o", str(tmp_path / "m.plan"), "--precision", "fp16", "--keep-fp32", "Gemm",
              "stem/conv", "--report", str(tmp_path / "r.json"), *shapes)
    assert out.returncode == 0, out.stderr
    spec = json.loads((tmp_path / "r.json").read_text())["spec"]
    assert spec["keep_fp32_nodes"] == ["stem/conv"] and spec["keep_fp32_op_types"] == ["Gemm"]
    layers = load_layers(tmp_path / "m.layers.json").layers
    # the Gemm's layer computes in FP32 (stem/conv is fused with its FP16 batch-norm and Relu: a mixed kernel)
    kept = [ly for ly in layers if "head/fc" in ly.onnx_nodes]
    assert kept and all(ly.precision == "FP32" for ly in kept), [(ly.name, ly.precision) for ly in kept]
    assert any(ly.precision == "FP16" for ly in layers if "block1/a/conv" in ly.onnx_nodes)
    typo = run("build", model, "-o", str(tmp_path / "t.plan"), "--precision", "fp16", "--keep-fp32", "stem/cnov",
               *shapes)
    assert typo.returncode == 2 and "stem/cnov" in typo.stderr and "stem/conv" in typo.stderr


# ---------------------------------------------------------------------------------------------- models users bring


@pytest.fixture(scope="module")
def intake_dir(tmp_path_factory):
    from tests import onnx_models

    return onnx_models.write_intake(tmp_path_factory.mktemp("intake"))


def test_inspect_reads_a_minus_one_dim_as_dynamic_and_proposes_a_profile(run, intake_dir):
    out = run("inspect", str(intake_dir / "neg_dim.onnx"), "--no-parse")
    assert out.returncode == 0, out.stderr
    assert "input  x: float32 [?, 3, 16, 16]  (dynamic)" in out.stdout
    assert "warning: Input 'x' declares dimension 0 = -1" in out.stdout and "treated as dynamic" in out.stdout
    assert ("profile (a proposal to edit): --min-shapes x:1x3x16x16 --opt-shapes x:1x3x16x16 "
            "--max-shapes x:8x3x16x16") in out.stdout


def test_inspect_and_build_propose_equal_sizes_for_dims_sharing_a_name_and_say_why(run, intake_dir):
    model = str(intake_dir / "shared_sym_dims.onnx")
    out = run("inspect", model, "--no-parse")
    assert "--min-shapes image:1x3x16x16 --opt-shapes image:1x3x64x64 --max-shapes image:8x3x128x128" in out.stdout
    assert "Input 'image' dims 2 and 3 share the symbolic name 'S'" in out.stdout
    out = run("build", model, "-o", "x.plan")  # no profile: the error proposes one, and why H and W are equal
    assert out.returncode == 2
    assert "share the symbolic name 'S'" in out.stderr and "--opt-shapes image:1x3x64x64" in out.stderr
    out = run("inspect", str(intake_dir / "shared_batch_seq.onnx"), "--no-parse")
    assert "Dim 1 of 'hidden' and dim 1 of 'mask' share the symbolic name 'seq'" in out.stdout


def test_build_with_a_profile_giving_shared_dims_different_sizes_is_exit_2_naming_input_dims_and_name(run, intake_dir,
                                                                                                   tmp_path):
    # the zoo's reproduction: today the build ran and failed with only "Invalid Engine … see the build log"
    out = run("build", str(intake_dir / "shared_sym_dims.onnx"), "-o", "x.plan", "--min-shapes", "image:1x3x16x16",
              "--opt-shapes", "image:2x3x32x48", "--max-shapes", "image:4x3x64x64")
    assert out.returncode == 2, out.stderr
    assert ("Input 'image' dims 2 and 3 share the symbolic name 'S', so TensorRT treats them as one size and needs "
            "equal values; the opt shapes give 32 (dim 2 of 'image'), 48 (dim 3 of 'image')") in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "x.plan").exists()


@pytest.mark.slow
def test_an_already_quantized_model_builds_with_precision_int8_and_no_calibration_data(run, intake_dir, tmp_path):
    from workbench.layers import load_layers

    model = str(intake_dir / "qdq_cnn.onnx")
    out = run("inspect", model, "--no-parse")
    assert "quantization: explicitly quantized (Q/DQ: 10 Quantize/Dequantize pairs, 4 quantized weights, INT8)" \
        in out.stdout
    shapes: list[str] = []  # a static input
    out = run("build", model, "-o", "q.plan", "--precision", "int8", *shapes)
    assert out.returncode == 0, out.stderr  # was: "INT8 needs calibration data"
    assert "INT8, the model's own Q/DQ" in out.stderr
    layers = load_layers(tmp_path / "q.layers.json").layers
    assert any(ly.precision == "INT8" and "/0/Conv" in ly.onnx_nodes for ly in layers)
    listing = run("layers", "q.plan")
    assert listing.returncode == 0 and "INT8" in listing.stdout
    out = run("build", model, "-o", "r.plan", "--precision", "int8", "--random-calibration", *shapes)
    assert out.returncode == 2 and "already explicitly quantized" in out.stderr and "takes no calibration" in out.stderr
    out = run("build", model, "-o", "h.plan", "--precision", "fp16", *shapes)
    assert out.returncode == 2 and "converting a Q/DQ model to FP16 is not supported" in out.stderr
    assert not (tmp_path / "r.plan").exists() and not (tmp_path / "h.plan").exists()


def test_quantizing_an_already_quantized_model_again_is_exit_2_saying_why(run, intake_dir, tmp_path):
    out = run("quantize", str(intake_dir / "qdq_cnn.onnx"), "-o", "again.onnx", "--random-calibration")
    assert out.returncode == 2, out.stderr
    assert "'qdq_cnn.onnx' is already explicitly quantized" in out.stderr and "Build it as it is" in out.stderr
    assert not (tmp_path / "again.onnx").exists()


def test_layers_given_a_model_or_another_file_is_bad_input_saying_what_it_is(run, tmp_path, models_dir):
    """`layers` reads what a build made: an ONNX model (by its suffix or its content), an archive or any other
    file is exit 2 naming what the file is and what to pass, never "the build log has no listing" (exit 1)."""
    import shutil
    import tarfile

    shutil.copyfile(models_dir / "static_mlp.onnx", tmp_path / "mlp.onnx")
    shutil.copyfile(models_dir / "static_mlp.onnx", tmp_path / "weights.pb")  # ONNX under another suffix
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)) * 16)
    (tmp_path / "notes.txt").write_text("no listing here\n")
    with tarfile.open(tmp_path / "bundle.tgz", "w:gz") as tf:
        tf.add(tmp_path / "mlp.onnx", "mlp.onnx")
    for name, words in [("mlp.onnx", "is an ONNX model, not a build"), ("weights.pb", "is an ONNX model"),
                        ("noise.bin", "is neither a plan nor a build log"), ("notes.txt", "is neither a plan nor"),
                        ("bundle.tgz", "is an archive")]:
        out = run("layers", name)
        assert out.returncode == 2, (name, out.returncode, out.stderr)
        assert f"'{name}' {words}" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert "build log has no engine layer listing" not in out.stderr
    assert "trt-workbench build mlp.onnx" in run("layers", "mlp.onnx").stderr


def test_inspect_of_an_archive_says_it_is_an_archive_and_what_to_do(run, tmp_path, models_dir):
    import tarfile

    with tarfile.open(tmp_path / "x.tgz", "w:gz") as tf:
        tf.add(models_dir / "static_mlp.onnx", "static_mlp.onnx")
    out = run("inspect", "x.tgz")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "'x.tgz' is an archive" in out.stderr and "trt-workbench build x.tgz" in out.stderr, out.stderr
    assert "nested too deeply" not in out.stderr


def test_the_note_that_the_engine_inspector_cannot_run_is_printed_once(run, tmp_path, models_dir):
    from workbench.backends import backend_info

    if backend_info("tensorrt-rtx").can_run_engines:
        pytest.skip("this machine deserializes plans: the inspector runs and there is no note")
    assert run("build", str(models_dir / "static_mlp.onnx"), "-o", "mlp.plan").returncode == 0
    out = run("layers", "mlp.plan")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("inspector cannot run") == 1, out.stderr
    assert out.stderr.count("using the layer listing saved at build time") == 1
