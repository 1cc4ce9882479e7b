"""The reports a user downloads or opens (fusion, accuracy, build report, demo report) quote the model's own
strings: names of inputs, tensors, nodes and layers, its producer and doc string. A model whose names are HTML,
a script break-out, a Markdown image or a javascript: link must give reports where all of that is text: no
element, attribute, script or link comes from the model, and the names still read as written."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.spec import BuildSpec, Profile, ShapeRange

IMG = "<img src=http://127.0.0.1:9/x onerror=alert(1)>"
SCRIPT = "</script><script>alert(1)</script>"
MD_IMG = "![x](http://127.0.0.1:9/b.png)"
MD_LINK = "[click](javascript:alert(1))"
A_LINK = "<a href=javascript:alert(1)>a</a>"  # also one of Plotly's own tags
NAMES = (IMG, SCRIPT, MD_IMG, MD_LINK, A_LINK)


def hostile_mlp() -> onnx.ModelProto:
    """[N,16] → MatMul → Relu → MatMul → [N,8], every tensor and node named by a payload."""
    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.normal(size=(16, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "w2")
    g = helper.make_graph(
        [
            helper.make_node("MatMul", [IMG, "w1"], [MD_IMG], name=SCRIPT),
            helper.make_node("Relu", [MD_IMG], [A_LINK], name=f"{MD_LINK} {A_LINK}"),
            helper.make_node("MatMul", [A_LINK, "w2"], [SCRIPT], name=IMG),
        ],
        A_LINK,
        [helper.make_tensor_value_info(IMG, TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info(SCRIPT, TensorProto.FLOAT, ["N", 8])],
        [w1, w2],
        doc_string=MD_LINK,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name=MD_IMG)
    onnx.checker.check_model(m)
    return m


class _Page(HTMLParser):
    """Every element, attribute, script and text of a page; frames' ``srcdoc`` pages parsed too."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self.frames: list[_Page] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        if tag == "iframe" and "srcdoc" in a:
            self.frames.append(parse(a["srcdoc"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


_URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "data", "poster", "srcset"})


def assert_inert(page: str, own_handlers: frozenset[str] = frozenset()) -> _Page:
    """No element or attribute of ``page`` (or of its frames) comes from the payloads; no script is the model's;
    Plotly's figures draw no link from them."""
    p = parse(page)
    _check(p, own_handlers)
    return p


def _check(p: _Page, own_handlers: frozenset[str]) -> None:
    for tag, attrs in p.tags:
        assert tag not in ("img", "a"), (tag, attrs)
        for k, v in attrs.items():
            assert not k.startswith("on") or k in own_handlers, (tag, k, v)
            if k in _URL_ATTRIBUTES:  # (other attribute values are quoted text)
                assert "javascript:" not in v.lower() and "127.0.0.1:9" not in v, (tag, k, v)
    for s in p.scripts:
        assert not s.strip().startswith("alert(1)"), s[:200]  # a <script> of the model's own
        if "Plotly.newPlot" in s:  # figure JSON: "</" escaped; Plotly's <a>/<span> tags, once JSON is decoded,
            assert "</" not in s  # written as text ("&lt;a"), so Plotly draws them as text, never as a link
            decoded = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), s)
            assert re.search(r"<\s*/?\s*(a|span)\b", decoded, re.I) is None, decoded[:2000]
    for frame in p.frames:
        _check(frame, own_handlers)


def shows(p: _Page, *names: str) -> None:
    text = "".join(p.text)
    for n in names:
        assert n in text, n


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "hostile.onnx"
    onnx.save(hostile_mlp(), str(path))
    return path


@pytest.fixture(scope="module")
def hostile_build(session_wb, hostile):
    """A real TensorRT-RTX build of the hostile model (about a second), with a profile keyed by its input."""
    ref = session_wb.import_path(hostile)
    profile = Profile({IMG: ShapeRange((1, 16), (2, 16), (4, 16))})
    job_id = session_wb.submit_build(ref, BuildSpec(precision="fp32", profiles=(profile,)))
    job = session_wb.jobs.wait(job_id, timeout=300)
    assert job.status == "succeeded", (job.error, session_wb.jobs.read_log(job_id)[0][-3000:])
    return session_wb.jobs.job_dir(job_id)


