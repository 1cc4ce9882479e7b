"""Where every ONNX node went: fusion accounting, build comparison, the engine as a graph, exports and the CLI.

Everything runs on real TensorRT-RTX output: the golden build logs (``tests/golden``, made by ``make_golden.py``)
and fresh builds of the bundled samples. Expected numbers come from the ONNX models and the raw listings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import onnx
import pytest

from tests.golden import make_golden
from workbench.fusion import (
    FATES,
    NETRON_TITLE_MAX,
    account_fusion,
    decode_myelin_ops,
    diff_builds,
    engine_as_onnx,
    job_network_model,
    job_report,
    name_conventions,
    onnx_node_name,
)
from workbench.fusion_rules import RULE_EVIDENCE
from workbench.layers import load_layers, parse_build_log, parse_inspector_json

GOLDEN = Path(__file__).resolve().parent / "golden"
IN_LAYERS = ("fused", "one_to_one", "split")


def _golden(name: str):
    """(model path, layers) of a golden build; the model is the one named in the build's .cmd file."""
    cmd = (GOLDEN / f"{name}.cmd").read_text()
    model = GOLDEN / re.search(r"polygraphy convert (\S+\.onnx)", cmd).group(1)
    return model, parse_build_log((GOLDEN / f"{name}.build.log").read_text())


GOLDEN_BUILDS = sorted(p.name.removesuffix(".build.log") for p in GOLDEN.glob("*.build.log"))


def _build(wb, sample: str, precision: str, profile: tuple[str, str, str], **spec) -> str:
    from workbench.samples import get_sample
    from workbench.spec import BuildSpec, CalibrationSpec, profiles_from_args

    ref = wb.import_path(get_sample(sample).path)
    cal = CalibrationSpec(synthetic=True) if precision == "int8" else None
    job_id = wb.submit_build(
        ref,
        BuildSpec(
            precision=precision, calibration=cal, profiles=profiles_from_args(*([p] for p in profile)), **spec
        ),
    )
    job = wb.jobs.wait(job_id, timeout=300)
    assert job.status == "succeeded", (job.error, wb.jobs.read_log(job_id)[0][-3000:])
    return job_id


CNN_PROFILE = ("input:1x3x32x32", "input:4x3x32x32", "input:16x3x32x32")  # as the cnn_build fixture


@pytest.fixture(scope="module")
def cnn_fp16_build(session_wb):
    return _build(session_wb, "cnn_residual", "fp16", CNN_PROFILE)


@pytest.fixture(scope="module")
def transformer_fp16_build(session_wb):
    return _build(
        session_wb, "transformer_block", "fp16", ("hidden:1x16x64", "hidden:2x32x64", "hidden:4x64x64")
    )


def _all_nodes(graph) -> list:
    """The nodes of a graph and of every If/Loop/Scan body inside it."""
    out = []
    for n in graph.node:
        out.append(n)
        for a in n.attribute:
            for body in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                out += _all_nodes(body)
    return out


def _assert_every_node_accounted(report, model_path) -> None:
    model = onnx.load(str(model_path), load_external_data=False)
    nodes = _all_nodes(model.graph)
    assert report.num_onnx_nodes == len(nodes) == len(report.nodes)
    assert sum(report.fate_counts.values()) == len(nodes)
    assert report.unaccounted == (), [(n.node, n.op_type) for n in report.unaccounted]
    for n in report.nodes:
        assert n.fate in FATES and n.reason
        assert (n.fate in IN_LAYERS) == bool(n.layers)
        assert (n.fate == "split") == (len(n.layers) >= 2)


# ---------------------------------------------------------------------------------------------- accounting
def test_cnn_sample_conv_bn_activation_nodes_land_in_fewer_layers_than_onnx_nodes(session_wb, cnn_build):
    job_dir = session_wb.jobs.job_dir(cnn_build)
    layers, report = job_report(job_dir)
    model = onnx.load(str(job_network_model(job_dir)))
    conv_bn_act = [
        onnx_node_name(n) for n in model.graph.node if n.op_type in ("Conv", "BatchNormalization", "Relu")
    ]
    holding = {ly for n in report.nodes if n.node in conv_bn_act for ly in n.layers}
    assert conv_bn_act and len(holding) < len(conv_bn_act)
    assert report.num_layers == len(layers.layers) < report.num_onnx_nodes
    _assert_every_node_accounted(report, job_network_model(job_dir))


