"""Page logic through Streamlit's AppTest: every page opens fresh and with a model, never with a traceback."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO, open_page
from workbench import ui
from workbench.samples import get_sample

PAGES = ["model", "build", "engines", "fusion", "accuracy", "settings", "quantize"]
TIMEOUT = 60


def _page(name: str, **state) -> AppTest:
    return open_page(name, TIMEOUT, **state)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("name", [p for p in PAGES if (REPO / "pages" / f"{p}.py").exists()])
def test_every_page_opens_on_a_fresh_workspace(app_ws, name):
    at = _page(name)
    _no_exception(at)
    assert at.title, f"page {name} shows no title"
    if name not in ("model", "settings", "engines"):
        assert any("No model open yet" in i.value for i in at.info)


@pytest.mark.parametrize("name", [p for p in PAGES if (REPO / "pages" / f"{p}.py").exists()])
def test_every_page_opens_with_a_sample_model(app_ws, name):
    ref = app_ws.import_path(get_sample("cnn_residual").path)
    at = _page(name, **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]


def test_opening_a_sample_shows_its_summary_and_dynamic_inputs(app_ws):
    at = _page("model")
    at.selectbox(key="model.sample").select("cnn_residual").run()
    at.button(key="model.open_sample").click().run()
    _no_exception(at)
    assert at.session_state[ui.MODEL_DIGEST]
    assert at.subheader[0].value == "cnn_residual.onnx"
    metrics = {m.label: m.value for m in at.metric}
    from workbench.model import summarize

    summary = summarize(get_sample("cnn_residual").path)
    assert metrics["Nodes"] == f"{summary.node_count:,}"
    assert any("batch" in str(df.value.to_dict()) for df in at.dataframe)


def test_a_garbage_upload_is_a_clear_error_and_the_app_stays_up(app_ws):
    with pytest.raises(Exception) as err:
        app_ws.import_upload(b"this is not onnx", "notes.onnx")
    assert "notes.onnx" in str(getattr(err.value, "message", err.value))
    at = _page("model")  # still opens, nothing stored
    _no_exception(at)
    assert app_ws.models() == []


def test_the_build_page_proposes_a_profile_and_queues_a_real_build(app_ws):
    ref = app_ws.import_path(get_sample("cnn_residual").path)
    at = _page("build", **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    suggested = get_sample("cnn_residual").profiles()[0].shapes["input"]  # the sample's documented profile
    example = "x".join(map(str, suggested.opt))
    assert any(f"e.g. `{example}`" in m.value for m in at.markdown)  # the model's own shape, not an ImageNet one
    for which in ("min", "opt", "max"):
        assert at.text_input(key=f"build.p0.input.{which}").value == "x".join(map(str, getattr(suggested, which)))
    at.text_input(key="build.p0.input.opt").input("2x3x32x32").run()
    at.text_input(key="build.p0.input.max").input("4x3x32x32").run()
    at.button(key="build.submit").click().run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    job_id = at.session_state[ui.BUILD_JOB]
    job = app_ws.jobs.wait(job_id, timeout=300)
    assert job.status == "succeeded", job.error
    assert job.payload["spec"]["profiles"][0]["input"]["max"] == [4, 3, 32, 32]
    # Back on the page after the build: results with downloads and the equivalent commands.
    at = _page("build", **{ui.MODEL_DIGEST: ref.digest, ui.BUILD_JOB: job_id})
    _no_exception(at)
    assert any("polygraphy convert" in c.value for c in at.code)
    assert all(" \\\n    --" in c.value for c in at.code)  # one option a line: none hidden past the edge
    # Next step: the fusion report of this very build.
    at.button(key=f"build.to_fusion.{job_id}").click().run()
    _no_exception(at)
    assert at.session_state[ui.FUSION_JOB] == job_id


def test_the_build_page_keeps_chosen_nodes_in_fp32_in_an_fp16_build(app_ws):
    from workbench.layers import load_layers

    ref = app_ws.import_path(get_sample("cnn_residual").path)
    at = _page("build", **{ui.MODEL_DIGEST: ref.digest})
    at.selectbox(key="build.precision").select("fp16").run()
    at.multiselect(key="build.keep_fp32").select("head/fc").run()
    at.button(key="build.submit").click().run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    job = app_ws.jobs.wait(at.session_state[ui.BUILD_JOB], timeout=300)
    assert job.status == "succeeded", job.error
    assert job.payload["spec"]["keep_fp32_nodes"] == ["head/fc"]
    layers = load_layers(app_ws.jobs.artifact(job.id, "layers.json")).layers
    fc = [ly for ly in layers if "head/fc" in ly.onnx_nodes]
    convs = [ly for ly in layers if any(n.endswith("/conv") for n in ly.onnx_nodes)]
    assert fc and all(ly.precision == "FP32" for ly in fc), [(ly.name, ly.precision) for ly in fc]
    assert convs and all(ly.precision == "FP16" for ly in convs)  # the rest really is FP16


def test_the_build_page_names_the_input_and_dim_of_a_bad_profile(app_ws):
    ref = app_ws.import_path(get_sample("cnn_residual").path)
    at = _page("build", **{ui.MODEL_DIGEST: ref.digest})
    at.text_input(key="build.p0.input.min").input("32x3x32x32").run()
    at.button(key="build.submit").click().run()
    _no_exception(at)
    assert at.error and "input" in at.error[0].value
    assert ui.BUILD_JOB not in at.session_state
    assert app_ws.builds() == []


def test_engines_page_lists_a_finished_build(app_ws, models_dir):
    from workbench.spec import BuildSpec

    job_id = app_ws.submit_build(app_ws.import_path(models_dir / "static_mlp.onnx"), BuildSpec())
    app_ws.jobs.wait(job_id, timeout=120)
    at = _page("engines")
    _no_exception(at)
    assert list(at.dataframe[0].value["job"]) == [job_id]


def test_settings_page_says_which_backends_are_here_and_that_there_is_no_gpu(app_ws):
    from workbench.backends import gpu_info

    at = _page("settings")
    _no_exception(at)
    table = at.dataframe[0].value
    rtx = table[table["backend"] == "tensorrt-rtx"].iloc[0]
    assert bool(rtx["installed"])
    if not gpu_info().present:
        assert any("No GPU visible" in i.value for i in at.info)
    workspace = " ".join(m.value for m in at.markdown)
    assert str(app_ws.ws.root) in workspace and "WORKBENCH_MAX_PARSE_JOBS" in workspace
    assert any("shares this workspace" in c.value for c in at.caption)


def test_settings_page_notes_are_sentences_in_full_not_cut_off_in_a_table_cell(app_ws):
    from workbench.backends import detect_backends

    at = _page("settings")
    _no_exception(at)
    assert "note" not in at.dataframe[0].value.columns  # a narrow cell showed "TensorRT is not installe…"
    captions = " ".join(c.value for c in at.caption)
    notes = [b.reason or b.run_reason for b in detect_backends() if b.reason or b.run_reason]
    assert notes
    for note in notes:
        assert ui.md(note) in captions, note


def test_quantize_page_calibrates_the_digits_sample_and_offers_the_qdq_model(app_ws):
    ref = app_ws.import_path(get_sample("digits_mlp").path)
    at = _page("quantize", **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    assert at.radio(key="quantize.calib.source").value == "sample"
    at.selectbox(key="quantize.calibrator").select("percentile").run()
    at.button(key="quantize.submit").click().run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    job = app_ws.jobs.wait(at.session_state[ui.QUANTIZE_JOB], timeout=300)
    assert job.status == "succeeded", job.error
    assert job.result["n_quantized_nodes"] > 0
    at = _page("quantize", **{ui.MODEL_DIGEST: ref.digest, ui.QUANTIZE_JOB: job.id})
    _no_exception(at)
    assert any(m.label == "Quantized nodes" and m.value == str(job.result["n_quantized_nodes"]) for m in at.metric)


def test_quantize_page_refuses_random_data_silently_never(app_ws):
    ref = app_ws.import_path(get_sample("digits_mlp").path)
    at = _page("quantize", **{ui.MODEL_DIGEST: ref.digest})
    at.radio(key="quantize.calib.source").set_value("random").run()
    _no_exception(at)
    assert any("accuracy is meaningless" in w.value for w in at.warning)


# ---------------------------------------------------------------------------------------------- models users bring


@pytest.fixture(scope="module")
def intake_dir(tmp_path_factory):
    from tests import onnx_models

    return onnx_models.write_intake(tmp_path_factory.mktemp("intake"))


def test_the_model_page_opens_a_minus_one_dim_model_with_a_warning(app_ws, intake_dir):
    ref = app_ws.import_path(intake_dir / "neg_dim.onnx")
    at = _page("model", **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any("declares dimension 0 = -1" in w.value and "treated as dynamic" in w.value for w in at.warning)
    inputs = at.dataframe[0].value
    assert inputs.loc[0, "shape"] == "[?, 3, 16, 16]" and inputs.loc[0, "dynamic dims"] == "0 (?)"
    at = _page("build", **{ui.MODEL_DIGEST: ref.digest})  # the profile form treats it as any dynamic dim
    _no_exception(at)
    assert [at.text_input(key=f"build.p0.x.{w}").value for w in ("min", "opt", "max")] == [
        "1x3x16x16", "1x3x16x16", "8x3x16x16"]


def test_the_model_page_says_a_qdq_model_is_explicitly_quantized(app_ws, intake_dir):
    ref = app_ws.import_path(intake_dir / "qdq_cnn.onnx")
    at = _page("model", **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    assert any("Explicitly quantized (Q/DQ: 10 Quantize/Dequantize pairs, 4 quantized weights, INT8)" in i.value
               and "no calibration data needed" in i.value for i in at.info)


def test_the_build_page_proposes_equal_sizes_for_dims_sharing_a_name_and_refuses_unequal_ones(app_ws, intake_dir):
    ref = app_ws.import_path(intake_dir / "shared_sym_dims.onnx")
    at = _page("build", **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    for which in ("min", "opt", "max"):
        h, w = at.text_input(key=f"build.p0.image.{which}").value.split("x")[2:]
        assert h == w, (which, h, w)
    assert any("dims 2 and 3 share the symbolic name 'S'" in c.value and "equal" in c.value for c in at.caption)
    at.text_input(key="build.p0.image.opt").input("1x3x64x32").run()
    at.button(key="build.submit").click().run()
    _no_exception(at)
    assert at.error and "Input 'image' dims 2 and 3 share the symbolic name 'S'" in at.error[0].value
    assert "opt shapes give 64 (dim 2 of 'image'), 32 (dim 3 of 'image')" in at.error[0].value
    assert ui.BUILD_JOB not in at.session_state and app_ws.builds() == []


def test_the_build_page_builds_a_qdq_model_as_int8_without_asking_for_calibration_data(app_ws, intake_dir):
    from workbench.layers import load_layers

    ref = app_ws.import_path(intake_dir / "qdq_cnn.onnx")
    at = _page("build", **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    assert at.selectbox(key="build.precision").value == "int8"  # the model's own precision
    assert not [r for r in at.radio if r.key == "build.calib.source"]  # no calibration data asked
    assert any("None needed: the model is explicitly quantized" in i.value for i in at.info)
    at.selectbox(key="build.precision").select("fp16").run()  # would rewrite its Q/DQ nodes: refused up front
    assert any("converting a Q/DQ model to FP16 is not supported" in w.value for w in at.warning)
    assert at.button(key="build.submit").disabled
    at.selectbox(key="build.precision").select("int8").run()
    at.button(key="build.submit").click().run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    job = app_ws.jobs.wait(at.session_state[ui.BUILD_JOB], timeout=300)
    assert job.status == "succeeded", job.error
    assert job.payload["spec"]["precision"] == "int8" and job.payload["spec"]["calibration"] is None
    layers = load_layers(app_ws.jobs.artifact(job.id, "layers.json")).layers
    assert any(ly.precision == "INT8" for ly in layers)


def test_the_quantize_page_does_not_offer_to_quantize_a_qdq_model_again(app_ws, intake_dir):
    ref = app_ws.import_path(intake_dir / "qdq_cnn.onnx")
    at = _page("quantize", **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    assert any("Nothing to quantize" in i.value and "already explicitly quantized" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "quantize.submit"]
