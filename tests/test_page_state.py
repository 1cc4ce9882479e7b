"""What the pages show follows the user's newest choice (issue #12, state bugs): the model last uploaded, picked,
opened as a sample or by the demo; the Build page's form and results belong to the current model and to the build
shown; a model is matched to a bundled sample by content, never by its file name. Through Streamlit's AppTest."""

from __future__ import annotations

import re

import onnx
import pytest
from streamlit.testing.v1 import AppTest

from tests import onnx_models
from tests.conftest import open_page
from workbench import ui
from workbench.samples import get_sample

TIMEOUT = 60


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _recent(at: AppTest):
    """The "Recent models" picker (its key changes with the current model)."""
    return next(s for s in at.selectbox if s.label == "Recent models")


def _heading(at: AppTest) -> str:
    return at.subheader[0].value


def _profiles():
    return get_sample("digits_mlp").profiles()


def _open_sample(at: AppTest, name: str) -> AppTest:
    at.selectbox(key="model.sample").select(name).run()
    return at.button(key="model.open_sample").click().run()


def test_an_upload_after_a_sample_opens_the_upload_everywhere(app_ws):
    at = _open_sample(open_page("model", TIMEOUT), "cnn_residual")
    assert _heading(at) == "cnn_residual.onnx"
    assert _recent(at).value == at.session_state[ui.MODEL_DIGEST]

    at.file_uploader(key="model.uploader").upload("digits_mlp.onnx", get_sample("digits_mlp").path.read_bytes()).run()
    _no_exception(at)
    uploaded = app_ws.import_path(get_sample("digits_mlp").path)
    assert at.session_state[ui.MODEL_DIGEST] == uploaded.digest
    assert _heading(at) == "digits_mlp.onnx"
    assert _recent(at).value == uploaded.digest  # the picker says so too
    at.run()  # and it stays: the picker's old value does not switch the model back on the next rerun
    assert _heading(at) == "digits_mlp.onnx"
    at.switch_page("pages/build.py").run()
    assert any("digits_mlp.onnx" in c.value for c in at.caption)


def test_a_pick_then_a_sample_then_the_demo_each_win(app_ws):
    cnn = app_ws.import_path(get_sample("cnn_residual").path)
    at = open_page("model", TIMEOUT)
    _recent(at).select(cnn.digest).run()
    assert _heading(at) == "cnn_residual.onnx"
    at = _open_sample(at, "transformer_block")
    assert _heading(at) == "transformer_block.onnx"
    at.run()
    assert _heading(at) == "transformer_block.onnx"
    _recent(at).select(cnn.digest).run()
    assert _heading(at) == "cnn_residual.onnx"
    at.button(key="demo.start").click().run()
    _no_exception(at)
    assert _heading(at) == "digits_mlp.onnx"
    at.run()
    assert _heading(at) == "digits_mlp.onnx"
    app_ws.jobs.cancel(at.session_state[ui.DEMO_JOB])


def test_fusion_keeps_the_current_model_after_a_build_of_another_was_shown(app_ws):
    from workbench.spec import BuildSpec

    mlp = app_ws.import_path(get_sample("digits_mlp").path)
    job = app_ws.jobs.wait(app_ws.submit_build(mlp, BuildSpec(profiles=_profiles())), timeout=300)
    assert job.status == "succeeded", job.error
    cnn = app_ws.import_path(get_sample("cnn_residual").path)
    # The fusion report of the MLP was open; then the user opened the CNN: Fusion is about the CNN.
    at = open_page("fusion", TIMEOUT, **{ui.FUSION_JOB: job.id, ui.MODEL_DIGEST: cnn.digest})
    _no_exception(at)
    assert at.session_state[ui.MODEL_DIGEST] == cnn.digest
    assert any("No finished build of **cnn_residual.onnx**" in i.value for i in at.info)


