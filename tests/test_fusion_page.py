"""The Fusion page as a user meets it: Streamlit's AppTest over real builds, and Netron drawing the engine graph."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import open_page
from workbench import ui
from workbench.fusion import _SHORT_OPS, engine_as_onnx, job_report
from workbench.samples import get_sample
from workbench.text import md

TIMEOUT = 60


@pytest.fixture(scope="module")
def fp16_build(session_wb):
    from workbench.spec import BuildSpec, profiles_from_args

    ref = session_wb.import_path(get_sample("cnn_residual").path)
    spec = BuildSpec(
        precision="fp16",
        profiles=profiles_from_args(["input:1x3x32x32"], ["input:4x3x32x32"], ["input:16x3x32x32"]),
    )
    job_id = session_wb.submit_build(ref, spec)
    job = session_wb.jobs.wait(job_id, timeout=300)
    assert job.status == "succeeded", job.error
    return job_id


def _page(**state) -> AppTest:
    return open_page("fusion", TIMEOUT, **state)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_a_model_without_builds_points_to_the_build_page(wb, fresh_caches):
    ref = wb.import_path(get_sample("cnn_residual").path)
    at = _page(**{ui.MODEL_DIGEST: ref.digest})
    _ok(at)
    assert any("No finished build" in i.value for i in at.info)


def test_the_summary_shows_the_real_build_numbers(session_wb, cnn_build, fresh_caches):
    job = session_wb.jobs.get(cnn_build)
    _, report = job_report(session_wb.jobs.job_dir(cnn_build))
    at = _page(**{ui.MODEL_DIGEST: job.model_digest, ui.FUSION_JOB: cnn_build})
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ONNX nodes"] == str(report.num_onnx_nodes)
    assert metrics["Engine layers"] == str(report.num_layers)
    assert metrics["Fused"] == str(report.fate_counts["fused"])
    assert metrics["Unaccounted"] == "0"
    assert any(report.summary() in m.value for m in at.markdown)
    assert [t.label for t in at.tabs][:3] == ["Layers", "Graph", "Pictures"]


def test_selecting_a_layer_shows_its_onnx_nodes_and_tensors(session_wb, cnn_build, fresh_caches):
    job = session_wb.jobs.get(cnn_build)
    layers, _ = job_report(session_wb.jobs.job_dir(cnn_build))
    row, layer = max(enumerate(layers.for_profile(0)), key=lambda il: len(il[1].onnx_nodes))
    at = _page(**{ui.MODEL_DIGEST: job.model_digest, ui.FUSION_JOB: cnn_build})
    at.session_state["fusion.table"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    _ok(at)
    assert [s.value for s in at.subheader] == [md(layer.name)]  # as Markdown that shows the name as it is
    frames = [d.value for d in at.dataframe]
    node_table = next(f for f in frames if "fate" in f.columns and "node" in f.columns)
    assert list(node_table["node"]) == list(layer.onnx_nodes)
    tensors = next(f for f in frames if "role" in f.columns)
    assert list(tensors[tensors["role"] == "output"]["name"]) == [t.name for t in layer.outputs]
    assert len(tensors) == len(layer.inputs) + len(layer.outputs) + len(layer.constants)


def test_the_graph_tab_shows_model_and_engine_side_by_side_with_the_selected_layer(
    session_wb, cnn_build, fresh_caches
):
    from urllib.parse import quote

    job = session_wb.jobs.get(cnn_build)
    layers, _ = job_report(session_wb.jobs.job_dir(cnn_build))
    row, layer = max(enumerate(layers.for_profile(0)), key=lambda il: len(il[1].onnx_nodes))
    at = _page(**{ui.MODEL_DIGEST: job.model_digest, ui.FUSION_JOB: cnn_build})
    at.session_state["fusion.table"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    at.session_state["fusion.tab"] = "Graph"  # the selection survives the switch to another tab
    at.run()
    _ok(at)
    model_src, engine_src = (f.proto.src for f in at.get("iframe"))
    assert model_src.endswith("#select=" + ",".join(quote(n, safe="") for n in layer.onnx_nodes))
    assert engine_src.endswith("#select=" + quote(layer.name, safe="")) and "engine_graph.onnx" in engine_src
    assert (session_wb.jobs.job_dir(cnn_build) / "engine_graph.onnx").is_file()


def test_searching_filters_the_layer_table(session_wb, cnn_build, fresh_caches):
    job = session_wb.jobs.get(cnn_build)
    layers, _ = job_report(session_wb.jobs.job_dir(cnn_build))
    at = _page(**{ui.MODEL_DIGEST: job.model_digest, ui.FUSION_JOB: cnn_build})
    at.text_input(key="fusion.search").input("relu").run()
    _ok(at)
    expected = [
        r["name"]
        for r in layers.to_rows()
        if any("relu" in str(r[k]).lower() for k in ("name", "type", "precision", "onnx_nodes", "tactic"))
    ]
    assert expected and list(at.dataframe[0].value["name"]) == expected


def test_two_builds_of_the_model_can_be_compared(session_wb, cnn_build, fp16_build, fresh_caches):
    from workbench.fusion import diff_builds
    from workbench.layers import load_layers

    job = session_wb.jobs.get(cnn_build)
    state = {ui.MODEL_DIGEST: job.model_digest, ui.FUSION_JOB: cnn_build, ui.FUSION_COMPARE_JOB: fp16_build}
    at = _page(**state, **{"fusion.tab": "Compare builds"})
    _ok(at)
    diff = diff_builds(*(load_layers(session_wb.jobs.job_dir(j)) for j in (cnn_build, fp16_build)))
    assert any(diff.summary() in m.value for m in at.markdown)
    assert any(m.value.startswith("**A** (the build picked above)") and "**B**" in m.value for m in at.markdown)
    shown = at.dataframe[0].value
    assert set(shown["node"]) == {c.node for c in diff.changed}
    assert set(shown["presence"]) <= {"A and B", "A only", "B only"}  # said, not "only_a"


def test_the_export_tab_offers_json_csv_and_html(session_wb, cnn_build, fresh_caches):
    job = session_wb.jobs.get(cnn_build)
    at = _page(**{ui.MODEL_DIGEST: job.model_digest, ui.FUSION_JOB: cnn_build, "fusion.tab": "Export"})
    _ok(at)
    labels = [b.label for b in at.get("download_button")]
    assert {"Report (JSON)", "Layers (CSV)", "ONNX nodes (CSV)", "HTML report"} <= set(labels)
    assert not at.dataframe  # the other tabs did not run


def test_opening_a_build_from_the_engines_page_opens_its_model(session_wb, cnn_build, fresh_caches):
    at = _page(**{ui.FUSION_JOB: cnn_build})
    _ok(at)
    assert at.session_state[ui.MODEL_DIGEST] == session_wb.jobs.get(cnn_build).model_digest
    assert at.selectbox(key=ui.FUSION_JOB).value == cnn_build


def netron_draws(layers, folder, tmp_path_factory, report=None) -> None:
    """Publish the engine graph the way the page does and check the bundled Netron draws every layer."""
    from tests.browser_support import browser_skip_reason, chromium, fresh_context, running_app

    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from workbench.netron import NETRON_BASE, prepare_netron, publish_model, viewer_url

    graph = engine_as_onnx(layers, folder / "engine_graph.onnx", report=report)
    with running_app(tmp_path_factory.mktemp("app")) as app, chromium() as browser:
        prepare_netron(app.static_dir / "netron")
        url = viewer_url(publish_model(app.static_dir, graph), netron_base=NETRON_BASE)
        with fresh_context(browser) as (context, guard):
            page = context.new_page()
            page.goto(app.url.rstrip("/") + url)
            page.locator("#canvas .graph-node").first.wait_for(state="attached", timeout=60_000)
            engine = layers.for_profile(0)
            assert page.locator("#canvas .graph-node").count() == len(engine)
            ops = {g.layer: g.op_types for g in report.groups} if report else {}
            for ly in engine[:50]:
                node = page.locator(f'[id="node-name-{ly.name}"]')
                text = node.text_content() or ""
                assert node.count() == 1 and ly.type in text
                # the title as drawn (its tooltip aside): whole, never Netron's "runtime_f…lization+Relu"
                title = node.locator(".node-item-type text").first.text_content() or ""
                assert title.startswith(ly.type) and "\u2026" not in title, title
                if ops.get(ly.name):  # the fused ONNX ops at a glance (in full: the fused_ops attribute)
                    assert title.endswith(" ops") or all(
                        op in title or short in title for op in ops[ly.name]
                        for short in [_SHORT_OPS.get(op, op)]
                    ), title
            guard.assert_clean()


@pytest.mark.browser
def test_netron_draws_the_engine_graph_one_node_per_layer(session_wb, cnn_build, tmp_path_factory):
    layers, report = job_report(session_wb.jobs.job_dir(cnn_build))
    netron_draws(layers, tmp_path_factory.mktemp("graph"), tmp_path_factory, report)


def test_layer_and_node_names_get_wide_columns_not_cut_off(session_wb, cnn_build, fresh_caches):
    """Long layer and node names ("/model/block1/conv/Conv + /model/block1/act/Relu") read in full: the name
    columns of the Layers tab are configured wide."""
    import json

    job = session_wb.jobs.get(cnn_build)
    layers, _ = job_report(session_wb.jobs.job_dir(cnn_build))
    row, _layer = max(enumerate(layers.for_profile(0)), key=lambda il: len(il[1].onnx_nodes))
    at = _page(**{ui.MODEL_DIGEST: job.model_digest, ui.FUSION_JOB: cnn_build})
    at.session_state["fusion.table"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    _ok(at)
    assert len(at.dataframe) == 3  # the layers, the selected layer's ONNX nodes, its tensors
    for frame in at.dataframe:
        config = json.loads(frame.proto.columns or "{}")
        names = [c for c in ("name", "node", "onnx_nodes", "also in") if c in frame.value.columns]
        assert names, list(frame.value.columns)
        widths = {c: config.get(c, {}).get("width") for c in names}
        assert set(widths.values()) == {"large"}, widths
