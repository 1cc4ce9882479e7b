"""The main path in a real browser, as a user on their second model walks it (issue #12), in one fresh app and one
fresh Chromium profile: the one-click demo, then their own model uploaded, a second model uploaded (their own
``digits_mlp.onnx``: another graph under a sample's name), a build of it with a profile they typed, its fusion
report, back to the sample, a comparison that cannot run and one that can, the culprits rebuilt, the plan
downloaded (once with the click held on the page's websocket until a rerun has ended, as a loaded server sees it:
the deferred downloads of old got nothing then). At every step the page must show what the user chose last: the
heading, the "Recent models" picker, the Build form and the build beside it, the comparison below the button. Numbers are checked against what the
real jobs wrote into the workspace.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests import onnx_models
from tests.browser_support import (
    browser_skip_reason,
    chromium,
    evidence_on_failure,
    fresh_context,
    go_to,
    main_area,
    metric_value,
    open_app,
    running_app,
    shown_job_id,
    wait_finished,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JOB_TIMEOUT_MS = 180_000
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture()
def app(tmp_path):
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with running_app(tmp_path / "app") as running:
        yield running


@pytest.fixture()
def own_models(tmp_path) -> tuple[Path, Path]:
    """The user's two models: a small CNN (dynamic batch) and, named like the digits sample, another CNN."""
    import onnx

    folder = tmp_path / "mine"
    folder.mkdir()
    first = folder / "my_cnn.onnx"
    onnx.save(onnx_models.tiny_cnn(), str(first))
    second_model = onnx_models.tiny_cnn()
    second_model.graph.node[-1].name = "classifier"  # another graph than the first: another model
    second = folder / "digits_mlp.onnx"
    onnx.save(second_model, str(second))
    return first, second


class HeldClick:
    """The page's websocket, passed through, except that the first message after :meth:`arm` is kept back until
    :meth:`release`: a click that reaches a loaded server late, after a rerun of the page (every time here)."""

    def __init__(self) -> None:
        self.armed = False
        self.held: list = []

    def route(self, ws) -> None:
        server = ws.connect_to_server()

        def from_page(message) -> None:
            if self.armed:
                self.armed = False
                self.held.append((server, message))
                return
            server.send(message)

        ws.on_message(from_page)

    def arm(self) -> None:
        self.armed = True

    def release(self) -> None:
        self.armed = False
        for server, message in self.held:
            server.send(message)
        self.held.clear()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_of(app, name: str, but: str = "") -> str:
    """The content id the workspace stored the model called ``name`` under (not ``but``: another of that name)."""
    from workbench.service import Workbench

    return next(r.digest for r in Workbench.open(app.home).models() if r.name == name and r.digest != but)


def _job(app, job_id: str) -> dict:
    return json.loads((app.home / "jobs" / job_id / "job.json").read_text())


def _widget(main, test_id: str, label: str):
    """A Streamlit widget (by its test id) whose label is ``label``."""
    return main.get_by_test_id(test_id).filter(
        has=main.page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
    )


def _model_shown(page, name: str, digest: str) -> None:
    """The Model page is about ``name`` (content id ``digest``): heading, content id, and the Recent picker."""
    main = main_area(page)
    main.get_by_role("heading", name=name, exact=True).wait_for(timeout=JOB_TIMEOUT_MS)
    main.get_by_text(f"content id {digest[:12]}").first.wait_for(timeout=UI_TIMEOUT_MS)
    picker = _choice(main, "Recent models")
    expect(picker).to_have_count(1, timeout=UI_TIMEOUT_MS)  # the picker of the previous model is gone
    expect(picker).to_have_value(f"{name} · {digest[:12]}", timeout=UI_TIMEOUT_MS)


def _choice(main, label: str):
    """A selectbox by its label (its value is the value of its combobox input)."""
    return main.get_by_role("combobox", name=label, exact=True)


def _upload_model(page, path: Path) -> None:
    main = main_area(page)
    uploader = main.get_by_test_id("stFileUploader").filter(has_text="Upload an ONNX model")
    uploader.locator('input[type="file"]').set_input_files(str(path))


def _no_traceback(page) -> None:
    main = main_area(page)
    assert main.get_by_test_id("stException").count() == 0, main.get_by_test_id("stException").first.inner_text()
    assert main.get_by_text(re.compile(r"^Unexpected error")).count() == 0