def test_the_build_page_never_shows_another_models_build(app_ws):
    from workbench.spec import BuildSpec

    mlp = app_ws.import_path(get_sample("digits_mlp").path)
    job = app_ws.jobs.wait(app_ws.submit_build(mlp, BuildSpec(precision="fp16", profiles=_profiles())), timeout=300)
    cnn = app_ws.import_path(get_sample("cnn_residual").path)
    at = open_page("build", TIMEOUT, **{ui.BUILD_JOB: job.id, ui.MODEL_DIGEST: cnn.digest})
    _no_exception(at)
    assert not any(job.id in m.value for m in at.markdown), "the MLP's build is shown on the CNN's page"
    assert any("Fill in the form" in i.value for i in at.info)
    assert at.selectbox(key="build.precision").value == "fp32"  # the form is the CNN's, fresh

    # Back on the MLP: its build on the right, its settings on the left.
    at = open_page("build", TIMEOUT, **{ui.BUILD_JOB: job.id, ui.MODEL_DIGEST: mlp.digest})
    assert any(f"`job {job.id}`" in m.value for m in at.markdown)
    assert at.selectbox(key="build.precision").value == "fp16"


def test_a_rebuild_from_accuracy_opens_with_its_own_settings_in_the_form(app_ws):
    """Rebuild keeping culprits (INT8 on the sample's data): the form shows INT8, the kept nodes, the same data
    and calibrator, so pressing Build again builds what is on screen."""
    from workbench.spec import BuildSpec, CalibrationSpec

    s = get_sample("digits_mlp")
    mlp = app_ws.import_path(s.path)
    spec = BuildSpec(precision="int8", profiles=_profiles(), calibration=CalibrationSpec(data_path=str(s.calibration_data),
                                                                   calibrator="minmax"))
    first = app_ws.jobs.wait(app_ws.submit_build(mlp, spec), timeout=300)
    assert first.status == "succeeded", first.error
    node = next(n for n in ui.node_choices.__wrapped__(mlp.digest) if not n[0].isupper())
    rebuild = app_ws.rebuild_keeping_float(first.id, [node])
    at = open_page("build", TIMEOUT, **{ui.BUILD_JOB: rebuild, ui.MODEL_DIGEST: mlp.digest})
    _no_exception(at)
    assert at.selectbox(key="build.precision").value == "int8"
    assert at.multiselect(key="build.exclude").value == [node]
    assert at.selectbox(key="build.calibrator").value == "minmax"
    assert at.radio(key="build.calib.source").value == "sample"
    assert any(f"`job {rebuild}`" in m.value for m in at.markdown)
    app_ws.jobs.wait(rebuild, timeout=300)


def test_a_users_model_named_like_a_sample_gets_no_sample_data(app_ws, tmp_path):
    """Their own digits_mlp.onnx (another graph, other input names): no sample calibration or test data offered,
    no red errors on Quantize and Accuracy."""
    path = tmp_path / "digits_mlp.onnx"
    onnx.save(onnx_models.tiny_cnn(), str(path))
    own = app_ws.import_upload(path.read_bytes(), "digits_mlp.onnx")
    assert own.name == "digits_mlp.onnx"
    at = open_page("quantize", TIMEOUT, **{ui.MODEL_DIGEST: own.digest})
    _no_exception(at)
    assert "sample" not in at.radio(key="quantize.calib.source").options
    assert "sample" not in at.radio(key="quantize.test.source").options
    assert not at.error, [e.value for e in at.error]
    at = open_page("accuracy", TIMEOUT, **{ui.MODEL_DIGEST: own.digest})
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert "test" not in at.radio(key="accuracy.data_source").options
    # The real sample still gets its own data.
    real = app_ws.import_path(get_sample("digits_mlp").path)
    at = open_page("quantize", TIMEOUT, **{ui.MODEL_DIGEST: real.digest})
    assert at.radio(key="quantize.calib.source").value == "sample"


def test_build_is_disabled_and_says_why_after_a_failed_parser_check(app_ws, models_dir):
    ref = app_ws.import_path(models_dir / "custom_op.onnx")
    result, job_id = app_ws.parse_check(ref, "tensorrt-rtx")
    if result is None:
        app_ws.jobs.wait(job_id, timeout=300)
        result, _ = app_ws.parse_check(ref, "tensorrt-rtx")
    assert result is not None and not result["ok"]
    at = open_page("build", TIMEOUT, **{ui.MODEL_DIGEST: ref.digest})
    _no_exception(at)
    assert at.button(key="build.submit").disabled
    said = " ".join(e.value for e in at.error)
    assert "rejects 1 node(s)" in said and "my_fancy_node" in said and "a build would fail" in said


