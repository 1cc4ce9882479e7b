"""Engines page: every build in the workspace; re-open, download or delete."""

import time

import pandas as pd
import streamlit as st

from workbench import ui

st.title("Engines")
wb = ui.workbench()
jobs = wb.builds()
if not jobs:
    st.info("No builds yet. Build one on the **Build** page.")
    st.stop()

rows = []
for j in jobs:
    spec = j.payload.get("spec", {})
    rows.append({
        "model": j.model_name, "model id": (j.model_digest or "")[:8],
        # what tells it from the others: backend, precision, calibrator, kept nodes, profiles
        "build": j.title.split(": ", 1)[-1] if ": " in j.title else str(spec.get("precision", "")).upper(),
        "status": j.status,
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.created)),
        "duration (s)": round(j.duration, 2) if j.duration is not None else None,
        "plan (KiB)": round(j.result.get("plan_bytes", 0) / 1024, 1) if j.result else None,
        "job": j.id,
    })
frame = pd.DataFrame(rows)
# The selection is a job id, resolved against the rows the user clicked on: other sessions add and delete builds.
by_id = {j.id: j for j in jobs}
selected_id = ui.selected_row_id(ui.ENGINES_TABLE, list(by_id), ui.ENGINES_SELECTED)
st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
             key=ui.ENGINES_TABLE)
if selected_id is None:
    st.caption("Select a build to open, download or delete it.")
    st.stop()

job = by_id[selected_id]
st.subheader(ui.md(job.title))
st.caption(f"job `{job.id}`")
a, b, c, d = st.columns(4)
if a.button("Open on the Build page", key="engines.open"):
    ui.show_job(ui.BUILD_JOB, job)
    st.switch_page("pages/build.py")
if job.status == "succeeded" and b.button("Open fusion report", key="engines.fusion"):
    ui.show_job(ui.FUSION_JOB, job)
    st.switch_page("pages/fusion.py")
if job.active and c.button("Cancel", key="engines.cancel"):
    with ui.error_boundary("Cancel"):
        wb.jobs.cancel(job.id)
        st.rerun()
if not job.active and d.button("Delete", key="engines.delete", type="secondary"):
    st.session_state[ui.ENGINES_CONFIRM_DELETE] = job.id  # asked below; the answer applies to this id only
if not job.active and st.session_state.get(ui.ENGINES_CONFIRM_DELETE) == job.id:
    with st.container(border=True):
        st.warning(f"Delete **{ui.md(job.title)}** (job `{job.id}`)? Its plan, log and reports are removed from the "
                   "workspace; this cannot be undone.")
        yes, no = st.columns(2)
        if yes.button("Yes, delete this build", key="engines.delete_confirm", type="primary"):
            st.session_state.pop(ui.ENGINES_CONFIRM_DELETE, None)
            with ui.error_boundary("Delete"):
                wb.jobs.delete(job.id)  # by id: refuses (JobError) if another session deleted it meanwhile
                for key in (ui.BUILD_JOB, ui.FUSION_JOB, ui.ENGINES_SELECTED):
                    if st.session_state.get(key) == job.id:
                        st.session_state.pop(key)
                st.rerun()
        if no.button("Keep it", key="engines.delete_keep"):
            st.session_state.pop(ui.ENGINES_CONFIRM_DELETE, None)
            st.rerun()
with ui.error_boundary("Build"):
    ui.job_status_line(job)
    if job.status == "succeeded":
        ui.build_results(job)