@pytest.fixture(scope="module")
def hostile_comparison(hostile, tmp_path_factory):
    from workbench.accuracy import CompareSpec, compare, load_data, simulate_fp16
    from workbench.accuracy.comparison import REPORT_FILE, SAMPLES_FILE

    out = tmp_path_factory.mktemp("cmp")
    cand = simulate_fp16(hostile, out / "cand")
    result = compare(hostile, cand, load_data(hostile, None), CompareSpec(), out_dir=out)
    return result, out / REPORT_FILE, out / SAMPLES_FILE


def test_the_fusion_report_of_a_model_named_in_html_shows_the_names_as_text(hostile_build):
    from workbench.fusion import diff_builds, job_report
    from workbench.reports.fusion_html import render_html

    layers, report = job_report(hostile_build)
    assert report.num_onnx_nodes == 3
    page = render_html(report, layers, diff=diff_builds(layers, layers))
    p = assert_inert(page)
    shows(p, IMG, SCRIPT, f"{MD_LINK} {A_LINK}")  # node names, in the node table


def test_the_accuracy_report_of_a_model_named_in_html_shows_the_names_as_text(hostile_comparison):
    from workbench.accuracy import load_samples
    from workbench.reports.accuracy_html import render_report

    result, written, samples = hostile_comparison
    assert {t.name for t in result.tensors} >= {SCRIPT, MD_IMG, A_LINK}
    for page in (written.read_text(), render_report(result, load_samples(samples), tensor=SCRIPT)):
        p = assert_inert(page)
        shows(p, SCRIPT, MD_IMG, A_LINK)


def test_the_demo_report_quoting_hostile_names_shows_them_as_text(hostile_build, hostile_comparison):
    from workbench.demo import PLOTLY_FROM_PARENT, render_demo
    from workbench.fusion import job_report
    from workbench.reports.accuracy_html import render_report
    from workbench.reports.fusion_html import render_html

    layers, report = job_report(hostile_build)
    result, _, _ = hostile_comparison
    summary = {
        "model": IMG,
        "fp32": {"plan_bytes": 1024, "layers": 3},
        "int8": {"plan_bytes": 1024, "layers": 3, "int8_layers": 0},
        "fusion_changes": 0,
        "compare": {"status": "pass", "candidate_label": MD_LINK, "top_culprit": {"tensor": SCRIPT, "nodes": [A_LINK]}},
    }
    page = render_demo(
        summary,
        render_html(report, layers, title=f"{IMG}: layers", plotly_js=PLOTLY_FROM_PARENT),
        render_report(result, plotly_js=PLOTLY_FROM_PARENT),
    )
    p = assert_inert(page, own_handlers=frozenset({"onload"}))
    shows(p, IMG, MD_LINK, SCRIPT, A_LINK)
    assert len(p.frames) == 2
    shows(p.frames[0], IMG, SCRIPT)
    shows(p.frames[1], SCRIPT, A_LINK)


# Markdown that is more than text: an image or link ("![", "](" not backslash-escaped), raw HTML ("<" unescaped)
_ACTIVE_MD = re.compile(r"(?<!\\)(?:!\[|\]\(|<(?=[A-Za-z/!?]))")


def test_the_markdown_build_report_of_a_model_named_in_markdown_shows_the_names_as_text(hostile_build):
    from workbench.reports.build_report import REPORT, render_report
    from workbench.text import md

    report = (hostile_build / REPORT).read_text()
    spec = BuildSpec(profiles=(Profile({n: ShapeRange((1, 16), (2, 16), (4, 16)) for n in NAMES}),))
    again = render_report(
        {"id": "j"}, spec, {"warnings": [f"input {n} is odd" for n in NAMES], "notes": list(NAMES)},
        f"{MD_IMG} {IMG}.onnx", "d",
    )
    for doc in (report, again):
        prose = re.sub(r"```sh\n.*?\n```", "", doc, flags=re.S)  # the command lines are code blocks
        assert _ACTIVE_MD.search(prose) is None, _ACTIVE_MD.search(prose)
    assert md(IMG) in report  # the profile table names the input as written
    for n in NAMES:
        assert md(n) in again
