"""Real-browser test support: the app started the way the README starts it, and Debian's chromium driven by
Playwright with a guard that records every request leaving the machine.

Nothing here downloads a browser: Playwright drives ``/usr/bin/chromium`` (``executable_path``). Tests skip,
saying why, when chromium or the Playwright package is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
# Schemes that never touch the network.
_LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-extension", "devtools"})
# Matched by the Playwright driver itself, so local requests are not slowed by a round trip to Python.
_NON_LOCAL_URL = re.compile(
    r"^(?!(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?([/?#]|$))[a-z][a-z0-9+.-]*://"
)


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return f"Debian chromium not found at {CHROMIUM} (apt-get install chromium); no browser is ever downloaded"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Playwright Python package is not installed (pip install playwright; no browser download needed)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------- the app


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    home: Path
    app_dir: Path

    @property
    def static_dir(self) -> Path:
        """The folder Streamlit serves at ``/app/static`` (``server.enableStaticServing``)."""
        return self.app_dir / "static"

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


def _wait_healthy(app: RunningApp, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    health = f"{app.url}/_stcore/health"
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"the app exited with code {app.process.returncode}:\n{app.log()}")
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(health, timeout=2) as resp:  # noqa: S310 - our own local server
                if resp.status == 200 and resp.read().strip() == b"ok":
                    return
        time.sleep(0.2)
    raise RuntimeError(f"the app did not answer {health} within {timeout:.0f} s:\n{app.log()}")


@contextlib.contextmanager
def running_app(
    tmp: Path,
    timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
    app_dir: Path = REPO,
    home: Path | None = None,
) -> Iterator[RunningApp]:
    """Start ``python -m streamlit run app.py --server.port <free port> --server.headless true`` in
    ``app_dir`` (the repository), as the README does, with a fresh ``WORKBENCH_HOME`` under ``tmp`` (or
    ``home``, an existing one: the server started again on the same workspace); its log is ``tmp/app.log``.
    Stopped afterwards (unless the test already killed it)."""
    home = home if home is not None else tmp / "workbench-home"
    tmp.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "WORKBENCH_HOME": str(home),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    log_path = tmp / "app.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    cmd += ["--server.headless", "true"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    app = RunningApp(f"http://127.0.0.1:{port}", process, log_path, home, Path(app_dir))
    try:
        _wait_healthy(app, timeout)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# ---------------------------------------------------------------------------------------------- the browser


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in _LOCAL_SCHEMES:
        return True
    host = (parts.hostname or "").lower()
    return host in LOCAL_HOSTS or host == "::1"


@dataclass
class RequestGuard:
    """Records (and aborts) every request whose host is not this machine, and CSP violations in the console."""

    external: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def attach(self, context: Any) -> None:
        context.on("request", self._on_request)
        context.route(_NON_LOCAL_URL, self._block)
        context.on("page", self.watch_page)
        for page in context.pages:
            self.watch_page(page)

    def watch_page(self, page: Any) -> None:
        page.on("websocket", lambda ws: self._record(ws.url, "websocket"))
        page.on("console", self._on_console)

    def _record(self, url: str, what: str) -> None:
        if not is_local(url):
            entry = f"{what} {url}"
            if entry not in self.external:
                self.external.append(entry)

    def _on_request(self, request: Any) -> None:
        self._record(request.url, f"{request.resource_type} {request.method}")

    def _block(self, route: Any) -> None:
        request = route.request
        if is_local(request.url):  # the driver's pattern let a local one through: serve it as usual
            route.fallback()
            return
        self._record(request.url, f"{request.resource_type} {request.method}")
        route.abort("blockedbyclient")

    def _on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        self.console_errors.append(text)
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp_violations.append(text)

    def assert_clean(self) -> None:
        assert not self.external, "requests left the machine:\n" + "\n".join(self.external)
        assert not self.csp_violations, "Content-Security-Policy violations:\n" + "\n".join(
            self.csp_violations
        )


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium through Playwright (sync API); skips with the reason when it cannot run here."""
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def fresh_context(browser: Any, **options: Any) -> Iterator[tuple[Any, RequestGuard]]:
    """A new browser context (an empty profile: no cookies, no storage) with the request guard attached."""
    options.setdefault("viewport", {"width": 1400, "height": 1000})
    options.setdefault("service_workers", "block")
    context = browser.new_context(**options)
    guard = RequestGuard()
    guard.attach(context)
    try:
        yield context, guard
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------- the app's pages
# What a user sees and clicks in the Streamlit app, found by role, label and Streamlit's test ids.

