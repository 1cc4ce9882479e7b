"""The app in a real browser: Debian's chromium, a fresh profile, no internet.

A user starts the app as the README says, opens a bundled sample, reads its summary and sees Netron draw
the graph inside the app; nothing the browser does may leave the machine. The last test is the control:
Netron as shipped, in the same browser, does phone home, ask for cookie consent and lock itself after
180 days, so the checks above would see it if a patch stopped working.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.browser_support import browser_skip_reason, chromium, fresh_context, running_app

pytestmark = pytest.mark.browser

SAMPLE = "cnn_residual"
DRAW_TIMEOUT_MS = 30_000
CONSENT_TEXT = "This app uses cookies"
EXPIRED_TEXT = "Please update to the newest version"


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
        page.goto(app.url)
        page.get_by_role("heading", name="Model").wait_for(timeout=30_000)

        page.get_by_label("…or open a bundled sample").click()
        page.get_by_role("option", name=s.title).click()
        page.get_by_role("button", name="Open sample").click()

        # The summary: the model's name as a heading and its real node count.
        page.get_by_role("heading", name=s.path.name).wait_for(timeout=30_000)
        nodes_metric = page.get_by_test_id("stMetric").filter(has_text="Nodes")
        assert nodes_metric.get_by_test_id("stMetricValue").inner_text().strip() == f"{len(nodes):,}"

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


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _release_date(index_html: Path) -> dt.datetime:
    match = re.search(r'<meta name="date" content="([^"]+)">', index_html.read_text(encoding="utf-8"))
    assert match, "Netron's index.html has no date meta"
    return dt.datetime.fromisoformat(match.group(1)).replace(tzinfo=dt.timezone.utc)
