"""The app in a real browser: Debian's chromium, a fresh profile, no internet.

A user starts the app as the README says, opens a bundled sample, reads its summary and sees Netron draw
the graph inside the app; nothing the browser does may leave the machine. The control test shows Netron as
shipped, in the same browser, does phone home, ask for cookie consent and lock itself after 180 days, so the
checks above would see it if a patch stopped working.

The last three walk the user's whole path, each in a fresh app (an empty workspace) and a fresh profile: a
build watched live, then its fusion report; a comparison of an INT8 simulation against ONNX Runtime; the
one-click demo, ending on its report opened offline. What the pages show is checked against what the real
jobs wrote into the workspace, never against numbers typed in here.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
import zipfile
from pathlib import Path

import pytest

from tests.browser_support import (
    browser_skip_reason,
    chromium,
    evidence_on_failure,
    fresh_context,
    go_to,
    main_area,
    metric_value,
    offline_page,
    open_app,
    open_sample,
    plotly_drawn,
    read_grid,
    running_app,
    shown_job_id,
    wait_finished,
    wait_grid_rows,
    wait_live_panel,
)

pytestmark = pytest.mark.browser

SAMPLE = "cnn_residual"
DRAW_TIMEOUT_MS = 30_000
CONSENT_TEXT = "This app uses cookies"
EXPIRED_TEXT = "Please update to the newest version"
JOB_TIMEOUT_MS = 180_000  # a job on a loaded 2-core CI machine; they take seconds here


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with running_app(tmp_path_factory.mktemp("app")) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def sample():
    """The sample as the user picks it (catalog title) and what its graph holds (read from the ONNX file)."""
    import onnx

    from workbench.samples import get_sample

    s = get_sample(SAMPLE)
    graph = onnx.load(str(s.path), load_external_data=False).graph
    return s, [(node.name, node.op_type) for node in graph.node]


@pytest.fixture(scope="module")
def published(app, sample):
    """The sample published into the app's static folder, as the Model page does, and the viewer's base."""
    from workbench.netron import NETRON_BASE, prepare_netron, publish_model

    prepare_netron(app.static_dir / "netron")
    return publish_model(app.static_dir, sample[0].path), NETRON_BASE


def _wait_drawn(frame) -> None:
    frame.locator("#canvas .graph-node").first.wait_for(state="attached", timeout=DRAW_TIMEOUT_MS)


def _assert_graph_drawn(frame, nodes: list[tuple[str, str]]) -> None:
    """Every ONNX node is an SVG node of the drawing, labelled with its op type."""
    assert frame.locator("#canvas .graph-node").count() == len(nodes)
    for name, op_type in nodes:
        element = frame.locator(f'[id="node-name-{name}"]')
        assert element.count() == 1, f"node {name!r} is not drawn"
        assert op_type in (element.text_content() or ""), f"node {name!r} is not labelled {op_type}"


def _assert_no_dialog(frame) -> None:
    assert frame.get_by_text(CONSENT_TEXT).count() == 0, "Netron shows its cookie-consent dialog"
    assert frame.get_by_text(EXPIRED_TEXT).count() == 0, "Netron refuses to run (expired)"


def _selected(frame) -> list[str]:
    nodes = frame.locator("#canvas .graph-node.select")
    return sorted(
        (nodes.nth(i).get_attribute("id") or "").removeprefix("node-name-") for i in range(nodes.count())
    )


def test_fresh_browser_opens_a_sample_and_netron_draws_it_offline(app, browser, sample):
    s, nodes = sample
    with fresh_context(browser) as (context, guard):
        page = context.new_page()
        open_app(page, app)
        # The summary: the model's name as a heading and its real node count.
        open_sample(page, s.title, s.path.name)
        assert metric_value(page, "Nodes") == f"{len(nodes):,}"

        page.get_by_role("tab", name="Graph (Netron)").click()
        iframe_selector = f'iframe[title="Netron graph of {s.path.name}"]'
        page.locator(iframe_selector).wait_for(timeout=30_000)
        src = page.locator(iframe_selector).get_attribute("src") or ""
        assert src.startswith("/app/static/netron/index.html?url=/app/static/m/"), src
        frame = page.frame_locator(iframe_selector)
        _wait_drawn(frame)
        _assert_graph_drawn(frame, nodes)
        _assert_no_dialog(frame)

        # What a rerun with a new selection does to the iframe: only the fragment of its src changes, and
        # the loaded view re-selects without reloading the model.
        first, second = nodes[0][0], nodes[-1][0]
        page.evaluate(
            """([selector, names]) => {
                const iframe = document.querySelector(selector);
                iframe.contentWindow.__loadedOnce = true;
                iframe.src = iframe.getAttribute('src').split('#')[0] + '#select=' + names;
            }""",
            [iframe_selector, f"{_quote(first)},{_quote(second)}"],
        )
        frame.locator(f'body[data-workbench-selected="{first},{second}"]').wait_for(timeout=10_000)
        assert _selected(frame) == sorted([first, second])
        assert page.evaluate(
            "s => document.querySelector(s).contentWindow.__loadedOnce === true", iframe_selector
        )

        guard.assert_clean()


def test_viewer_url_selects_nodes_and_follows_the_fragment(app, browser, sample, published):
    from workbench.netron import viewer_url

    _, nodes = sample
    model_url, base = published
    wanted = [nodes[0][0], nodes[3][0]]
    with fresh_context(browser) as (context, guard):
        page = context.new_page()
        page.goto(app.url + viewer_url(model_url, select=wanted, netron_base=base))
        body = page.locator("body[data-workbench-selected]")
        body.wait_for(state="attached", timeout=DRAW_TIMEOUT_MS)
        assert body.get_attribute("data-workbench-selected") == ",".join(wanted)
        assert body.get_attribute("data-workbench-missing") == ""
        assert _selected(page) == sorted(wanted)

        # A new fragment re-selects: the old nodes are released, an unknown name is reported, not fatal.
        page.goto(app.url + viewer_url(model_url, select=[nodes[-1][0], "no such node"], netron_base=base))
        page.locator('body[data-workbench-missing="no such node"]').wait_for(state="attached", timeout=10_000)
        assert _selected(page) == [nodes[-1][0]]
        _assert_graph_drawn(page, nodes)
        guard.assert_clean()


def test_prepared_netron_still_runs_a_year_after_its_release(app, browser, sample, published):
    from workbench.netron import netron_source, viewer_url

    release = _release_date(netron_source() / "index.html")
    model_url, base = published
    with fresh_context(browser) as (context, guard):
        page = context.new_page()
        page.clock.set_fixed_time(release + dt.timedelta(days=400))
        page.goto(app.url + viewer_url(model_url, netron_base=base))
        _wait_drawn(page)
        _assert_graph_drawn(page, sample[1])
        _assert_no_dialog(page)
        guard.assert_clean()


def test_a_model_whose_external_data_is_named_like_a_page_is_drawn_and_its_page_never_runs(app, browser, tmp_path):
    """An uploaded archive whose weights live in ``pwn.html`` (a page with a script, then the weights): the
    graph view still draws the model in Netron, and no link the app serves opens the page."""
    import onnx

    from tests import onnx_models
    from workbench.model import import_model
    from workbench.netron import NETRON_BASE, prepare_netron, publish_model, viewer_url
    from workbench.workspace import Workspace

    path = onnx_models.page_named_external_data(tmp_path / "src")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(path, "model.onnx")
        zf.write(path.parent / "pwn.html", "pwn.html")
    ref = import_model(Workspace.at(tmp_path / "ws"), buf.getvalue(), "bundle.zip")
    prepare_netron(app.static_dir / "netron")
    model_url = publish_model(app.static_dir, ref.path, keep=10_000)
    nodes = [(n.name, n.op_type) for n in onnx.load(str(path), load_external_data=False).graph.node]
    with fresh_context(browser) as (context, guard):
        page = context.new_page()
        page.goto(app.url + viewer_url(model_url, netron_base=NETRON_BASE))
        _wait_drawn(page)
        _assert_graph_drawn(page, nodes)
        folder = model_url.rsplit("/", 1)[0]
        response = page.goto(f"{app.url}{folder}/pwn.html")
        assert response is not None and response.status == 404
        assert not page.title().startswith("pwned"), "the page's script ran on the app's origin"
        data = context.request.get(f"{app.url}{folder}/0.bin")  # the browser downloads it, never renders it
        assert data.status == 200 and data.headers["content-type"] == "application/octet-stream"
        assert data.headers["x-content-type-options"] == "nosniff"
        guard.assert_clean()


def test_a_model_whose_strings_are_markdown_images_and_links_makes_the_browser_fetch_nothing(app, browser):
    """A model whose producer, doc string and node names are Markdown images and links to a local beacon server,
    opened from "Recent models" in a fresh browser: the page shows the text, no image or link is drawn from it,
    and the beacon receives no request."""
    import http.server
    import threading

    from tests.browser_support import free_port
    from tests.test_hostile_inputs import beacon_model
    from workbench.service import Workbench

    hits: list[str] = []

    class Beacon(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Beacon)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        Workbench.open(app.home).import_upload(beacon_model(port=port), "beacon.onnx")
        with fresh_context(browser) as (context, guard):
            page = context.new_page()
            open_app(page, app)
            page.get_by_label("Recent models").click()
            page.get_by_role("option").filter(has_text="beacon.onnx").first.click()
            page.get_by_role("heading", name="beacon.onnx", exact=True).wait_for(timeout=DRAW_TIMEOUT_MS)
            main = main_area(page)
            page.get_by_test_id("stCaptionContainer").first.wait_for(timeout=10_000)
            time.sleep(2)  # time for any image the page would load
            assert hits == [], f"the page made the browser fetch {hits}"
            assert main.locator(f'img[src*="127.0.0.1:{port}"]').count() == 0
            assert main.locator(f'a[href*="127.0.0.1:{port}"]').count() == 0
            main.get_by_text("producer ![x](http://127.0.0.1", exact=False).first.wait_for(timeout=10_000)
            guard.assert_clean()
    finally:
        server.shutdown()


def test_control_netron_as_shipped_phones_home_asks_consent_and_expires(app, browser, published):
    """The checks above can fail: the unpatched viewer, served from the same origin, trips every one."""
    from workbench.netron import netron_source

    source = netron_source()
    model_url, _ = published
    raw = f"{app.url}/__shipped_netron"

    def serve_shipped(route):
        name = route.request.url.split("?")[0].removeprefix(raw + "/")
        route.fulfill(path=source / name) if (source / name).is_file() else route.fulfill(status=404)

    with fresh_context(browser) as (context, guard):
        page = context.new_page()
        page.route(re.compile(re.escape(raw) + r"/.*"), serve_shipped)
        page.goto(f"{raw}/index.html?url={model_url}")
        page.get_by_text(CONSENT_TEXT).wait_for(timeout=DRAW_TIMEOUT_MS)
        page.get_by_role("button", name="Accept").click()
        _wait_drawn(page)
        assert any("ipinfo.io" in entry for entry in guard.external), guard.external
        assert any("analytics.google.com" in entry for entry in guard.external), guard.external

    release = _release_date(source / "index.html")
    with fresh_context(browser) as (context, _guard):
        page = context.new_page()
        page.clock.set_fixed_time(release + dt.timedelta(days=400))
        page.route(re.compile(re.escape(raw) + r"/.*"), serve_shipped)
        page.goto(f"{raw}/index.html?url={model_url}")
        page.get_by_text(EXPIRED_TEXT).wait_for(timeout=DRAW_TIMEOUT_MS)


# ---------------------------------------------------------------------------------------------- whole paths


@pytest.fixture()
def fresh_app(tmp_path):
    """The app started as the README does, on an empty workspace of its own."""
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with running_app(tmp_path / "app") as running:
        yield running


def _job_dir(app, job_id: str) -> Path:
    """Where the job the page shows keeps its state and artifacts (in the app's workspace)."""
    from workbench.workspace import Workspace

    job_dir = Workspace.at(app.home).jobs_dir / job_id
    assert (job_dir / "job.json").is_file(), f"the page shows job {job_id}, which the workspace lacks"
    return job_dir


def _download(page, button) -> tuple[str, bytes]:
    """Press a download button; (file name the browser is given, bytes it receives)."""
    with page.expect_download(timeout=DRAW_TIMEOUT_MS) as info:
        button.click()
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


@pytest.mark.slow
def test_build_watched_live_then_its_fusion_report(fresh_app, browser, tmp_path):
    """Open the CNN sample, build it, watch the build, download the plan, read the fusion report.

    The build is INT8 on random calibration data (the CNN sample ships none), with the proposed profile: it
    calibrates before it builds, so it runs long enough for the one-second live panel to show its log. An FP32
    build of this sample finishes in under a second, before the panel polls a second time.
    """
    import onnx

    from workbench.fusion import ENGINE_GRAPH, job_network_model, job_report
    from workbench.samples import get_sample

    s = get_sample(SAMPLE)
    with fresh_context(browser, accept_downloads=True) as (context, guard):
        page = context.new_page()
        main = main_area(page)
        with evidence_on_failure(page, fresh_app, tmp_path):
            open_app(page, fresh_app)
            open_sample(page, s.title, s.path.name)

            go_to(page, "Build")
            main.get_by_label("Precision").click()
            page.get_by_role("option", name="INT8", exact=True).click()
            main.get_by_text("Random (shapes only — accuracy meaningless)", exact=True).click()
            main.get_by_text("Random calibration data: the engine builds").wait_for()
            main.get_by_role("button", name="Build", exact=True).click()

            # While it runs: a progress bar ("<phase> · <elapsed> s") beside this job's log.
            progress, lines = wait_live_panel(page, JOB_TIMEOUT_MS)
            job_id = shown_job_id(main)
            assert re.fullmatch(r".+ · \d+\.\d s", progress), progress
            assert any(job_id in line for line in lines), lines
            wait_finished(main, JOB_TIMEOUT_MS)
            job_dir = _job_dir(fresh_app, job_id)

            # The plan the browser downloads is the plan the build wrote.
            name, data = _download(page, main.get_by_role("button", name="Download plan"))
            assert name == f"{SAMPLE}.int8.{job_id[:8]}.plan"  # named after model and build, not engine.plan
            assert _sha256(data) == _sha256((job_dir / "engine.plan").read_bytes())
            # The bundle is zipped when asked for, and carries that plan, the Q/DQ network and the commands.
            assert not (job_dir / "bundle.zip").exists()
            name, data = _download(page, main.get_by_role("button", name="Bundle (.zip)"))
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                assert name == f"{SAMPLE}.int8.{job_id[:8]}.bundle.zip" and {"engine.plan", "model_qdq.onnx", "commands.sh"} <= set(zf.namelist())
                assert _sha256(zf.read("engine.plan")) == _sha256((job_dir / "engine.plan").read_bytes())

            # The fusion report of that build: summary, layer table, search, engine graph beside the model.
            layers, report = job_report(job_dir)
            go_to(page, "Fusion", heading="Layer fusion")
            counts = report.fate_counts
            shown = {
                label: metric_value(main, label)
                for label in (
                    "ONNX nodes",
                    "Engine layers",
                    "Fused",
                    "Split",
                    "Eliminated / folded",
                    "Unaccounted",
                )
            }
            assert shown == {
                "ONNX nodes": str(report.num_onnx_nodes),
                "Engine layers": str(report.num_layers),
                "Fused": str(counts["fused"]),
                "Split": str(counts["split"]),
                "Eliminated / folded": str(counts["eliminated"] + counts["constant_folded"]),
                "Unaccounted": "0",
            }
            assert report.num_layers < report.num_onnx_nodes

            rows = layers.search("", profile=report.profile)
            table = main.get_by_test_id("stDataFrame").first
            grid = read_grid(table)
            assert grid.row_count == len(rows) == report.num_layers
            assert grid.rows and grid.column("name") == [r["name"] for r in rows][: len(grid.rows)]

            types = [r["type"] for r in rows]
            query = next(t for t in dict.fromkeys(types) if types.count(t) < len(types))
            found = layers.search(query, profile=report.profile)
            main.get_by_label("Search layers").fill(query)
            main.get_by_label("Search layers").press("Enter")
            grid = wait_grid_rows(table, len(found))
            assert grid.column("name") == [r["name"] for r in found][: len(grid.rows)]

            main.get_by_role("tab", name="Graph", exact=True).click()
            network = job_network_model(job_dir)
            model_view = page.frame_locator(f'iframe[title="Netron graph of {network.name}"]')
            engine_view = page.frame_locator(f'iframe[title="Netron graph of {ENGINE_GRAPH}"]')
            _wait_drawn(model_view)
            _wait_drawn(engine_view)
            model_graph = onnx.load(str(network), load_external_data=False).graph
            engine_graph = onnx.load(str(job_dir / ENGINE_GRAPH)).graph
            assert len(engine_graph.node) == report.num_layers
            _assert_graph_drawn(model_view, [(n.name, n.op_type) for n in model_graph.node])
            _assert_graph_drawn(engine_view, [(n.name, n.op_type) for n in engine_graph.node])
            _assert_no_dialog(engine_view)
        guard.assert_clean()


@pytest.mark.slow
def test_comparison_of_an_int8_simulation_names_its_culprits(fresh_app, browser, tmp_path):
    """Open the digits sample, compare an INT8 Q/DQ simulation with ONNX Runtime FP32, read the per-layer
    results and the culprits; the page says the candidate is a simulation, not an engine."""
    from workbench.accuracy import load_comparison
    from workbench.accuracy.job import SOURCE_LABELS
    from workbench.accuracy.spec import ENGINE, KIND_LABELS
    from workbench.samples import get_sample

    s = get_sample("digits_mlp")
    with fresh_context(browser) as (context, guard):
        page = context.new_page()
        main = main_area(page)
        with evidence_on_failure(page, fresh_app, tmp_path):
            open_app(page, fresh_app)
            open_sample(page, s.title, s.path.name)

            go_to(page, "Accuracy")
            main.get_by_text(SOURCE_LABELS["int8"], exact=True).click()
            main.get_by_role("combobox", name="Calibrator").wait_for()  # the INT8 options are there: the rerun is done
            main.get_by_role("button", name="Compare", exact=True).click()
            wait_finished(main, JOB_TIMEOUT_MS)
            job_dir = _job_dir(fresh_app, shown_job_id(main))
            result = load_comparison(job_dir)
            assert result.is_simulation and result.tensors and result.culprits

            # Said plainly: an ONNX Runtime simulation, not an engine result; nothing claims an engine ran.
            said = main.get_by_test_id("stAlertContentWarning").filter(
                has_text=f"Candidate {result.candidate}"
            )
            said.wait_for()
            text = said.inner_text()
            assert result.kind_label in text
            assert "ONNX Runtime simulation" in text and "not an engine result" in text
            assert main.get_by_text(KIND_LABELS[ENGINE]).count() == 0

            # Per layer along the network, titled with the candidate's kind: one marker per compared tensor.
            plotly_drawn(main)
            plot = main.locator(".js-plotly-plot:has(.main-svg)").filter(
                has_text=f"per tensor — candidate: {result.kind_short}"
            )
            assert plot.locator(".scatterlayer path.point").count() == len(result.tensors)

            main.get_by_role("tab", name="Table", exact=True).click()
            grid = read_grid(_visible_frame(main))
            assert grid.row_count == len(result.tensors)
            assert grid.column("tensor") == [t.name for t in result.tensors][: len(grid.rows)]

            main.get_by_role("tab", name="Culprits", exact=True).click()
            bars = main.locator(".js-plotly-plot").filter(has_text="culprit finder")
            bars.locator(".barlayer path").first.wait_for(timeout=DRAW_TIMEOUT_MS)
            assert bars.locator(".barlayer .point").count() == len(result.culprits)
            grid = read_grid(_visible_frame(main))
            assert grid.column("tensor") == [c.tensor for c in result.culprits]
            assert grid.column("rank") == [str(c.rank) for c in result.culprits]
        guard.assert_clean()


@pytest.mark.slow
def test_demo_runs_in_one_click_and_its_report_opens_offline(fresh_app, browser, tmp_path):
    """The Model page's demo: one click, the headline numbers, and an HTML report that opens from a file with
    the network cut (Plotly included, nothing fetched)."""
    import json

    from playwright.sync_api import expect

    from workbench.accuracy import load_comparison
    from workbench.demo import REPORT

    with fresh_context(browser, accept_downloads=True) as (context, guard):
        page = context.new_page()
        main = main_area(page)
        with evidence_on_failure(page, fresh_app, tmp_path):
            open_app(page, fresh_app)
            main.get_by_text("Demo: the whole flow in one click", exact=True).click()
            main.get_by_role("button", name=re.compile(r"^▶ Run the demo")).click()
            wait_finished(main, JOB_TIMEOUT_MS)
            demo_dir = _job_dir(fresh_app, shown_job_id(main))

            steps = json.loads((demo_dir / "job.json").read_text())["result"]["steps"]
            plans = {
                k: (_job_dir(fresh_app, steps[k]) / "engine.plan").stat().st_size for k in ("fp32", "int8")
            }
            comparison = load_comparison(_job_dir(fresh_app, steps["compare"]))
            assert comparison.task and comparison.culprits
            assert metric_value(main, "FP32 plan") == f"{plans['fp32'] / 1024:.0f} KiB"
            assert metric_value(main, "INT8 plan") == f"{plans['int8'] / 1024:.0f} KiB"
            assert metric_value(main, "Top-1, INT8 simulation") == f"{comparison.task.candidate_accuracy:.2%}"
            assert metric_value(main, "Adds the most error") == comparison.culprits[0].tensor
            assert main.get_by_text(comparison.kind_label, exact=True).is_visible()

            name, data = _download(page, main.get_by_role("button", name="Download the demo report (HTML)"))
            assert name == REPORT
            assert _sha256(data) == _sha256((demo_dir / REPORT).read_bytes())
            text = data.decode("utf-8")
            assert "Layer fusion" in text and comparison.kind_label in text
        guard.assert_clean()

    saved = tmp_path / name
    saved.write_bytes(data)
    with offline_page(browser, saved) as offline:
        with evidence_on_failure(offline.page, None, tmp_path):
            offline.page.goto(offline.url)
            offline.page.get_by_role("heading", name=re.compile(r"^Layer fusion")).wait_for()
            frames = offline.page.locator("iframe")
            assert frames.count() >= 2  # the fusion report and the accuracy report
            for i in range(frames.count()):
                expected = (frames.nth(i).get_attribute("srcdoc") or "").count("Plotly.newPlot(")
                assert expected > 0
                frame = offline.page.frame_locator("iframe").nth(i)
                plotly_drawn(frame)
                # Every figure of the frame draws (waiting for all, not comparing counts mid-draw).
                expect(frame.locator(".js-plotly-plot:has(.main-svg)")).to_have_count(
                    expected, timeout=DRAW_TIMEOUT_MS
                )
                # ... and the frame is as tall as its report: no figure is cut or hidden behind an inner scrollbar
                content = frame.locator("html").evaluate("e => e.scrollHeight")
                deadline = time.monotonic() + 10
                while frames.nth(i).evaluate("f => f.offsetHeight") < content and time.monotonic() < deadline:
                    time.sleep(0.2)
                    content = frame.locator("html").evaluate("e => e.scrollHeight")
                assert frames.nth(i).evaluate("f => f.offsetHeight") >= content, (i, content)
        assert offline.attempted == [], offline.attempted


def _visible_frame(scope):
    """The data frame in the open tab (hidden tabs keep theirs in the page)."""
    frame = scope.get_by_test_id("stDataFrame").locator("visible=true").first
    frame.wait_for(timeout=DRAW_TIMEOUT_MS)
    return frame


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _release_date(index_html: Path) -> dt.datetime:
    match = re.search(r'<meta name="date" content="([^"]+)">', index_html.read_text(encoding="utf-8"))
    assert match, "Netron's index.html has no date meta"
    return dt.datetime.fromisoformat(match.group(1)).replace(tzinfo=dt.timezone.utc)