def _download(page, button) -> tuple[str, bytes]:
    with page.expect_download(timeout=JOB_TIMEOUT_MS) as info:
        button.click()
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def test_demo_then_two_own_models_build_fusion_accuracy_culprits_download(app, browser, own_models, tmp_path):
    from workbench.accuracy import load_comparison
    from workbench.accuracy.job import SOURCE_LABELS
    from workbench.fusion import job_report
    from workbench.samples import get_sample, sample_digest

    sample = get_sample("digits_mlp")
    sample_id = sample_digest(sample)
    first, second = own_models
    with fresh_context(browser, accept_downloads=True) as (context, guard):
        page = context.new_page()
        click = HeldClick()
        page.route_web_socket(re.compile(r"/_stcore/stream$"), click.route)
        main = main_area(page)
        with evidence_on_failure(page, app, tmp_path):
            # ---- 1. the demo: one click, and the page is about the digits sample
            open_app(page, app)
            main.get_by_text("Demo: the whole flow in one click", exact=True).click()
            main.get_by_role("button", name=re.compile(r"^▶ Run the demo")).click()
            wait_finished(main, JOB_TIMEOUT_MS)
            demo = _job(app, shown_job_id(main))["result"]
            _model_shown(page, "digits_mlp.onnx", sample_id)
            assert metric_value(main, "INT8 plan").endswith("KiB")

            # ---- 2. their own model, uploaded after the demo: it wins, on this page and the next
            _upload_model(page, first)
            main.get_by_role("heading", name="my_cnn.onnx", exact=True).wait_for(timeout=JOB_TIMEOUT_MS)
            first_id = _digest_of(app, "my_cnn.onnx")
            _model_shown(page, "my_cnn.onnx", first_id)
            go_to(page, "Build")
            main.get_by_text(re.compile(r"^Model my_cnn\.onnx · ")).wait_for()
            # nothing of the demo's builds beside another model's form
            main.get_by_text("Fill in the form and press", exact=False).wait_for()
            assert main.get_by_text(re.compile(r"^job ")).count() == 0

            # ---- 3. back on Model, a second upload: named like the sample, but it is not the sample
            go_to(page, "Model")
            _model_shown(page, "my_cnn.onnx", first_id)  # the picker still says what is open
            _upload_model(page, second)
            main.get_by_text(re.compile(r"content id (?!" + first_id[:12] + ")")).first.wait_for()
            second_id = _digest_of(app, "digits_mlp.onnx", but=sample_id)
            _model_shown(page, "digits_mlp.onnx", second_id)
            go_to(page, "Settings")  # away and back: still the second model (the picker does not switch back)
            go_to(page, "Model")
            _model_shown(page, "digits_mlp.onnx", second_id)

            # ---- 4. build it with a profile typed in the form
            go_to(page, "Build")
            main.get_by_text(re.compile(r"^Model digits_mlp\.onnx · ")).wait_for()
            assert main.get_by_text("Sample's calibration set").count() == 0
            box = main.get_by_label("x max", exact=True)
            box.fill("8x3x16x16")
            box.press("Enter")
            main.get_by_role("button", name="Build", exact=True).click()
            wait_finished(main, JOB_TIMEOUT_MS)
            built = shown_job_id(main)
            job = _job(app, built)
            assert job["model_digest"] == second_id
            assert job["payload"]["spec"]["profiles"][0]["x"]["max"] == [8, 3, 16, 16]
            assert second_id[:8] in job["title"]
            # The plan, clicked while the page reruns: the click reaches the server only after a rerun ended (a
            # deferred download's id is revoked by it: "Deferred file … not found", no file). It still arrives.
            with page.expect_download(timeout=UI_TIMEOUT_MS) as info:
                click.arm()
                main.get_by_role("button", name="Download plan").click()
                page.wait_for_timeout(300)  # a click message, if the button sends one, is held now
                click.armed = False
                main.get_by_label("Precision").click()  # a rerun, seen through to its end: INT8's form drawn and
                page.get_by_role("option", name="INT8", exact=True).click()  # nothing on the page left stale
                main.get_by_text("Calibration", exact=True).wait_for(timeout=UI_TIMEOUT_MS)
                page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')",
                                       timeout=UI_TIMEOUT_MS)
                click.release()
            download = info.value
            assert download.suggested_filename == f"digits_mlp.fp32.{built[:8]}.plan"
            plan = (app.home / "jobs" / built / "engine.plan").read_bytes()
            assert _sha256(Path(download.path()).read_bytes()) == _sha256(plan)

            # ---- 5. its fusion report: this build, not the demo's
            go_to(page, "Fusion", heading="Layer fusion")
            picker = _choice(main, "Build").input_value()
            assert built[:8] in picker and second_id[:8] in picker, picker
            _, report = job_report(app.home / "jobs" / built)
            assert metric_value(main, "Engine layers") == str(report.num_layers)

            # ---- 6. Accuracy of their model: no sample data offered for a look-alike
            go_to(page, "Accuracy")
            main.get_by_text("Candidate", exact=True).wait_for()
            assert main.get_by_text("Sample's labelled test set", exact=True).count() == 0
            _no_traceback(page)
            assert main.get_by_test_id("stAlertContentError").count() == 0

            # ---- 7. back to the sample through Recent models
            go_to(page, "Model")
            main.get_by_role("tab", name="Parser check", exact=True).click()  # its check done: no more polling
            main.get_by_text(re.compile(r"parses the model")).wait_for(timeout=JOB_TIMEOUT_MS)
            page.get_by_label("Recent models").click()
            page.get_by_label("Recent models").fill(sample_id[:12])  # typed: the list filters to that model
            page.get_by_role("option", name=re.compile(rf"^digits_mlp\.onnx · {sample_id[:12]}")).click()
            _model_shown(page, "digits_mlp.onnx", sample_id)

            # ---- 8. a comparison that cannot run, then one that can: the newest is the one shown
            go_to(page, "Accuracy")
            main.get_by_text("New comparison", exact=True).click()  # collapsed once the demo's comparison exists
            main.get_by_text(SOURCE_LABELS["file"], exact=True).click()
            cand = main.get_by_test_id("stFileUploader").filter(has_text="Candidate ONNX")
            cand.locator('input[type="file"]').set_input_files(str(first))  # another model: it cannot compare
            main.get_by_role("button", name="Compare", exact=True).and_(
                main.locator("button:not([disabled])")).wait_for(timeout=UI_TIMEOUT_MS)
            main.get_by_role("button", name="Compare", exact=True).click()
            failed_panel = main.get_by_test_id("stAlertContentError").filter(has_text=re.compile(r"^Failed: "))
            failed_panel.first.wait_for(timeout=JOB_TIMEOUT_MS)
            failed = shown_job_id(main)
            expect(_choice(main, "Comparison")).to_have_count(1, timeout=UI_TIMEOUT_MS)
            expect(_choice(main, "Comparison")).to_have_value(re.compile(r" · ERROR$"), timeout=UI_TIMEOUT_MS)

            int8 = demo["steps"]["int8"]
            main.get_by_text(SOURCE_LABELS["build"], exact=True).click()
            # the demo's INT8 build: the one build of the sample an ORT simulation can compare
            expect(_choice(main, "Build")).to_have_value(re.compile(r"INT8"), timeout=UI_TIMEOUT_MS)
            main.get_by_role("button", name="Compare", exact=True).click()
            main.get_by_text(re.compile(r"^job (?!" + re.escape(failed) + ")")).wait_for(timeout=JOB_TIMEOUT_MS)
            wait_finished(main, JOB_TIMEOUT_MS)
            compared = shown_job_id(main)
            assert compared != failed and _job(app, compared)["payload"]["request"]["build_job"] == int8
            result = load_comparison(app.home / "jobs" / compared)
            main.get_by_text(f"{result.n_samples} samples compared", exact=False).wait_for()
            assert result.n_samples == 450  # all the test data, as Quantize scores it

            # ---- 9. the culprits, rebuilt: the Build page shows that rebuild and its settings
            main.get_by_role("tab", name="Culprits", exact=True).click()
            kept = list(result.proposed_exclusions)
            assert kept
            rebuild = main.get_by_role("button", name=re.compile(r"^Rebuild the INT8 engine"))
            if result.recovered:  # top-1 holds: nothing is proposed and nothing is offered to rebuild
                main.get_by_text("Task metric recovered", exact=False).wait_for(timeout=UI_TIMEOUT_MS)
                expect(_widget(main, "stMultiSelect", "Also keep in higher precision")).not_to_contain_text(kept[0])
                expect(rebuild).to_have_count(0)
                go_to(page, "Build")  # the download below is then of the build the Build page shows
                main.get_by_role("heading", name="Build", exact=True).wait_for()
                again = shown_job_id(main)
            else:
                rebuild.wait_for(timeout=UI_TIMEOUT_MS)
                rebuild.click()
                main.get_by_role("heading", name="Build", exact=True).wait_for()
                again = shown_job_id(main)
                spec = _job(app, again)["payload"]["spec"]
                assert again not in (int8, built) and spec["precision"] == "int8"
                assert set(spec["calibration"]["exclude_nodes"]) >= {k for k in kept if not k[0].isupper()}
                expect(_choice(main, "Precision")).to_have_value("INT8")
                kept_box = _widget(main, "stMultiSelect", "Keep out of quantization (node names or op types)")
                for node in spec["calibration"]["exclude_nodes"]:
                    assert node in kept_box.inner_text(), kept_box.inner_text()
            wait_finished(main, JOB_TIMEOUT_MS)

            # ---- 10. the download is the shown build's plan, named after model and build
            name, data = _download(page, main.get_by_role("button", name="Download plan"))
            precision = _job(app, again)["payload"]["spec"]["precision"]
            assert name == f"digits_mlp.{precision}.{again[:8]}.plan"
            assert _sha256(data) == _sha256((app.home / "jobs" / again / "engine.plan").read_bytes())
            _no_traceback(page)
        guard.assert_clean()

