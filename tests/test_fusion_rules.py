"""ONNX nodes TensorRT-RTX computes without naming them in any layer's metadata: each gets its fate and its evidence,
and a node that is really missing from the engine is still reported as unaccounted.

Real TensorRT-RTX listings: the golden builds of ``tests/golden`` (``fusion_models.py`` says what each reproduces;
the real exports come from ``tests/fixtures``) and fresh builds. Expected values are read from the ONNX models and
the listings, never typed in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper

from tests.golden import fusion_models, make_golden
from workbench.fusion import account_fusion, onnx_node_name
from workbench.fusion_rules import RULE_EVIDENCE
from workbench.layers import EngineLayers, parse_build_log

GOLDEN = Path(__file__).resolve().parent / "golden"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


def _golden(name: str) -> tuple[onnx.ModelProto, EngineLayers, str]:
    cmd = (GOLDEN / f"{name}.cmd").read_text()
    model = GOLDEN / re.search(r"polygraphy convert (\S+\.onnx)", cmd).group(1)
    text = (GOLDEN / f"{name}.build.log").read_text()
    return onnx.load(str(model)), parse_build_log(text), text


def _fates(model: onnx.ModelProto, layers: EngineLayers) -> dict:
    report = account_fusion(model, layers)
    assert report.unaccounted == (), [(n.node, n.op_type, n.reason) for n in report.unaccounted]
    return {n.node: n for n in report.nodes}


def _by_name(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {onnx_node_name(n): n for n in model.graph.node}


def _listing(layers: EngineLayers):
    """layer name → (ONNX nodes of its metadata, tensors it reads, tensors it writes)."""
    return {
        ly.name: (
            {n.split(" | ")[0] for n in ly.onnx_nodes},
            {t.name for t in ly.inputs},
            {t.name for t in ly.outputs},
        )
        for ly in layers.for_profile(0)
    }


def _layers_of(layers: EngineLayers, node: str) -> set[str]:
    return {name for name, (nodes, _i, _o) in _listing(layers).items() if node in nodes}


def _splice(model: onnx.ModelProto, after: str, op: str, name: str) -> onnx.ModelProto:
    """A copy of ``model`` with a new ``op`` node reading the output of node ``after`` and feeding its readers."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes = list(m.graph.node)
    i = next(k for k, n in enumerate(nodes) if onnx_node_name(n) == after)
    out = nodes[i].output[0]
    for n in nodes[i + 1 :]:
        for j, x in enumerate(n.input):
            if x == out:
                n.input[j] = f"{name}_out"
    m.graph.node.insert(i + 1, helper.make_node(op, [out], [f"{name}_out"], name=name))
    return m


# ---------------------------------------------------------------------------------------------- each class
def test_the_csp_concat_of_a_yolo_neck_is_elided_into_the_one_buffer_its_producers_write():
    model, layers, _ = _golden("yolo_neck_fp32")
    fates = _fates(model, layers)
    concat = next(n for n in model.graph.node if n.op_type == "Concat" and onnx_node_name(n) == "/Concat")
    f = fates["/Concat"]
    assert (f.fate, f.evidence, f.layers) == ("eliminated", "buffer", ())
    assert "concatenation elided into its consumers' buffer" in f.reason
    buffer = re.search(r"one tensor (\S+),", f.reason).group(1)
    listing = _listing(layers)
    producers = [onnx_node_name(n) for n in model.graph.node if set(n.output) & set(concat.input)]
    assert len(producers) == 3
    for p in producers:  # every producer's layer writes the buffer …
        assert any(buffer in listing[ly][2] for ly in _layers_of(layers, p)), p
    readers = [onnx_node_name(n) for n in model.graph.node if concat.output[0] in n.input]
    assert any(
        buffer in listing[ly][1] for r in readers for ly in _layers_of(layers, r)
    )  # … a reader reads it


