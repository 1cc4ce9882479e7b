"""Settings / About: backends, GPU, versions, workspace."""

import pandas as pd
import streamlit as st

from workbench import ui
from workbench.archives import ArchiveLimits
from workbench.backends import detect_backends, gpu_info, onnxruntime_providers, versions
from workbench.model import UNPACK_FACTOR

st.title("Settings")
wb = ui.workbench()

st.subheader("Backends")
rows = []
for b in detect_backends():
    rows.append({"backend": b.name, "installed": b.installed, "version": b.version,
                 "strongly typed": b.strongly_typed_only if b.installed else None,
                 "can run engines here": b.can_run_engines})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
for b in detect_backends():  # sentences, in full: a table cell would cut them off
    if b.reason or b.run_reason:
        st.caption(f"**{b.name}**: {ui.md(b.reason or b.run_reason)}")
for b in detect_backends():
    if b.installed:
        with st.expander(f"{b.label}: precisions"):
            st.dataframe(pd.DataFrame([{"precision": p.upper(), "available": ok, "how / why not": why}
                                       for p, (ok, why) in b.precisions.items()]), hide_index=True,
                         width="stretch")

st.subheader("GPU")
gpu = gpu_info()
if gpu.present:
    st.success(f"{gpu.name} · compute capability {gpu.compute_capability} · driver {gpu.driver}")
else:
    st.info(f"No GPU visible. {gpu.reason} Engines can still be built with TensorRT-RTX; running them (and "
            "comparisons against a real engine) needs a supported GPU.")

st.subheader("ONNX Runtime providers")
st.write(", ".join(onnxruntime_providers()) or "ONNX Runtime is not installed.")

st.subheader("Workspace")
st.write(f"`{wb.ws.root}` (set `WORKBENCH_HOME` to move it) · concurrent builds: {wb.jobs.max_running} "
         f"(set `WORKBENCH_MAX_JOBS`) · concurrent parser checks: {wb.jobs.max_parse} (set "
         "`WORKBENCH_MAX_PARSE_JOBS`)")
st.caption("Everyone using this app shares this workspace (models and builds); give each team its own app and "
           "`WORKBENCH_HOME` to keep their work apart.")


def _set_job_timeout() -> None:
    with ui.error_boundary("Job time limit"):
        wb.jobs.set_timeout_s(int(st.session_state["settings.job_timeout"]) * 60)


st.number_input(
    "Job time limit (minutes; 0: none)", min_value=0, max_value=7 * 24 * 60, step=5,
    value=round(wb.jobs.timeout_s / 60), key="settings.job_timeout", on_change=_set_job_timeout,
    help="Every build, quantization and comparison submitted from now on, by any session of this workspace, is "
         "stopped and marked failed once it has run this long, so one huge model cannot hold the build slot for "
         "everyone. The default comes from WORKBENCH_JOB_TIMEOUT (seconds), else 15 minutes.")
upload_mb = int(st.get_option("server.maxUploadSize"))
st.write(f"Upload limit: {upload_mb} MB (`server.maxUploadSize` in `.streamlit/config.toml`)")
limits = ArchiveLimits()
st.caption(f"An uploaded archive unpacks to at most {min(limits.max_total_bytes, (upload_mb << 20) * UNPACK_FACTOR) / 2**30:.1f}"
           f" GiB ({UNPACK_FACTOR}× the upload limit), to at most {limits.max_ratio:.0f}× the compressed bytes read "
           f"once past {limits.ratio_floor >> 20} MiB, and never leaves less than "
           f"{limits.keep_free_bytes / 2**30:.0f} GiB of free disk space.")

st.subheader("Versions")
st.dataframe(pd.DataFrame([{"package": k, "version": v or "not installed"} for k, v in versions().items()]),
             hide_index=True, width="stretch")
