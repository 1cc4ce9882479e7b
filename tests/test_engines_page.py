"""The Engines page acts on the build the user selected, by id, while other sessions add and delete builds."""

from __future__ import annotations

import pytest

from tests.conftest import open_page
from workbench import ui
from workbench.spec import BuildSpec, profiles_from_args

pytestmark = pytest.mark.slow


def _click_row(at, row: int):
    """What the browser sends when the user clicks a row of the keyed table (AppTest accepts selection state)."""
    at.session_state[ui.ENGINES_TABLE] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def _shown_job(at) -> str:
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption if c.value.startswith("job `")]
    assert len(captions) == 1, [c.value for c in at.caption]
    return captions[0].removeprefix("job `").removesuffix("`")


def test_the_selection_follows_the_build_not_the_row_when_other_sessions_change_the_list(app_ws, models_dir):
    from workbench.service import Workbench

    other = Workbench.open(app_ws.ws.root)  # another browser session on the same server
    cnn = BuildSpec(profiles=profiles_from_args(["x:1x3x16x16"], ["x:2x3x16x16"], ["x:4x3x16x16"]))

    def build(wb, model: str, spec: BuildSpec | None = None) -> str:
        job_id = wb.submit_build(wb.import_path(models_dir / model), spec or BuildSpec())
        assert wb.jobs.wait(job_id, timeout=120).status == "succeeded"
        return job_id

    mlp = build(app_ws, "static_mlp.onnx")
    cnn_1 = build(app_ws, "tiny_cnn.onnx", cnn)  # listed newest first: [cnn_1, mlp]
    at = open_page("engines")
    assert _shown_job(_click_row(at, 1)) == mlp
    assert at.subheader[0].value.startswith("static_mlp")

    cnn_2 = build(other, "tiny_cnn.onnx", cnn)  # now [cnn_2, cnn_1, mlp]: row 1 is cnn_1
    at.run()
    assert _shown_job(at) == mlp and at.subheader[0].value.startswith("static_mlp")
    assert at.session_state[ui.ENGINES_TABLE]["selection"]["rows"] == [2]  # the highlight moved with the build

    at.button(key="engines.delete").click().run()  # asks first
    assert {j.id for j in app_ws.builds()} == {cnn_2, cnn_1, mlp}
    assert any(mlp in w.value for w in at.warning), [w.value for w in at.warning]
    at.button(key="engines.delete_keep").click().run()
    assert not any(mlp in w.value for w in at.warning) and len(app_ws.builds()) == 3
    at.button(key="engines.delete").click().run()
    at.button(key="engines.delete_confirm").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [j.id for j in app_ws.builds()] == [cnn_2, cnn_1]  # exactly the selected build went

    assert _shown_job(_click_row(at, 1)) == cnn_1
    other.jobs.delete(cnn_2)  # the list shrinks under the selection: row 1 no longer exists
    at.run()
    assert _shown_job(at) == cnn_1

    other.jobs.delete(cnn_1)  # the selected build itself is deleted elsewhere: nothing selected, no traceback
    mlp_2 = build(other, "static_mlp.onnx")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Select a build" in c.value for c in at.caption)
    assert [j.id for j in app_ws.builds()] == [mlp_2]