PAGE_TIMEOUT_MS = 30_000
JOB_ID = re.compile(r"^job ([A-Za-z0-9_-]{22})$")


def open_app(page: Any, app: RunningApp) -> None:
    """The app's home (the Model page), rendered."""
    page.goto(app.url)
    page.get_by_role("heading", name="Model").wait_for(timeout=PAGE_TIMEOUT_MS)


def go_to(page: Any, title: str, heading: str | None = None) -> None:
    """Follow the sidebar's link to a page and wait for its title (``heading`` when it differs)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=heading or title, exact=True).wait_for(timeout=PAGE_TIMEOUT_MS)


def open_sample(page: Any, title: str, file_name: str) -> None:
    """On the Model page: pick a bundled sample by its catalog title, open it, wait for its summary."""
    page.get_by_label("…or open a bundled sample").click()
    page.get_by_role("option", name=title, exact=True).click()
    page.get_by_role("button", name="Open sample").click()
    page.get_by_role("heading", name=file_name, exact=True).wait_for(timeout=PAGE_TIMEOUT_MS)


def main_area(page: Any) -> Any:
    return page.get_by_test_id("stMain")


def metric_value(scope: Any, label: str) -> str:
    """The value of the ``st.metric`` labelled exactly ``label``."""
    root = getattr(scope, "page", scope)  # a filter's inner locator is relative: build it from the page
    metric = scope.get_by_test_id("stMetric").filter(
        has=root.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    )
    return str(metric.get_by_test_id("stMetricValue").inner_text()).strip()


def shown_job_id(scope: Any) -> str:
    """The id a job panel shows (``job <id>``)."""
    element = scope.get_by_text(JOB_ID)
    element.wait_for(timeout=PAGE_TIMEOUT_MS)
    match = JOB_ID.match(str(element.inner_text()).strip())
    assert match, element.inner_text()
    return match.group(1)


def wait_finished(scope: Any, timeout_ms: float) -> None:
    """A job panel's status line says the job finished (fails at once, with the page's words, when the
    panel says the job failed or was cancelled)."""
    done = scope.get_by_test_id("stAlertContentSuccess").filter(has_text=re.compile(r"^Finished in "))
    failed = scope.get_by_test_id("stAlertContentError").filter(has_text=re.compile(r"^Failed: "))
    cancelled = scope.get_by_test_id("stAlertContentWarning").filter(has_text=re.compile(r"^Cancelled\."))
    done.or_(failed).or_(cancelled).first.wait_for(timeout=timeout_ms)
    for ended in (failed, cancelled):
        assert ended.count() == 0, ended.first.inner_text()


# The live panel of a running job: a progress bar whose text is "<phase> · <seconds> s" beside a log view that
# already holds lines. Checked in the page itself (polled on every animation frame): the panel is live for as
# long as the job runs, and the Python side could miss a state that lasts one poll of the page. A job that ends
# first (finished, failed) ends the wait too, so a test fails at once, saying what the panel said.
_LIVE_PANEL = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const ended = main && [...main.querySelectorAll('[data-testid^="stAlertContent"]')]
    .map(a => a.innerText.trim()).find(t => /^(Finished in|Failed: |Cancelled\\.)/.test(t));
  if (ended) return {ended};
  const bar = main && main.querySelector('[data-testid="stProgress"]');
  if (!bar || bar.closest('[data-stale="true"]')) return null;
  const lines = [...main.querySelectorAll('[data-testid="stHtml"] pre')]
    .flatMap(pre => pre.innerText.split('\\n')).filter(line => line.trim());
  return lines.length ? {progress: bar.innerText.trim(), lines} : null;
}"""