def test_the_qkv_split_of_gpt2_is_computed_inside_each_kernel_that_reads_one_of_its_outputs():
    model, layers, _ = _golden("gpt2_2layer_fp32")
    fates = _fates(model, layers)
    nodes = _by_name(model)
    splits = [k for k, n in nodes.items() if n.op_type == "Split"]
    assert len(splits) == 2  # one per decoder layer
    for name in splits:
        f = fates[name]
        assert (f.fate, f.evidence) == ("split", "inside") and len(f.layers) == 3, f
        assert not _layers_of(layers, name)  # no metadata names it
        readers = [k for k, n in nodes.items() if set(nodes[name].output) & set(n.input)]
        for ly in f.layers:  # each of its layers holds one of its readers
            assert _listing(layers)[ly][0] & {
                *readers,
                *(r for r in fates if fates[r].layers and ly in fates[r].layers),
            }


def test_a_cast_to_the_type_its_input_already_has_is_a_no_op_bert_mask_and_gpt2_softmax():
    for golden in ("bert_tiny_mask_fp32", "gpt2_2layer_fp32"):
        model, layers, _ = _golden(golden)
        fates = _fates(model, layers)
        types = {
            v.name: v.type.tensor_type.elem_type
            for v in (*onnx.shape_inference.infer_shapes(model).graph.value_info, *model.graph.input)
        }
        no_ops = [n for n in fates.values() if n.evidence == "types"]
        assert no_ops, golden
        for f in no_ops:
            cast = _by_name(model)[f.node]
            to = next(a.i for a in cast.attribute if a.name == "to")
            assert cast.op_type == "Cast" and types[cast.input[0]] == to and f.fate == "eliminated"
            assert f"already is {onnx.TensorProto.DataType.Name(to)}" in f.reason


def test_the_mul_between_batchnorm_and_sigmoid_of_a_paddle_swish_is_inside_the_kernel_that_computes_both():
    """PP-OCRv4's SVTR neck (a Paddle2ONNX export): swish = x·sigmoid(β·x); the β Mul is in no metadata."""
    model, layers, _ = _golden("ppocrv4_rec_svtr_neck_fp32")
    fates = _fates(model, layers)
    nodes = _by_name(model)
    produced_by = {o: k for k, n in nodes.items() for o in n.output}
    inside = [
        f for f in fates.values()
        if f.evidence == "inside" and nodes[produced_by[nodes[f.node].input[0]]].op_type == "BatchNormalization"
    ]  # fmt: skip
    assert len(inside) >= 3
    for f in inside:
        bn = produced_by[nodes[f.node].input[0]]
        sigmoid = next(k for k, n in nodes.items() if nodes[f.node].output[0] in n.input)
        assert nodes[sigmoid].op_type == "Sigmoid" and f.op_type == "Mul" and len(f.layers) == 1
        (layer,) = f.layers
        assert {bn, sigmoid} <= _listing(layers)[layer][0] and f.node not in _listing(layers)[layer][0]
        assert bn in f.reason and sigmoid in f.reason and layer in f.reason


def test_attention_views_of_a_paddle2onnx_export_are_views_between_a_writer_and_a_reader_of_one_tensor():
    model, layers, _ = _golden("ppocrv4_rec_svtr_neck_fp32")
    fates = _fates(model, layers)
    listing = _listing(layers)
    views = [f for f in fates.values() if f.evidence == "tensors"]
    assert {f.op_type for f in views} >= {"Reshape", "Transpose", "Slice", "Squeeze"}
    for f in views:
        m = re.search(r": (\S+) writes tensor (\S+) and (\S+) reads it", f.reason)
        writer, tensor, reader = m.groups()
        assert tensor in listing[writer][2] and tensor in listing[reader][1], f.reason
    moved = [f for f in fates.values() if f.evidence == "moved"]  # the 1/√d scaling of q, moved past QKᵀ
    assert moved and all(f.op_type == "Mul" and "Mul" in f.layers[0] for f in moved)


