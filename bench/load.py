"""Load: N concurrent browser sessions against one real app, each opening a model and building it.

Starts the app the way ``./run.sh app`` does (``python -m streamlit run app.py --server.headless true``) on a free
loopback port (``--server.address 127.0.0.1``) with a fresh ``WORKBENCH_HOME``, then drives N fresh profiles of
Debian's chromium (Playwright, one browser, N contexts = N independent Streamlit sessions) at the same time.
Each session:

1. opens the app (Model page),
2. opens the bundled ``cnn_residual`` sample (summary shown),
3. goes to the Build page through the sidebar,
4. presses Build with the proposed profile and waits for the result on the page (TensorRT-RTX, no GPU needed).

Reports the success count, p50/p95 latency of the page steps (1-3), build turnaround (press to "Finished",
queueing included: builds run one at a time by default, ``WORKBENCH_MAX_JOBS``), peak RSS of the server and of
server + build workers together (from /proc), and any request that tried to leave the machine (blocked).

    python bench/load.py [--sessions 4] [--time-limit 170] [--json]

Bounded: at most 8 sessions, loopback only, and the whole run stops at ``--time-limit`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser_support import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    browser_skip_reason,
    is_local,
    running_app,
)

MAX_SESSIONS = 8
# Only URLs that do not go to this machine are routed through Python (and refused); local ones go straight.
NON_LOCAL = re.compile(
    r"^(?!(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?([/?#]|$))[a-z][a-z0-9+.-]*://"
)
SAMPLE = "cnn_residual"
STEP_TIMEOUT_MS = 60_000


@dataclass
class Session:
    index: int
    steps: dict[str, float] = field(default_factory=dict)  # page step -> seconds
    build_seconds: float | None = None
    ok: bool = False
    error: str = ""
    blocked: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- memory


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out.append((int(entry.name), int(stat.rsplit(")", 1)[1].split()[1]), cmd))
    return out


class MemorySampler(threading.Thread):
    """Peak RSS of the server (and its children) and of the server plus every build worker of the workspace.

    Workers are found by their command line (``-m workbench.worker <home>/jobs/...``): a worker that starts the
    next queued job leaves it re-parented to init, so the process tree alone would miss it."""

    def __init__(self, server_pid: int, home: Path, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.server_pid, self.home, self.every = server_pid, str(home), every
        self.peak_server_kib = self.peak_total_kib = self.peak_workers = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            procs = _processes()
            children: dict[int, list[int]] = {}
            for pid, ppid, _ in procs:
                children.setdefault(ppid, []).append(pid)
            tree, todo = set(), [self.server_pid]
            while todo:
                pid = todo.pop()
                if pid not in tree:
                    tree.add(pid)
                    todo += children.get(pid, [])
            workers = {pid for pid, _, cmd in procs if "workbench.worker" in cmd and self.home in cmd}
            server = sum(_rss_kib(p) for p in tree - workers)
            total = server + sum(_rss_kib(p) for p in workers)
            self.peak_server_kib = max(self.peak_server_kib, server)
            self.peak_total_kib = max(self.peak_total_kib, total)
            self.peak_workers = max(self.peak_workers, len(workers))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# ---------------------------------------------------------------------------------------------- one session


async def run_session(browser, url: str, title: str, session: Session) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, service_workers="block")

    async def guard(route) -> None:  # loopback only: anything else is recorded and refused
        if is_local(route.request.url):
            await route.fallback()
        else:
            session.blocked.append(route.request.url)
            await route.abort("blockedbyclient")

    await context.route(NON_LOCAL, guard)
    page = await context.new_page()
    try:
        t = time.perf_counter()
        await page.goto(url)
        await page.get_by_role("heading", name="Model").wait_for(timeout=STEP_TIMEOUT_MS)
        await page.get_by_label("…or open a bundled sample").wait_for(timeout=STEP_TIMEOUT_MS)
        session.steps["open app"] = time.perf_counter() - t

        await page.get_by_label("…or open a bundled sample").click()
        await page.get_by_role("option", name=title).click()
        t = time.perf_counter()
        await page.get_by_role("button", name="Open sample").click()
        await page.get_by_role("heading", name=f"{SAMPLE}.onnx").wait_for(timeout=STEP_TIMEOUT_MS)
        session.steps["open model"] = time.perf_counter() - t

        t = time.perf_counter()
        await page.get_by_test_id("stSidebarNav").get_by_role("link", name="Build").click()
        await page.get_by_role("heading", name="Build").wait_for(timeout=STEP_TIMEOUT_MS)
        build_button = page.get_by_role("button", name="Build", exact=True)
        await build_button.wait_for(timeout=STEP_TIMEOUT_MS)
        session.steps["build page"] = time.perf_counter() - t

        t = time.perf_counter()
        await build_button.click()
        done = page.get_by_text(re.compile(r"^(Finished in|Failed:|Cancelled)"))
        await done.first.wait_for(timeout=10 * STEP_TIMEOUT_MS)
        session.build_seconds = time.perf_counter() - t
        text = (await done.first.inner_text()).strip()
        if not text.startswith("Finished in"):
            raise RuntimeError(f"build did not succeed: {text[:200]}")
        session.ok = True
    except Exception as err:  # a bench reports failures, it does not stop at the first one
        session.error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    finally:
        await context.close()


async def run_all(url: str, n: int, time_limit: float) -> list[Session]:
    from playwright.async_api import async_playwright

    from workbench.samples import get_sample

    title = get_sample(SAMPLE).title
    sessions = [Session(i) for i in range(n)]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            tasks = [asyncio.create_task(run_session(browser, url, title, s)) for s in sessions]
            done, pending = await asyncio.wait(tasks, timeout=time_limit)
            for task in pending:
                task.cancel()
            for s in sessions:
                if not s.ok and not s.error:
                    s.error = f"not finished within the {time_limit:.0f} s time limit"
        finally:
            await browser.close()
    return sessions


# ---------------------------------------------------------------------------------------------- report


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(sessions: list[Session], sampler: MemorySampler, wall: float, startup: float, load: float) -> dict:
    steps = sorted({k for s in sessions for k in s.steps}, key=["open app", "open model", "build page"].index)
    all_steps = [v for s in sessions for v in s.steps.values()]
    builds = [s.build_seconds for s in sessions if s.build_seconds is not None]
    return {
        "cpus": os.cpu_count(),
        "load_average_before": round(load, 2),  # other work on the machine inflates every number below
        "sessions": len(sessions),
        "succeeded": sum(s.ok for s in sessions),
        "server_start_s": round(startup, 2),
        "wall_s": round(wall, 1),
        "page_latency_s": {
            k: {"p50": round(_pct(v, 50), 2), "p95": round(_pct(v, 95), 2)}
            for k, v in [(k, [s.steps[k] for s in sessions if k in s.steps]) for k in steps]
            + [("all", all_steps)]
        },
        "build_turnaround_s": {
            "p50": round(_pct(builds, 50), 2),
            "max": round(max(builds), 2) if builds else None,
        },
        "peak_rss_mib": {
            "server": round(sampler.peak_server_kib / 1024),
            "server_and_workers": round(sampler.peak_total_kib / 1024),
        },
        "max_workers_at_once": sampler.peak_workers,
        "blocked_requests": sorted({u for s in sessions for u in s.blocked}),
        "errors": {s.index: s.error for s in sessions if s.error},
    }


def print_table(r: dict) -> None:
    rows = [
        ("machine", f"{r['cpus']} CPUs, load average {r['load_average_before']:.2f} before the run"),
        ("sessions (succeeded / started)", f"{r['succeeded']} / {r['sessions']}"),
        ("server start", f"{r['server_start_s']:.2f} s"),
        ("wall time (all sessions)", f"{r['wall_s']:.1f} s"),
    ]
    for step, v in r["page_latency_s"].items():
        rows.append((f"page: {step} (p50 / p95)", f"{v['p50']:.2f} / {v['p95']:.2f} s"))
    b = r["build_turnaround_s"]
    rows.append(
        ("build: press to Finished (p50 / max)", f"{b['p50']:.2f} / {b['max'] or float('nan'):.2f} s")
    )
    rows.append(("peak RSS server", f"{r['peak_rss_mib']['server']} MiB"))
    rows.append(("peak RSS server + workers", f"{r['peak_rss_mib']['server_and_workers']} MiB"))
    rows.append(("build workers at once (max)", str(r["max_workers_at_once"])))
    rows.append(("requests leaving the machine", str(len(r["blocked_requests"]))))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        sys.stdout.write(f"{k:<{width}}  {v}\n")
    for i, e in r["errors"].items():
        sys.stdout.write(f"session {i}: {e}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=4, help=f"concurrent sessions, 1..{MAX_SESSIONS}")
    ap.add_argument("--time-limit", type=float, default=170.0, help="seconds for all sessions (max 600)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    args = ap.parse_args()
    if not 1 <= args.sessions <= MAX_SESSIONS:
        ap.error(f"--sessions must be between 1 and {MAX_SESSIONS}")
    if not 0 < args.time_limit <= 600:
        ap.error("--time-limit must be in (0, 600]")
    reason = browser_skip_reason()
    if reason:
        sys.stderr.write(f"cannot run: {reason}\n")
        return 2
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="workbench-load-") as tmp:
        t = time.perf_counter()
        with running_app(Path(tmp), extra_env={"STREAMLIT_SERVER_ADDRESS": "127.0.0.1"}) as app:
            startup = time.perf_counter() - t
            assert app.url.startswith("http://127.0.0.1:"), app.url
            sampler = MemorySampler(app.process.pid, app.home)
            sampler.start()
            t = time.perf_counter()
            try:
                sessions = asyncio.run(run_all(app.url, args.sessions, args.time_limit))
            finally:
                sampler.stop()
            result = report(sessions, sampler, time.perf_counter() - t, startup, load)
            if result["errors"]:
                result["server_log_tail"] = app.log(2000)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print_table(result)
    return 0 if result["succeeded"] == result["sessions"] else 1


if __name__ == "__main__":
    sys.exit(main())
