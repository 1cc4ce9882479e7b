"""The bundled sample models: a user picks one from the catalog, and it opens, runs and builds.

Everything here reads the committed files in ``sample_models/`` (through :mod:`workbench.samples`), and
checks that ``sample_models/generate.py`` still makes exactly those files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from workbench.errors import ModelError
from workbench.samples import Sample, get_sample, list_samples, samples_dir

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "sample_models" / "generate.py"
SAMPLES = list_samples()
EXPECTED_NAMES = {"cnn_residual", "dynamic_2axis", "transformer_block", "digits_mlp"}


def _ids(samples: list[Sample]) -> list[str]:
    return [s.name for s in samples]


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _bind_output_shape(model: onnx.ModelProto, output: str, feeds: dict[str, np.ndarray]) -> list[int]:
    """The output's declared shape with its named dims (batch, seq, ...) bound from the fed input shapes."""
    bound: dict[str, int] = {}
    for inp in model.graph.input:
        for dim, size in zip(inp.type.tensor_type.shape.dim, feeds[inp.name].shape, strict=True):
            if dim.dim_param:
                bound[dim.dim_param] = size
    out = next(o for o in model.graph.output if o.name == output)
    return [bound[d.dim_param] if d.dim_param else d.dim_value for d in out.type.tensor_type.shape.dim]


# ---------------------------------------------------------------------------------------------- catalog


def test_catalog_lists_every_sample_with_its_files_and_profiles():
    assert set(_ids(SAMPLES)) == EXPECTED_NAMES
    for sample in SAMPLES:
        assert sample.path.is_file(), sample.path
        assert sample.path.parent == samples_dir()
        assert sample.title and sample.description and sample.shows
        model = onnx.load(str(sample.path), load_external_data=False)
        graph_inputs = {i.name for i in model.graph.input}
        assert sample.suggested_profiles, f"{sample.name} has no suggested profile"
        for profile in sample.suggested_profiles:
            assert set(profile) == {"min", "opt", "max"}
            assert set(profile["min"]) == set(profile["opt"]) == set(profile["max"]) == graph_inputs
            for name in graph_inputs:
                lo, opt, hi = (np.array(profile[k][name]) for k in ("min", "opt", "max"))
                assert (lo <= opt).all() and (opt <= hi).all(), (sample.name, name)
        # the profiles convert into build-spec profiles unchanged
        assert len(sample.profiles()) == len(sample.suggested_profiles)

    digits = get_sample("digits_mlp")
    assert digits.calibration_data is not None and digits.calibration_data.is_file()
    assert digits.test_data is not None and digits.test_data.is_file()
    others = [s for s in SAMPLES if s.name != "digits_mlp"]
    assert all(s.calibration_data is None and s.test_data is None for s in others)


def test_asking_for_an_unknown_sample_names_the_valid_ones():
    with pytest.raises(ModelError) as info:
        get_sample("resnet50")
    assert "resnet50" in info.value.message
    assert all(name in info.value.hint for name in EXPECTED_NAMES)


def test_samples_folder_can_be_moved_with_an_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SAMPLES", str(tmp_path))
    with pytest.raises(ModelError, match="No sample catalog"):
        list_samples()

    entry = json.loads((REPO / "sample_models" / "catalog.json").read_text())[0]
    (tmp_path / "catalog.json").write_text(json.dumps([entry]))
    (only,) = list_samples()
    assert only.name == entry["name"]
    assert only.path == tmp_path / entry["file"]


# ------------------------------------------------------------------------------------------- the models


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_sample_is_a_small_valid_opset17_model_with_named_nodes(sample: Sample):
    onnx.checker.check_model(str(sample.path), full_check=True)
    model = onnx.load(str(sample.path))
    assert sample.path.stat().st_size < 1_000_000
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    names = [n.name for n in model.graph.node]
    assert all(names), "every node needs a name for the fusion report"
    assert len(set(names)) == len(names), "node names must be unique"


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_sample_runs_in_onnx_runtime_at_both_ends_of_its_profile(sample: Sample):
    sess = _session(sample.path)
    model = onnx.load(str(sample.path))
    rng = np.random.default_rng(0)
    for profile in sample.suggested_profiles:
        for which in ("min", "max"):
            feeds = {name: rng.random(shape, dtype=np.float32) for name, shape in profile[which].items()}
            outputs = sess.run(None, feeds)
            for meta, value in zip(sess.get_outputs(), outputs, strict=True):
                assert list(value.shape) == _bind_output_shape(model, meta.name, feeds), (which, meta.name)
                assert np.isfinite(value).all(), (which, meta.name)