def test_paddle2onnx_unnamed_constant_nodes_get_the_parser_names_and_fold():
    model, layers, text = _golden("ppocrv4_rec_svtr_neck_fp32")
    fates = _fates(model, layers)
    unnamed = [n for n in model.graph.node if not n.name]
    assert len(unnamed) > 100 and {n.op_type for n in unnamed} == {"Constant"}
    for n in unnamed:
        assert fates[f"node_of_{n.output[0]}"].fate == "constant_folded"
    assert f"Parsing node: node_of_{unnamed[0].output[0]} [Constant]" in text  # the parser's own name for it


def test_every_qdq_node_of_a_quantized_bert_is_accounted_for_with_evidence():
    """Issue 11 item 8: an INT8 transformer's Q/DQ nodes were unaccounted (35 on MiniLM); the tiny BERT quantized by
    the workbench shows the same kinds: Q/DQ absorbed in kernels, the GELU's ×0.5 between two INT8 GEMMs."""
    model, layers, _ = _golden("bert_tiny_mask_qdq_int8")
    fates = _fates(model, layers)
    listing = _listing(layers)
    ruled = [f for f in fates.values() if f.evidence in ("inside", "tensors")]
    assert {f.op_type for f in ruled} >= {"QuantizeLinear", "DequantizeLinear", "Mul"}
    for f in ruled:
        assert not _layers_of(layers, f.node)
        if f.evidence == "tensors":
            writer, tensor, reader = re.search(
                r": (\S+) writes tensor (\S+) and (\S+) reads it", f.reason
            ).groups()
            assert (
                tensor in listing[writer][2]
                and tensor in listing[reader][1]
                and listing[writer][2] is not None
            )
        else:
            assert f.fate in ("fused", "split") and "computed inside" in f.reason


def test_the_mul_between_batchnorm_and_sigmoid_of_a_quantized_yolo_neck_is_inside_one_myelin_kernel():
    model, layers, _ = _golden("yolo_neck_qdq_int8")
    fates = _fates(model, layers)
    f = fates["/csp_fuse/Mul"]
    assert (f.fate, f.evidence) == ("fused", "inside") and f.layers[0].startswith("__myl_")
    assert not _layers_of(layers, "/csp_fuse/Mul")


@pytest.mark.parametrize("golden", ["scan_loop_fp32", "scan_rnn_fp32"])
def test_a_scan_is_accounted_through_its_body_and_the_body_nodes_on_their_own(golden):
    model, layers, _ = _golden(golden)
    fates = _fates(model, layers)
    scan = next(n for n in model.graph.node if n.op_type == "Scan")
    body = [onnx_node_name(n) for n in scan.attribute[0].g.node] if scan.attribute[0].HasField("g") else []
    body = body or [onnx_node_name(n) for a in scan.attribute if a.HasField("g") for n in a.g.node]
    f = fates[onnx_node_name(scan)]
    assert f.evidence == "body" and f.layers and "body nodes are in" in f.reason
    for b in body:
        assert fates[b].parent == onnx_node_name(scan)
        if fates[b].op_type != "Identity":
            assert fates[b].layers and set(fates[b].layers) <= set(f.layers)


def test_unnamed_nodes_of_an_if_branch_match_the_scoped_metadata_names():
    model, layers, _ = _golden("if_loop_fp32")
    fates = _fates(model, layers)
    branch = next(n for n in model.graph.node if n.op_type == "If")
    then_conv = next(
        n for a in branch.attribute if a.name == "then_branch" for n in a.g.node if n.op_type == "Conv"
    )
    assert then_conv.name == ""
    name = f"node_of_{then_conv.output[0]}"
    scoped = [n for ly in layers.for_profile(0) for n in ly.onnx_nodes if n.startswith(f"{name} | ")]
    assert scoped == [f"{name} | then (then_branch) | branch (If)"]
    assert fates[name].evidence == "metadata" and fates[name].layers and fates[name].parent == "branch"
    assert fates["loop"].evidence == "body"


