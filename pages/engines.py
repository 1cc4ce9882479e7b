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
        "model": j.model_name, "precision": str(spec.get("precision", "")).upper(), "backend": spec.get("backend"),
        "profiles": len(spec.get("profiles", [])), "status": j.status,
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.created)),
        "duration (s)": round(j.duration, 2) if j.duration is not None else None,
        "plan (KiB)": round(j.result.get("plan_bytes", 0) / 1024, 1) if j.result else None,
        "job": j.id,
    })
frame = pd.DataFrame(rows)
event = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                     key="engines.table")
selected = event.selection.rows if event and event.selection else []
if not selected:
    st.caption("Select a build to open, download or delete it.")
    st.stop()

job = jobs[selected[0]]
st.subheader(job.title)
a, b, c, d = st.columns(4)
if a.button("Open on the Build page", key="engines.open"):
    st.session_state[ui.BUILD_JOB] = job.id
    st.session_state[ui.MODEL_DIGEST] = job.model_digest
    st.switch_page("pages/build.py")
if job.status == "succeeded" and b.button("Open fusion report", key="engines.fusion"):
    st.session_state[ui.FUSION_JOB] = job.id
    st.switch_page("pages/fusion.py")
if job.active and c.button("Cancel", key="engines.cancel"):
    with ui.error_boundary("Cancel"):
        wb.jobs.cancel(job.id)
        st.rerun()
if not job.active and d.button("Delete", key="engines.delete", type="secondary"):
    with ui.error_boundary("Delete"):
        wb.jobs.delete(job.id)
        if st.session_state.get(ui.BUILD_JOB) == job.id:
            st.session_state.pop(ui.BUILD_JOB)
        st.rerun()
with ui.error_boundary("Build"):
    ui.job_status_line(job)
    if job.status == "succeeded":
        ui.build_results(job)