@pytest.mark.parametrize("name", GOLDEN_BUILDS)
def test_every_onnx_node_of_every_golden_build_is_accounted_for(name):
    model, layers = _golden(name)
    report = account_fusion(model, layers)
    _assert_every_node_accounted(report, model)
    in_metadata = Counter(n.split(" | ")[0] for ly in layers.for_profile(0) for n in ly.onnx_nodes)
    for n in report.nodes:
        if layers.detail == "detailed" and n.evidence == "metadata":
            assert len(n.layers) == in_metadata[n.node]
        elif layers.detail == "detailed":  # placed by a rule of fusion_rules: named in no layer's metadata
            assert in_metadata[n.node] == 0 and n.evidence in ("graph", *RULE_EVIDENCE), (n.node, n.evidence)
    assert report.unknown_metadata == ()


def test_eliminated_nodes_say_why_and_name_the_layer_that_reads_a_view():
    model, layers = _golden("cnn_fp32")
    report = account_fusion(model, layers)
    by_op = {n.op_type: n for n in report.nodes}
    assert by_op["Identity"].fate == "eliminated" and "Identity" in by_op["Identity"].reason
    flatten = by_op["Flatten"]
    gemm_layer = by_op["Gemm"].layers[0]
    assert flatten.fate == "eliminated" and gemm_layer in flatten.reason


def test_a_view_no_engine_layer_reads_is_not_called_eliminated():
    """The real cnn_fp32 log cut before the layer holding the Gemm: nothing in the listing reads the Flatten's
    output any more, so its elimination is unverified and it is shown as unaccounted, not "eliminated"."""
    model, full = _golden("cnn_fp32")
    text = (GOLDEN / "cnn_fp32.build.log").read_text()
    gemm_layer = next(ly for ly in full.layers if "head/fc" in ly.onnx_nodes)
    cut = parse_build_log(text[: text.index(f"Name: {gemm_layer.name}, LayerType")])
    assert "head/fc" not in {n for ly in cut.layers for n in ly.onnx_nodes}
    fates = {n.node: n for n in account_fusion(model, cut).nodes}
    flatten = next(n for n in fates.values() if n.op_type == "Flatten")
    assert flatten.fate == "unaccounted" and "not verified" in flatten.reason
    assert fates["head/fc"].fate == "unaccounted"
    full_fates = {n.node: n for n in account_fusion(model, full).nodes}
    assert full_fates[flatten.node].fate == "eliminated" and gemm_layer.name in full_fates[flatten.node].reason


def test_a_view_between_a_cancelled_qdq_pair_is_explained_by_the_layer_behind_the_pair():
    model_path, layers = _golden("cnn_qdq_int8")
    report = account_fusion(model_path, layers)
    fates = {n.node: n for n in report.nodes}
    flatten = next(n for n in report.nodes if n.op_type == "Flatten")
    reader = next(ly.name for ly in layers.for_profile(0) if "head/fc" in ly.onnx_nodes)
    assert flatten.fate == "eliminated" and reader in flatten.reason
    model = onnx.load(str(model_path))
    after = next(n for n in model.graph.node if list(n.input)[:1] == [next(
        x for x in model.graph.node if onnx_node_name(x) == flatten.node).output[0]])
    assert "Q/DQ pair cancelled" in fates[onnx_node_name(after)].reason  # the node between it and the reader