# ---------------------------------------------------------------------------------------------- really missing
def test_a_node_the_engine_does_not_have_is_unaccounted_even_between_two_kernels():
    """A Relu spliced after the YOLO neck's CSP Concat (between two layers): no layer computes it, so it is reported
    unaccounted, and it alone (the layer after it still reads the Concat's buffer)."""
    model, layers, _ = _golden("yolo_neck_fp32")
    report = account_fusion(_splice(model, "/Concat", "Relu", "spliced/relu"), layers)
    assert [(n.node, n.fate) for n in report.unaccounted] == [("spliced/relu", "unaccounted")]
    assert "appears in no engine layer" in report.unaccounted[0].reason


def test_an_operation_the_kernel_name_does_not_list_is_not_placed_inside_it():
    """Between the scale and the Softmax of one Myelin kernel (whose name lists no Tanh), a spliced Tanh stays
    unaccounted; a spliced Mul in the same place is explained, because that kernel does list a multiplication."""
    model, layers, _ = _golden("attention_split_fp32")
    kernel = next(iter(_layers_of(layers, "softmax")))
    assert "scale" in _listing(layers)[kernel][0] and "Tanh" not in kernel and "Mul" in kernel
    tanh = {n.node: n for n in account_fusion(_splice(model, "scale", "Tanh", "spliced"), layers).nodes}
    assert tanh["spliced"].fate == "unaccounted"
    model_mul = _splice(model, "scale", "Mul", "spliced")
    model_mul.graph.node[[onnx_node_name(n) for n in model_mul.graph.node].index("spliced")].input.append(
        "sc"
    )
    mul = {n.node: n for n in account_fusion(model_mul, layers).nodes}
    assert (mul["spliced"].fate, mul["spliced"].layers) == ("fused", (kernel,))


def test_a_concat_whose_producers_write_different_buffers_is_unaccounted():
    model, layers, text = _golden("yolo_neck_fp32")
    buffer = re.search(
        r"one tensor (\S+),", {n.node: n for n in account_fusion(model, layers).nodes}["/Concat"].reason
    )
    writer = next(ly for ly in layers.for_profile(0) if "/csp.0/Conv" in ly.onnx_nodes)
    # the same listing, but the first producer writes a tensor of its own
    line = next(x for x in text.splitlines() if f"Name: {writer.name}," in x)
    moved = text.replace(
        line, line.replace(f"Outputs: [ {{ Name: {buffer.group(1)},", "Outputs: [ { Name: elsewhere,")
    )
    assert moved != text
    fates = {n.node: n for n in account_fusion(model, parse_build_log(moved)).nodes}
    assert fates["/Concat"].fate == "unaccounted"


def test_a_body_node_missing_from_the_listing_is_unaccounted():
    model, _layers, text = _golden("scan_rnn_fp32")
    cut = parse_build_log(text.replace("[ONNX Layer: body/tanh]", ""))
    fates = {n.node: n for n in account_fusion(model, cut).nodes}
    assert fates["body/tanh"].fate == "unaccounted" and fates["body/tanh"].parent == "scan"
    assert fates["scan"].evidence == "body"  # the Scan itself is still shown by its other body nodes


# ---------------------------------------------------------------------------------------------- fresh builds
def test_a_fresh_build_of_the_mask_attention_qdq_model_accounts_every_node(tmp_path):
    """A real TensorRT-RTX build now (not a recorded log) of the Q/DQ BERT-style attention."""
    path = tmp_path / "mask_attention_qdq.onnx"
    onnx.save(fusion_models.mask_attention_qdq(), str(path))
    log = make_golden.build_log(path, tmp_path / "m.plan", fusion_models.MASK_PROFILE)
    fates = _fates(onnx.load(str(path)), parse_build_log(log))
    # listed by the layer's metadata in some builds; otherwise placed inside the layer by evidence
    assert fates["mask_mul"].fate == "fused" and fates["mask_mul"].evidence in ("inside", "metadata")