@pytest.mark.parametrize("name", ["cnn_residual"])
def test_a_sample_is_recognised_by_content_under_any_name(app_ws, name):
    from workbench.samples import sample_for

    renamed = app_ws.import_upload(get_sample(name).path.read_bytes(), "my_model.onnx")
    assert sample_for(renamed) is not None and sample_for(renamed).name == name
    assert ui.sample_profiles(renamed)  # its documented profile is proposed under the new name too


def test_builds_and_comparisons_can_be_told_apart(app_ws, tmp_path):
    """Two models called digits_mlp.onnx, a build and its culprit rebuild: titles, the Engines table and the
    download names all say which is which."""
    from workbench.accuracy.options import comparison_label
    from workbench.spec import BuildSpec

    s = get_sample("digits_mlp")
    mlp = app_ws.import_path(s.path)
    path = tmp_path / "digits_mlp.onnx"
    onnx.save(onnx_models.static_mlp(), str(path))
    own = app_ws.import_upload(path.read_bytes(), "digits_mlp.onnx")
    first = app_ws.jobs.wait(app_ws.submit_build(mlp, BuildSpec(precision="fp16", profiles=_profiles())), 300)
    other = app_ws.jobs.wait(app_ws.submit_build(own, BuildSpec(precision="fp16")), 300)
    node = next(n for n in ui.node_choices.__wrapped__(mlp.digest) if not n[0].isupper())
    again = app_ws.jobs.wait(app_ws.rebuild_keeping_float(first.id, [node]), 300)
    assert first.status == other.status == again.status == "succeeded"
    log = app_ws.jobs.read_log(first.id)[0]  # a log without noise the user never asked about
    assert "'colored' module" not in log and "\x1b[" not in log
    assert not any("timing-cache setting was ignored" in n for n in first.result.get("notes", []))
    titles = {first.title, other.title, again.title}
    assert len(titles) == 3, titles
    assert mlp.short[:8] in first.title and own.short[:8] in other.title
    assert f"1 kept in FP32 ({node})" in again.title and "kept" not in first.title
    names = {ui.download_name(j, ".plan") for j in (first, other, again)}
    assert names == {f"digits_mlp.fp16.{j.id[:8]}.plan" for j in (first, other, again)}

    at = open_page("engines", TIMEOUT)
    table = at.dataframe[0].value
    assert set(table["model id"]) == {mlp.short[:8], own.short[:8]}
    assert len(set(table["build"])) == 3

    # A comparison that could not run is marked, as a finished one says PASS or FAIL.
    bad = app_ws.jobs.submit("compare", {"model_path": str(mlp.path), "request": {}}, title="digits_mlp.onnx: x",
                             model_digest=mlp.digest, model_name=mlp.name)
    job = app_ws.jobs.wait(bad, timeout=120)
    assert job.status == "failed"
    assert comparison_label(job).endswith(" · ERROR")


def test_accuracy_compares_all_the_data_and_says_how_many_samples(app_ws):
    """Held-out data scored on Quantize and on Accuracy give one accuracy: Accuracy no longer stops at 256 samples
    silently; it compares them all by default and says how many."""
    import numpy as np

    s = get_sample("digits_mlp")
    n = len(np.load(s.test_data)["label"])
    assert n > 256
    mlp = app_ws.import_path(s.path)
    at = open_page("accuracy", TIMEOUT, **{ui.MODEL_DIGEST: mlp.digest})
    at.radio(key="accuracy.source").set_value("fp16").run()
    assert at.radio(key="accuracy.data_source").value == "test"
    at.button(key="accuracy.submit").click().run()
    _no_exception(at)
    job = app_ws.jobs.wait(at.session_state["accuracy.job_id"], timeout=300)
    assert job.status == "succeeded", job.error
    at.run()
    assert any(f"{n} samples compared" in c.value for c in at.caption), [c.value for c in at.caption]
    assert not any(".." in c.value for c in at.caption if c.value.startswith("Source:"))


def test_quoted_names_are_code_in_markdown():
    assert ui.quoted_as_code("'__myl_<Ops>' is a kernel; the convolution's output") == (
        "`__myl_<Ops>` is a kernel; the convolution's output")


