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
    tmp: Path, timeout: float = 60.0, extra_env: dict[str, str] | None = None, app_dir: Path = REPO
) -> Iterator[RunningApp]:
    """Start ``python -m streamlit run app.py --server.port <free port> --server.headless true`` in
    ``app_dir`` (the repository), as the README does, with a fresh ``WORKBENCH_HOME`` under ``tmp``; stop it
    afterwards."""
    home = tmp / "workbench-home"
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