def test_digits_classifier_is_accurate_on_its_held_out_split():
    digits = get_sample("digits_mlp")
    with np.load(digits.test_data, allow_pickle=False) as test:
        assert sorted(test.files) == ["input", "label"]
        x, labels = test["input"], test["label"]
    assert x.dtype == np.float32 and x.shape[1:] == (64,) and labels.dtype == np.int64
    assert len(x) == len(labels) and set(np.unique(labels)) == set(range(10))

    (logits,) = _session(digits.path).run(None, {"input": x})
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    assert accuracy >= 0.9, f"accuracy {accuracy:.3f} on {len(labels)} held-out digits"


def test_digits_calibration_data_is_one_plain_input_array():
    digits = get_sample("digits_mlp")
    with np.load(digits.calibration_data, allow_pickle=False) as calib:
        assert calib.files == ["input"]
        x = calib["input"]
    assert x.dtype == np.float32 and x.shape == (256, 64)
    assert 0.0 <= x.min() and x.max() <= 1.0, "pixels are scaled to [0, 1] like the test split"


# --------------------------------------------------------------------------------------- determinism


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("regenerated")
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_generator_reproduces_the_committed_files(regenerated: Path):
    committed = REPO / "sample_models"
    random_weights = [s.path.name for s in SAMPLES if s.name != "digits_mlp"]
    for fname in [*random_weights, "catalog.json"]:
        assert (regenerated / fname).read_bytes() == (committed / fname).read_bytes(), fname
    # .npz files are zip archives with time stamps: compare their arrays instead
    for fname in ("digits_calib.npz", "digits_test.npz"):
        with np.load(regenerated / fname, allow_pickle=False) as new, np.load(committed / fname) as old:
            assert new.files == old.files
            for key in old.files:
                assert new[key].dtype == old[key].dtype and np.array_equal(new[key], old[key]), (fname, key)


def test_generator_retrains_the_same_digits_model(regenerated: Path):
    new_bytes = (regenerated / "digits_mlp.onnx").read_bytes()
    old_bytes = (REPO / "sample_models" / "digits_mlp.onnx").read_bytes()
    if new_bytes == old_bytes:
        return
    # Not byte-identical: the graph must still be the same, only the trained weight values may differ.
    new, old = onnx.load_from_string(new_bytes), onnx.load_from_string(old_bytes)
    for model in (new, old):
        for init in model.graph.initializer:
            init.ClearField("raw_data")
    assert new.SerializeToString() == old.SerializeToString(), "the digits_mlp graph itself changed"
    pytest.skip(
        "digits_mlp weights retrained on this CPU differ from the committed ones: scikit-learn trains through "
        "OpenBLAS, whose kernels depend on the CPU type (OPENBLAS_CORETYPE=Sandybridge vs Haswell changes "
        "them); the graph is identical"
    )


# ------------------------------------------------------------------------------------ TensorRT-RTX


BUILD_SCRIPT = """
import sys
from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile
import json
model, plan, profiles = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
trt_profiles = []
for p in profiles:
    prof = Profile()
    for name in p["min"]:
        prof.add(name, p["min"][name], p["opt"][name], p["max"][name])
    trt_profiles.append(prof)
data = EngineBytesFromNetwork(NetworkFromOnnxPath(model), config=CreateConfig(profiles=trt_profiles))()
open(plan, "wb").write(bytes(data))
print("built with", "tensorrt_rtx" if "tensorrt_rtx" in sys.modules else "another TensorRT")
"""


@pytest.mark.slow
@pytest.mark.parametrize("sample", SAMPLES, ids=_ids(SAMPLES))
def test_sample_builds_with_tensorrt_rtx_over_its_suggested_profiles(sample: Sample, tmp_path):
    if importlib.util.find_spec("tensorrt_rtx") is None:
        pytest.skip("TensorRT-RTX (pip tensorrt-rtx-cu13) is not installed")
    plan = tmp_path / f"{sample.name}.plan"
    env = {**os.environ, "POLYGRAPHY_USE_TENSORRT_RTX": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BUILD_SCRIPT,
            str(sample.path),
            str(plan),
            json.dumps(sample.suggested_profiles),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "built with tensorrt_rtx" in proc.stdout
    assert plan.stat().st_size > 0