def wait_live_panel(page: Any, timeout_ms: float) -> tuple[str, list[str]]:
    """Wait until a running job's panel shows progress and log lines together: (progress text, log lines)."""
    seen = page.wait_for_function(_LIVE_PANEL, timeout=timeout_ms).json_value()
    assert "ended" not in seen, (
        f"the job ended before its panel showed progress and log lines: {seen['ended']}"
    )
    return str(seen["progress"]), [str(line) for line in seen["lines"]]


@dataclass(frozen=True)
class GridView:
    """What an ``st.dataframe`` holds, read from the accessible table that Streamlit's data grid keeps in its
    canvas: the row count of the whole frame, the column titles, and the rows it has rendered (the grid is
    virtualised: only rows in view)."""

    row_count: int
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def column(self, name: str) -> list[str]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def read_grid(dataframe: Any, timeout_ms: float = PAGE_TIMEOUT_MS) -> GridView:
    """Read a ``stDataFrame`` element (see :class:`GridView`)."""
    table = dataframe.locator('table[role="grid"]')
    table.wait_for(state="attached", timeout=timeout_ms)
    data = table.evaluate(
        """t => ({
            rows: Number(t.getAttribute('aria-rowcount')) - 1,
            columns: [...t.querySelectorAll('thead th')].map(th => th.textContent),
            cells: [...t.querySelectorAll('tbody tr')].map(
                tr => [...tr.querySelectorAll('td')].map(td => td.textContent)),
        })"""
    )
    return GridView(int(data["rows"]), tuple(data["columns"]), tuple(tuple(r) for r in data["cells"]))


def wait_grid_rows(dataframe: Any, rows: int, timeout_ms: float = PAGE_TIMEOUT_MS) -> GridView:
    """Wait until the frame holds ``rows`` rows (after a search or a rerun), then read it."""
    dataframe.locator(f'table[role="grid"][aria-rowcount="{rows + 1}"]').wait_for(
        state="attached", timeout=timeout_ms
    )
    return read_grid(dataframe, timeout_ms)


def plotly_drawn(scope: Any, timeout_ms: float = PAGE_TIMEOUT_MS) -> Any:
    """Wait until Plotly has drawn a figure in ``scope`` (a page, frame or locator); its first plot div."""
    plot = scope.locator(".js-plotly-plot:has(.main-svg)").first
    plot.wait_for(state="attached", timeout=timeout_ms)
    return plot


@contextlib.contextmanager
def evidence_on_failure(page: Any, app: RunningApp | None, folder: Path) -> Iterator[None]:
    """If the block fails: a screenshot of the page and the app's log tail go with the error."""
    try:
        yield
    except BaseException as err:
        shot = folder / "failure.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot))
        if hasattr(err, "add_note"):
            err.add_note(f"screenshot: {shot}")
            if app is not None:
                err.add_note("app log (tail):\n" + app.log(3000))
        raise


@dataclass
class OfflinePage:
    """A page in a context that is offline, with every request but one file's aborted and recorded."""

    page: Any
    url: str  # the file's own URL: the one thing that loads
    attempted: list[str]


@contextlib.contextmanager
def offline_page(browser: Any, path: Path) -> Iterator[OfflinePage]:
    """A fresh, offline browser context where only ``path`` (as a ``file://`` URL) loads: every other request
    (network, or another local file beside it) is aborted and recorded. For files that claim to be
    self-contained; navigate to its ``url``."""
    context = browser.new_context(
        offline=True, service_workers="block", viewport={"width": 1400, "height": 1000}
    )
    url = path.absolute().as_uri()
    allowed = {url, path.resolve().as_uri()}
    attempted: list[str] = []

    def only_the_file(route: Any) -> None:
        if route.request.url.split("#")[0] in allowed:
            route.fallback()
            return
        attempted.append(route.request.url)
        route.abort("blockedbyclient")

    context.route("**/*", only_the_file)
    try:
        yield OfflinePage(context.new_page(), url, attempted)
    finally:
        context.close()
