"""Settings / About: backends, GPU, versions, workspace."""

import pandas as pd
import streamlit as st

from workbench import ui
from workbench.backends import detect_backends, gpu_info, onnxruntime_providers, versions

st.title("Settings")
wb = ui.workbench()

st.subheader("Backends")
rows = []
for b in detect_backends():
    rows.append({"backend": b.name, "installed": b.installed, "version": b.version,
                 "strongly typed": b.strongly_typed_only if b.installed else None,
                 "can run engines here": b.can_run_engines,
                 "note": b.reason or b.run_reason})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
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
st.write(f"Upload limit: {st.get_option('server.maxUploadSize')} MB (`server.maxUploadSize` in "
         "`.streamlit/config.toml`)")

st.subheader("Versions")
st.dataframe(pd.DataFrame([{"package": k, "version": v or "not installed"} for k, v in versions().items()]),
             hide_index=True, width="stretch")