def test_a_shape_computation_is_eliminated_as_shape_logic():
    model_path, layers = _golden("transformer_fp32")
    model = onnx.load(str(model_path))
    shape_fed = set()  # every node reachable from a Shape node through non-Reshape nodes
    produced_by_shape = set()
    for node in model.graph.node:
        if node.op_type == "Shape" or (node.op_type != "Reshape" and set(node.input) & produced_by_shape):
            shape_fed.add(onnx_node_name(node))
            produced_by_shape.update(node.output)
    report = account_fusion(model, layers)
    fates = {n.node: n for n in report.nodes}
    assert shape_fed
    for name in shape_fed:
        assert fates[name].fate == "eliminated" and "shape computation" in fates[name].reason


def test_constant_subexpressions_fold_at_build_time(tmp_path):
    """A fresh real build: Mul of two initializers and a Constant node feeding an Add."""
    from onnx import TensorProto, helper

    g = make_golden._G(seed=2)
    c = g.node("Mul", [g.rand("a", (4,)), g.rand("b", (4,))], "const/mul")
    k = g.node("Constant", [], "const/k", value=helper.make_tensor("k", TensorProto.FLOAT, [4], [1, 2, 3, 4]))
    y = g.node("Add", ["x", g.node("Add", [c, k], "const/add")], "x/add")
    g.node("Relu", [y], "x/relu")
    g.nodes[-1].output[0] = "y"
    model = g.model(
        "consts",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    onnx.save(model, str(tmp_path / "consts.onnx"))
    log = make_golden.build_log(
        tmp_path / "consts.onnx", tmp_path / "consts.plan", [{"x": ([1, 4], [2, 4], [4, 4])}]
    )
    report = account_fusion(tmp_path / "consts.onnx", parse_build_log(log))
    _assert_every_node_accounted(report, tmp_path / "consts.onnx")
    fates = {n.node: n for n in report.nodes}
    assert fates["const/k"].fate == "constant_folded"
    if fates["const/mul"].layers:  # TensorRT names the folded Mul in the consuming layer's metadata
        assert "constant subexpression" in fates["const/mul"].reason


def test_qdq_pairs_around_a_flatten_cancel_and_the_convolutions_run_in_int8():
    """DequantizeLinear → Flatten → QuantizeLinear on one scale is the identity: TensorRT drops the pair."""
    model_path, layers = _golden("cnn_qdq_int8")
    report = account_fusion(model_path, layers)
    _assert_every_node_accounted(report, model_path)
    model = onnx.load(str(model_path))
    nodes = {onnx_node_name(n): n for n in model.graph.node}
    cancelled = [n for n in report.nodes if "Q/DQ pair cancelled" in n.reason]
    assert cancelled
    for n in cancelled:  # a DQ and a Q that share their scale and zero point, with only a view between them
        assert nodes[n.node].op_type in ("DequantizeLinear", "QuantizeLinear")
    dq = [nodes[n.node] for n in cancelled if nodes[n.node].op_type == "DequantizeLinear"]
    q = [nodes[n.node] for n in cancelled if nodes[n.node].op_type == "QuantizeLinear"]
    assert len(dq) == len(q) and [d.input[1:] for d in dq] == [x.input[1:] for x in q]
    convs = [g for g in report.groups if "Conv" in g.op_types and g.type == "correlation"]
    assert convs and {g.precision for g in convs} == {"INT8"}


def test_the_precision_mix_of_an_fp16_engine_counts_compute_precisions_and_casts_apart(
    session_wb, transformer_fp16_build
):
    """Golden FP16 CNN and a fresh FP16 transformer build: the engines write FP32 outputs (keep_io_types), yet no
    layer computes in FP32; a kernel that only casts counts as a cast to its output type."""
    model, layers = _golden("cnn_fp16")
    job_dir = session_wb.jobs.job_dir(transformer_fp16_build)
    for report, engine in ((account_fusion(model, layers), layers.for_profile(0)), job_report(job_dir)[::-1]):
        engine = getattr(engine, "layers", engine)
        casts = [ly for ly in engine if ly.inputs and ly.outputs and not ly.constants
                 and {t.dtype for t in ly.inputs} != {t.dtype for t in ly.outputs}
                 and ly.name.startswith("__myl_") and "Cast" in ly.name]
        assert "FP32" not in report.precision_mix and report.precision_mix.get("FP16")
        assert sum(v for k, v in report.precision_mix.items() if k.startswith("cast→")) == len(casts)
        assert any(t.dtype == "FP32" for ly in engine for t in ly.outputs)  # it does write FP32


def test_duplicate_casts_and_layout_only_ops_of_a_real_fp16_transformer(session_wb, transformer_fp16_build):
    job_dir = session_wb.jobs.job_dir(transformer_fp16_build)
    _, report = job_report(job_dir)
    _assert_every_node_accounted(report, job_network_model(job_dir))
    model = onnx.load(str(job_network_model(job_dir)))
    nodes = {onnx_node_name(n): n for n in model.graph.node}
    for n in report.nodes:
        m = re.match(r"duplicate of (\S+) ", n.reason)
        if m:  # the twin really is the same op on the same inputs, and it is in a layer
            twin = nodes[m.group(1)]
            assert (twin.op_type, list(twin.input)) == (nodes[n.node].op_type, list(nodes[n.node].input))
            assert next(x for x in report.nodes if x.node == twin.name).layers


# ---------------------------------------------------------------------------------------------- explanations
def test_myelin_kernels_are_opaque_regions_with_their_ops_decoded():
    model, layers = _golden("cnn_fp32")
    report = account_fusion(model, layers)
    kernels = [ly for ly in layers.layers if ly.name.startswith("__myl_")]
    opaque = {o.layer: o for o in report.opaque}
    for ly in kernels:
        ops_in_name = re.findall(r"[A-Z][a-z]*", ly.name.split("_myl")[1].lstrip("_"))
        assert len(opaque[ly.name].ops) == len(ops_in_name) == len(decode_myelin_ops(ly.name))
        assert set(opaque[ly.name].onnx_nodes) == set(ly.onnx_nodes)
    assert "myelin_kernel" in report.conventions


def test_a_foreign_node_region_holds_the_nodes_from_its_first_to_its_last():
    model, layers = _golden("cnn_fp32_names_only")
    report = account_fusion(model, layers)
    (region,) = [o for o in report.opaque if o.kind == "foreign_node"]
    first, last = re.match(r"ForeignNode\[(.*)\.\.\.(.*)\]", region.layer).groups()
    names = [onnx_node_name(n) for n in onnx.load(str(model)).graph.node]
    assert region.onnx_nodes[0] == first and last.startswith(region.onnx_nodes[-1])
    assert list(region.onnx_nodes) == names[names.index(first) : names.index(region.onnx_nodes[-1]) + 1]
    assert report.notes and "layer names" in report.notes[0]


def test_merged_qkv_projections_are_a_horizontal_fusion():
    model_path, layers = _golden("transformer_fp32")
    report = account_fusion(model_path, layers)
    model = onnx.load(str(model_path))
    inputs = {onnx_node_name(n): n.input[0] for n in model.graph.node}
    merged = [g for g in report.groups if "multi_gemm" in g.conventions]
    assert merged
    for g in merged:
        assert len({inputs[n] for n in g.onnx_nodes}) == 1  # one shared input …
        assert g.fusion == "horizontal"  # … and no node feeds another


def test_classic_tensorrt_names_show_vertical_and_pointwise_fusion():
    text = (GOLDEN / "trex_mobilenet_qat_excerpt.graph.json").read_text()
    for ly in parse_inspector_json(text).layers:
        conv = name_conventions(ly)
        assert ("vertical" in conv) == (" + " in ly.name)
        assert ("pointwise" in conv) == ("PWN(" in ly.name)


# ---------------------------------------------------------------------------------------------- compare builds
def test_fp32_and_fp16_builds_differ_in_precision_node_by_node(session_wb, cnn_build, cnn_fp16_build):
    a = load_layers(session_wb.jobs.job_dir(cnn_build))
    b = load_layers(session_wb.jobs.job_dir(cnn_fp16_build))
    diff = diff_builds(a, b)
    prec_a = {n: ly.precision for ly in a.layers for n in ly.onnx_nodes}
    prec_b = {n: ly.precision for ly in b.layers for n in ly.onnx_nodes}
    changed = {c.node for c in diff.changes if c.precision_changed}
    assert changed and all(prec_a[n] == "FP32" for n in changed)
    assert {c.node for c in diff.changes if c.presence == "only_b"} == set(prec_b) - set(prec_a)
    assert diff.layers_a == len(a.layers) and diff.layers_b == len(b.layers)
    assert str(diff.layers_a) in diff.summary()
    same = diff_builds(a, a)
    assert same.changed == ()


# ---------------------------------------------------------------------------------------------- engine graph
@pytest.mark.parametrize("name", ["cnn_fp32", "transformer_fp32", "cnn_qdq_int8"])
def test_the_engine_as_a_graph_is_valid_onnx_with_one_node_per_layer(tmp_path, name):
    _, layers = _golden(name)
    path = engine_as_onnx(layers, tmp_path / "engine.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    engine = layers.for_profile(0)
    assert [n.name for n in model.graph.node] == [ly.name for ly in engine]
    assert [n.op_type for n in model.graph.node] == [ly.type for ly in engine]
    for node, ly in zip(model.graph.node, engine, strict=True):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert [s.decode() for s in attrs["onnx_nodes"]] == (list(ly.onnx_nodes) or ["-"])
        assert attrs["precision"].decode() == ly.precision_label
    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    assert all(i in produced for n in model.graph.node for i in n.input)
    assert {o.name for o in model.graph.output} == {t.name for t in layers.io_tensors if t.mode == "Output"}
    # With the fusion report, each node also names the ONNX op types fused into it: in its title where that fits
    # Netron's title (longer ones are cut to "kgen: Conv…lization+Relu"), always in full in an attribute.
    report = account_fusion(_golden(name)[0], layers)
    labelled = onnx.load(str(engine_as_onnx(layers, tmp_path / "labelled.onnx", report=report)))
    onnx.checker.check_model(labelled)
    for node, group in zip(labelled.graph.node, report.groups, strict=True):
        assert node.op_type.startswith(group.type)
        assert len(node.op_type) <= NETRON_TITLE_MAX or node.op_type == group.type, node.op_type
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if group.op_types:
            assert attrs["fused_ops"].decode().split("+") == list(dict.fromkeys(group.op_types))
            if len(f"{group.type}: {'+'.join(dict.fromkeys(group.op_types))}") <= NETRON_TITLE_MAX:
                assert all(op in node.op_type for op in group.op_types)


@pytest.fixture(scope="module")
def deep_build(tmp_path_factory):
    """A real build of 1000 Conv→activation pairs: each pair one engine layer, about 1000 in all (~12 s)."""
    folder = tmp_path_factory.mktemp("deep")
    onnx.save(make_golden.deep_chain(1000), str(folder / "deep.onnx"))
    log = make_golden.build_log(
        folder / "deep.onnx", folder / "deep.plan", make_golden.DEEP_PROFILE, timeout=600
    )
    return folder / "deep.onnx", log


@pytest.mark.slow
def test_a_thousand_layer_engine_is_accounted_and_drawn_quickly(deep_build, tmp_path):
    model, log = deep_build
    t0 = time.monotonic()
    layers = parse_build_log(log)
    report = account_fusion(model, layers)
    path = engine_as_onnx(layers, tmp_path / "engine.onnx")
    assert time.monotonic() - t0 < 10
    _assert_every_node_accounted(report, model)
    assert report.num_layers == len(layers.layers) >= 1000
    onnx.checker.check_model(onnx.load(str(path)))


@pytest.mark.slow
@pytest.mark.browser
def test_netron_draws_a_thousand_layer_engine(deep_build, tmp_path_factory):
    from tests.test_fusion_page import netron_draws

    netron_draws(parse_build_log(deep_build[1]), tmp_path_factory.mktemp("deep-graph"), tmp_path_factory)


# ---------------------------------------------------------------------------------------------- exports, figures
def _assert_a_whole_ring(fig) -> None:
    """Ids unique, no parent smaller than its children (``branchvalues="total"`` draws those outside the ring),
    every leaf on the outermost ring."""
    d = fig.data[0]
    ids, parents, values = list(d.ids), list(d.parents), list(d.values)
    assert len(set(ids)) == len(ids), [i for i, c in Counter(ids).items() if c > 1]
    value = dict(zip(ids, values, strict=True))
    parent = dict(zip(ids, parents, strict=True))
    children: Counter[str] = Counter()
    for p, v in zip(parents, values, strict=True):
        if p:
            assert p in value, p
            children[p] += v
    for p, total in children.items():
        assert total <= value[p], (p, total, value[p])

    def depth(i: str) -> int:
        return 1 + depth(parent[i]) if parent[i] else 1

    leaves = set(ids) - set(children)
    assert len({depth(i) for i in leaves}) == 1, sorted((depth(i), i) for i in leaves)[:5]


@pytest.mark.parametrize("name", [n for n in GOLDEN_BUILDS if n.startswith(("bert", "gpt2", "cnn_fp16", "mlp"))])
def test_the_fusion_sunburst_is_a_whole_ring_nothing_sticks_out(name):
    """Layers TensorRT added (no ONNX node) get an outer wedge too, so the outer ring has no gaps or steps."""
    from workbench.reports.fusion_figures import fusion_groups

    report = account_fusion(*_golden(name))
    assert report.groups
    for kind in ("sunburst", "treemap"):
        _assert_a_whole_ring(fusion_groups(report, kind=kind))


def test_two_engine_layers_of_one_name_keep_their_own_wedges():
    import dataclasses

    from workbench.reports.fusion_figures import fusion_groups

    report = account_fusion(*_golden("cnn_fp32"))
    twice = dataclasses.replace(report, groups=report.groups + report.groups[:1])
    _assert_a_whole_ring(fusion_groups(twice))


def test_fusion_chart_axes_count_in_plain_numbers_not_si_prefixes():
    from workbench.reports import fusion_figures

    model, layers = _golden("cnn_fp16")
    report = account_fusion(model, layers)
    figs = dict(fusion_figures.all_figures(report))
    figs["diff"] = fusion_figures.diff_precision(diff_builds(layers, layers))
    del figs["groups"]  # the sunburst has no axes
    for name, fig in figs.items():
        axes = {k: v for k, v in fig.layout.to_plotly_json().items() if k.startswith(("xaxis", "yaxis"))}
        assert axes, name
        for axis, spec in axes.items():  # Plotly's default labels 1200 layers "1.2k"
            assert spec.get("exponentformat") == "none" and spec.get("separatethousands"), (name, axis, spec)


def test_exports_hold_the_same_numbers_and_the_html_works_offline(tmp_path):
    import csv
    import io

    import plotly.graph_objects as go

    from workbench.reports import fusion_figures, fusion_html

    model, layers = _golden("cnn_fp16")
    report = account_fusion(model, layers)
    assert len(list(csv.DictReader(io.StringIO(fusion_html.layers_csv(layers))))) == len(layers.layers)
    assert len(list(csv.DictReader(io.StringIO(fusion_html.nodes_csv(report))))) == report.num_onnx_nodes
    doc = json.loads(fusion_html.report_json(report, layers))
    assert doc["fusion"]["fate_counts"] == report.fate_counts and "raw" not in doc["layers"]
    figs = fusion_figures.all_figures(report)
    assert all(isinstance(f, go.Figure) for f in figs.values())
    sun = figs["groups"].data[0]
    assert sum(1 for p in sun.parents if p == "") == len(report.layer_types)
    page = fusion_html.write_html(tmp_path / "r.html", report, layers).read_text()
    assert report.summary().split(".")[0] in page
    # plotly.js is inlined once (its bundle only names a CDN for geo maps, which these figures do not use)
    assert re.search(r"<script[^>]*\bsrc=", page) is None and page.count("Plotly.newPlot") == len(figs)
    assert all(ly.name in page for ly in layers.layers)


# ---------------------------------------------------------------------------------------------- CLI
def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_layers_of_a_job_prints_the_same_numbers_as_the_library(session_wb, cnn_build, tmp_path):
    home = session_wb.ws.root
    _, report = job_report(session_wb.jobs.job_dir(cnn_build))
    out = _cli("layers", cnn_build, "--json", "--html", str(tmp_path / "r.html"), home=home)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fusion"]["fate_counts"] == report.fate_counts
    assert (tmp_path / "r.html").stat().st_size > 100_000
    text = _cli("layers", str(session_wb.jobs.job_dir(cnn_build)), home=home)
    assert text.returncode == 0 and report.summary() in text.stdout


def test_cli_layers_bad_input_is_exit_2_with_a_clear_message(session_wb, cnn_build, tmp_path):
    home = session_wb.ws.root
    missing = _cli("layers", str(tmp_path / "nothing.json"), home=home)
    assert missing.returncode == 2 and "nothing.json" in missing.stderr and "Traceback" not in missing.stderr
    unknown = _cli("layers", "no-such-job", home=home)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    layers = load_layers(session_wb.jobs.job_dir(cnn_build))
    for bad in (layers.num_profiles, -1):
        out = _cli("layers", cnn_build, "--profile", str(bad), home=home)
        assert out.returncode == 2 and "out of range" in out.stderr and "Traceback" not in out.stderr
        assert f"{layers.num_profiles} optimization profile" in out.stderr
    from tests.conftest import gpu_reason

    if gpu_reason() is not None:  # a plan with no listing beside it cannot be read here: say so
        lonely = tmp_path / "lonely.plan"
        lonely.write_bytes((session_wb.jobs.job_dir(cnn_build) / "engine.plan").read_bytes())
        plan = _cli("layers", str(lonely), home=home)
        assert plan.returncode == 2 and "cannot" in plan.stderr and "Traceback" not in plan.stderr
        assert "layers.json" in plan.stderr  # the hint: where a listing would be


def test_cli_layers_of_a_plan_uses_the_listing_saved_beside_it_where_it_cannot_be_inspected(
    session_wb, cnn_build
):
    from tests.conftest import gpu_reason

    if gpu_reason() is None:
        pytest.skip("this machine can deserialize the plan: the engine inspector reads it")
    home = session_wb.ws.root
    job_dir = session_wb.jobs.job_dir(cnn_build)
    _, report = job_report(job_dir)
    out = _cli("layers", str(job_dir / "engine.plan"), home=home)
    assert out.returncode == 0, out.stderr
    assert "cannot deserialize" in out.stderr and f"saved at build time instead: {job_dir / 'layers.json'}" in out.stderr
    assert report.summary() in out.stdout  # the job's network model is found too


def test_cli_build_writes_the_layer_information_beside_the_plan(tmp_path):
    """`build -o PLAN` then `layers PLAN` on a machine without a GPU: a real build, then the saved listing."""
    from workbench.samples import get_sample

    sample = get_sample("cnn_residual")
    (lo, opt, hi), = [(r.min, r.opt, r.max) for r in sample.profiles()[0].shapes.values()]
    name = next(iter(sample.profiles()[0].shapes))
    plan = tmp_path / "out" / "cnn.plan"
    built = _cli("build", str(sample.path), "-o", str(plan), "--min-shapes", f"{name}:{'x'.join(map(str, lo))}",
                 "--opt-shapes", f"{name}:{'x'.join(map(str, opt))}", "--max-shapes", f"{name}:{'x'.join(map(str, hi))}",
                 home=tmp_path / "ws")
    assert built.returncode == 0, built.stderr
    saved = tmp_path / "out" / "cnn.layers.json"
    assert str(saved) in built.stderr
    layers = load_layers(saved)
    assert layers.layers and any(ly.onnx_nodes for ly in layers.layers)
    from tests.conftest import gpu_reason

    out = _cli("layers", str(plan), "--json", home=tmp_path / "ws")
    assert out.returncode == 0, out.stderr
    if gpu_reason() is not None:  # no GPU: the saved listing, and the command says it used it
        assert json.loads(out.stdout)["layers"] == json.loads(layers.to_json())["layers"]
        assert str(saved) in out.stderr