def test_the_cli_reports_zero_unaccounted_for_a_fresh_yolo_neck_build(tmp_path):
    """What a user runs: build the YOLO neck with the CLI, then ``layers --model --json``."""
    env = dict(os.environ, WORKBENCH_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    plan = tmp_path / "neck.plan"
    cli = [sys.executable, "-m", "workbench.cli"]
    shapes = [
        "--min-shapes",
        "images:1x3x64x64",
        "--opt-shapes",
        "images:2x3x64x64",
        "--max-shapes",
        "images:4x3x64x64",
    ]
    build = subprocess.run([*cli, "build", str(FIXTURES / "yolo_neck.onnx"), "-o", str(plan), *shapes],
                           env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    out = subprocess.run([*cli, "layers", str(plan), "--model", str(FIXTURES / "yolo_neck.onnx"), "--json"],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    fusion = json.loads(out.stdout)["fusion"]
    assert fusion["fate_counts"]["unaccounted"] == 0
    concat = next(n for n in fusion["nodes"] if n["node"] == "/Concat")
    assert concat["evidence"] == "buffer" and "elided" in concat["reason"]


# ---------------------------------------------------------------------------------------------- shown to the user
def test_a_layer_lists_the_nodes_a_rule_found_in_it_with_the_evidence():
    model, layers, _ = _golden("yolo_neck_qdq_int8")
    report = account_fusion(model, layers)
    mul = next(n for n in report.nodes if n.node == "/csp_fuse/Mul")
    layer = next(ly for ly in layers.for_profile(0) if ly.name == mul.layers[0])
    rows = report.layer_node_rows(layer)
    assert [r["node"] for r in rows[: len(layer.onnx_nodes)]] == list(layer.onnx_nodes)
    row = next(r for r in rows if r["node"] == "/csp_fuse/Mul")
    assert row["fate"] == "fused" and "producers and consumers are in the layer" in row["evidence"]
    assert mul.reason in row["evidence"]
    evidence = {r["node"]: r for r in report.evidence_rows()}
    assert evidence["/csp_fuse/Mul"]["layers"] == layer.name
    assert all(r["evidence"] and r["why"] for r in evidence.values())


def test_the_html_report_has_the_evidence_table(tmp_path):
    from workbench.reports.fusion_html import render_html

    model, layers, _ = _golden("yolo_neck_fp32")
    report = account_fusion(model, layers)
    html = render_html(report, layers, plotly_js="")
    section = html.split("ONNX nodes no layer's metadata names, and the evidence")[1].split("<h2>")[0]
    assert "/Concat" in section and "producers write one buffer its readers read" in section


def test_the_fusion_page_shows_each_fate_with_its_evidence(session_wb, fresh_caches):
    """The YOLO neck built in the workbench: the page's evidence table shows the elided Concat and why."""
    from tests.conftest import open_page
    from workbench import ui
    from workbench.spec import BuildSpec, profiles_from_args

    ref = session_wb.import_path(FIXTURES / "yolo_neck.onnx")
    spec = BuildSpec(
        profiles=profiles_from_args(["images:1x3x64x64"], ["images:2x3x64x64"], ["images:4x3x64x64"])
    )
    job_id = session_wb.submit_build(ref, spec)
    assert session_wb.jobs.wait(job_id, timeout=300).status == "succeeded"
    at = open_page(
        "fusion",
        60,
        **{ui.MODEL_DIGEST: ref.digest, ui.FUSION_JOB: job_id, "fusion.tab": "Reading the names"},
    )
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert {m.label: m.value for m in at.metric}["Unaccounted"] == "0"
    table = next(d.value for d in at.dataframe if "evidence" in d.value.columns and "why" in d.value.columns)
    concat = table[table["node"] == "/Concat"].iloc[0]
    assert (
        concat["fate"] == "eliminated" and concat["evidence"] == "producers write one buffer its readers read"
    )
    assert "elided into its consumers' buffer" in concat["why"]


def test_the_cli_text_says_how_many_nodes_were_placed_by_evidence():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "layers", str(GOLDEN / "bert_tiny_mask_qdq_int8.build.log"),
         "--model", str(GOLDEN / "bert_tiny_mask_qdq.onnx")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    model, layers, _ = _golden("bert_tiny_mask_qdq_int8")
    ruled = [n for n in account_fusion(model, layers).nodes if n.evidence in RULE_EVIDENCE]
    assert f"{len(ruled)} nodes no layer's metadata names were placed by evidence" in out.stdout
    assert "UNACCOUNTED" not in out.stdout and "0 unaccounted" in out.stdout


def test_a_listing_that_names_no_node_places_nothing_by_rule():
    """With no layer metadata at all there is no evidence anywhere: the rules place nothing, every computing node
    is unaccounted (and the accounting stays quick: searches stop a few nodes away)."""
    from dataclasses import replace

    model, layers, _ = _golden("bert_tiny_mask_qdq_int8")
    bare = replace(layers, layers=tuple(replace(ly, onnx_nodes=()) for ly in layers.layers))
    report = account_fusion(model, bare)
    assert not [n for n in report.nodes if n.layers]
    assert not [n for n in report.nodes if n.evidence in ("inside", "moved", "body")]
    matmuls = [n for n in report.nodes if n.op_type == "MatMul"]
    assert matmuls and all(n.fate == "unaccounted" for n in matmuls)


def test_a_where_repeated_with_equal_constants_is_computed_once_and_a_changed_one_is_not():
    """GPT-2 blocks each compute the same mask ``Where`` from constants of equal value and different names; TensorRT
    computes it once. With a constant of another value the node is no twin, and stays unaccounted."""
    model, layers, _ = _golden("scalar_if_fp32")
    fates = _fates(model, layers)
    listed = {n.split(" | ")[0] for ly in layers.for_profile(0) for n in ly.onnx_nodes}
    twin = next(f for f in fates.values() if f.evidence == "twin")
    other = re.search(r"duplicate of (\S+) ", twin.reason).group(1)
    assert twin.op_type == "Where" and other in listed and twin.node not in listed
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    drop = next(n for n in _by_name(model)[twin.node].input if n.endswith("/drop"))
    init = next(t for t in changed.graph.initializer if t.name == drop)
    init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 2, drop))
    again = {n.node: n for n in account_fusion(changed, layers).nodes}
    assert again[twin.node].fate == "unaccounted"


def test_an_unsqueeze_that_ends_an_if_branch_is_a_view_into_the_if_output():
    model, layers, _ = _golden("scalar_if_fp32")
    fates = _fates(model, layers)
    listing = _listing(layers)
    for name in ("then/unsqueeze", "else/unsqueeze"):
        f = fates[name]
        assert f.parent == "by_rate" and f.evidence == "tensors" and f.fate == "eliminated"
        writer, tensor, reader = re.search(
            r"; (\S+) \(which computes .*?\) writes tensor (.+), and (\S+), which", f.reason
        ).groups()
        assert tensor in listing[writer][2] and tensor in listing[reader][1] and "y_if" in listing[reader][2]


def test_swin_style_qkv_gathers_are_views_and_the_q_scale_moves_into_the_softmax_kernel():
    """torchvision's Swin/ViT attention takes q, k, v with Gather from one permuted QKV tensor (84 nodes of Swin-T
    were unaccounted); each Gather is a view between the kernel writing the permuted QKV and the one reading it."""
    model, layers, _ = _golden("attention_gather_fp32")
    fates = _fates(model, layers)
    listing = _listing(layers)
    for name in ("qkv_reshape", "qkv_permute", "q_gather", "k_gather", "v_gather"):
        f = fates[name]
        assert (f.fate, f.evidence) == ("eliminated", "tensors"), f
        writer, tensor, reader = re.search(
            r": (\S+) writes tensor (\S+) and (\S+) reads it", f.reason
        ).groups()
        assert tensor in listing[writer][2] and tensor in listing[reader][1] and "qkv_b" in listing[writer][0]
    scale = fates["q_scale"]
    assert scale.evidence == "moved" and "softmax" in listing[scale.layers[0]][0]


def test_unnamed_compute_nodes_of_a_paddle2onnx_export_are_named_as_the_parser_names_them():
    """The parser names a node without a name ``node_of_<its first output>``; the listing's metadata uses that name,
    so every unnamed Conv, BatchNormalization, MatMul … of the export is found in its layer."""
    model, layers, text = _golden("neg_dim_fp32")
    fates = _fates(model, layers)
    unnamed = [n for n in model.graph.node if not n.name]
    assert len(unnamed) >= 7 and "Conv" in {n.op_type for n in unnamed}
    for n in unnamed:
        name = f"node_of_{n.output[0]}"
        assert f"Parsing node: {name} [{n.op_type}]" in text
        assert fates[name].evidence == "metadata" and fates[name].layers
        assert _layers_of(layers, name) == set(fates[name].layers)


def test_each_optimization_profile_of_a_fresh_build_is_accounted_with_the_same_evidence(tmp_path):
    """Two profiles: TensorRT lists a copy of the network per profile, its tensor names tagged ' [profile 1]'; the
    tensor evidence holds in both copies."""
    path = tmp_path / "attention_gather.onnx"
    onnx.save(fusion_models.attention_gather(), str(path))
    profiles = [fusion_models.ATTENTION_PROFILE[0], {"x": ([1, 32, 32], [4, 64, 32], [8, 128, 32])}]
    layers = parse_build_log(make_golden.build_log(path, tmp_path / "a.plan", profiles))
    assert layers.num_profiles == 2
    model = onnx.load(str(path))
    by_profile = [{n.node: n for n in account_fusion(model, layers, profile=p).nodes} for p in (0, 1)]
    for fates in by_profile:
        assert not [n for n in fates.values() if n.fate == "unaccounted"]
        assert fates["q_gather"].evidence == "tensors" and fates["q_scale"].evidence == "moved"
    names = [{ly.name for ly in layers.for_profile(p)} for p in (0, 1)]
    for p in (0, 1):  # each profile's copy is explained by that profile's own layers
        assert by_profile[p]["q_scale"].layers and set(by_profile[p]["q_scale"].layers) <= names[p]


def test_qdq_views_of_a_quantized_gpt2_pass_through_the_transpose_kernel_tensorrt_added():
    """In the INT8 GPT-2 the heads' merge (Transpose → Reshape with Q/DQ around each) is done by a transpose kernel
    with no ONNX metadata, between the attention's GEMM and the projection's (70 nodes unaccounted before)."""
    model, layers, _ = _golden("gpt2_2layer_qdq_int8")
    fates = _fates(model, layers)
    listing = _listing(layers)
    hop = [f for f in fates.values() if "a layer TensorRT added" in f.reason]
    assert {f.op_type for f in hop} >= {"Transpose", "Reshape", "QuantizeLinear", "DequantizeLinear"}
    for f in hop:
        first, added, tensor, reader = re.search(
            r": (\S+), then (\S+) \(a layer TensorRT added\), writes tensor (\S+) and (\S+) reads it",
            f.reason,
        ).groups()
        assert not listing[added][0] and tensor in listing[added][2] and tensor in listing[reader][1]
        assert listing[first][2] & listing[added][1]  # the added layer reads what the first one writes