def test_data_errors_name_the_users_file_and_the_box(app_ws, tmp_path):
    """Held-out data whose arrays do not fit the model: the error names the user's file (never the stored
    '<digest>-name.npz') and says it is about the held-out box, not the calibration box."""
    import io

    import numpy as np

    mlp = app_ws.import_path(get_sample("digits_mlp").path)
    buf = io.BytesIO()
    np.savez(buf, input=np.zeros((40, 10), np.float32), label=np.zeros(40, np.int64))  # 10 features, not 64
    at = open_page("quantize", TIMEOUT, **{ui.MODEL_DIGEST: mlp.digest})
    at.radio(key="quantize.test.source").set_value("upload").run()
    at.file_uploader(key="quantize.test.upload").upload("my_heldout.npz", buf.getvalue()).run()
    _no_exception(at)
    said = [e.value for e in at.error]
    assert any(s.startswith("**Held-out data my_heldout.npz:**") for s in said), said
    assert not any(re.search(r"[0-9a-f]{24}-my_heldout", s) for s in said), said


def test_the_demo_explains_an_int8_plan_larger_than_fp32():
    note = ui.plan_size_note({"plan_bytes": 40_000, "layers": 4}, {"plan_bytes": 60_000, "layers": 9})
    assert "larger than the FP32 one (59 vs 39 KiB)" in note and "9 engine layers against 4" in note


def _xy_npz(n: int = 40) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x=rng.normal(size=(n, 64)).astype(np.float32), y=rng.integers(0, 10, n).astype(np.int64))
    return buf.getvalue()


def test_held_out_data_with_other_array_names_can_be_mapped_on_the_page(app_ws):
    import numpy as np

    mlp = app_ws.import_path(get_sample("digits_mlp").path)
    at = open_page("quantize", TIMEOUT, **{ui.MODEL_DIGEST: mlp.digest})
    at.radio(key="quantize.test.source").set_value("upload").run()
    at.file_uploader(key="quantize.test.upload").upload("xy.npz", _xy_npz()).run()
    _no_exception(at)
    assert any("xy.npz holds `x`, `y`; the model reads `input`" in i.value for i in at.info)
    at.selectbox(key="quantize.test.upload.map.input").select("x").run()
    at.selectbox(key="quantize.test.upload.map.label").select("y").run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any(c.value.startswith("40 samples in xy.mapped-") for c in at.caption), [c.value for c in at.caption]
    shown = next(c.value for c in at.caption if c.value.startswith("40 samples in ")).removeprefix("40 samples in ")
    mapped = next(p for p in app_ws.ws.root.rglob("*xy.mapped-*.npz") if p.name.endswith(shown))
    with np.load(mapped) as npz:
        assert sorted(npz.files) == ["input", "label"] and npz["input"].shape == (40, 64)


def test_the_cli_maps_an_npz_and_says_what_is_wrong(tmp_path):
    import numpy as np

    from workbench.cli import main

    src = tmp_path / "xy.npz"
    src.write_bytes(_xy_npz())
    out = tmp_path / "mapped.npz"
    assert main(["map-data", str(src), "-o", str(out), "--map", "input=x", "label=y"]) == 0
    with np.load(out) as npz:
        assert sorted(npz.files) == ["input", "label"]
    assert main(["map-data", str(src), "-o", str(out), "--map", "input=z"]) == 2
    assert main(["map-data", str(src), "-o", str(out), "--map", "input"]) == 2


def test_accuracies_read_as_percentages_in_the_calibrator_table():
    import pandas as pd

    frame = pd.DataFrame({"calibrator": ["minmax"], "accuracy_fp32": [0.9819], "accuracy_qdq": [0.9766],
                          "max_abs_err": [0.0123]})
    config = ui.number_columns(frame, labels=ui.SCORE_COLUMNS)
    assert config["accuracy_fp32"]["type_config"]["format"] == "percent"
    assert config["accuracy_qdq"]["label"] == "top-1 Q/DQ"
    assert config["max_abs_err"]["type_config"]["format"] != "percent"


def test_the_before_after_figure_reads_full_values_from_the_input_on():
    from types import SimpleNamespace as NS

    from workbench.reports.accuracy_figures import before_after_figure

    def res(scale: float):
        return NS(tensors=[NS(order=o, rel_rms=scale * (o + 2), name=f"t{o}") for o in (-1, 0, 1, 2)])

    fig = before_after_figure(NS(before=res(1e-3), after=res(1e-4), added_exclusions=("fc1",)))
    assert fig.layout.yaxis.tickformat == ".2~g"  # 0.0003, not 300µ
    assert list(fig.layout.xaxis.ticktext) == ["input", "0", "1", "2"]
