"""Model page: open a model (upload, sample, recent), read its summary, see it in Netron."""

import streamlit as st

from workbench import ui
from workbench.reports.model_figures import op_histogram
from workbench.samples import list_samples

st.title("Model")
wb = ui.workbench()
with st.expander("Demo: the whole flow in one click", expanded=st.session_state.get(ui.DEMO_JOB) is not None):
    ui.demo_panel()
limit_mb = int(st.get_option("server.maxUploadSize"))

left, right = st.columns([3, 2])
with left:
    uploaded = st.file_uploader(
        f"Upload an ONNX model, or a .zip / .tar.gz holding the model and its external-data files "
        f"(limit {limit_mb} MB)",
        type=["onnx", "zip", "tar", "gz", "tgz"],
        key="model.uploader",
    )
    if uploaded is not None and st.session_state.get(ui.MODEL_UPLOAD_ID) != uploaded.file_id:
        st.session_state[ui.MODEL_UPLOAD_ID] = uploaded.file_id  # process each upload once, not on every rerun
        with ui.error_boundary(f"Upload of {uploaded.name}"):
            ui.set_current_model(wb.import_upload(uploaded, uploaded.name, max_bytes=limit_mb << 20))
with right, ui.error_boundary("Samples and recent models"):  # a sample or model folder removed meanwhile
    samples = {s.name: s for s in list_samples()}
    choice = st.selectbox("…or open a bundled sample", list(samples), index=None, key="model.sample",
                          format_func=lambda n: f"{samples[n].title}")
    if choice and st.button("Open sample", key="model.open_sample"):
        with ui.error_boundary(f"Sample {choice}"):
            ui.set_current_model(wb.import_path(samples[choice].path))
    if choice:
        st.caption(ui.md_lines(samples[choice].description))
    with st.popover("…or open a model already on the server"):
        server_path = st.text_input("Path of the .onnx file", key="model.server_path",
                                    help="For models over the upload limit (weights in external-data files): "
                                         "below " + ", ".join(str(r) for r in ui.data_roots()) + " only.")
        if st.button("Open from the server", key="model.open_server", disabled=not server_path):
            with ui.error_boundary(f"Model {server_path}"):
                ui.set_current_model(wb.import_server_model(server_path))
    recent = wb.models()[:20]
    if recent:
        current = st.session_state.get(ui.MODEL_DIGEST)
        digests = [r.digest for r in recent]
        names = {r.digest: f"{r.name} · {r.short}" for r in recent}
        # Shows the current model, whichever way it was opened (a new widget per current model: the browser's
        # picker never keeps an older value); only a pick here (on_change) opens another.
        key = ui.recent_key(current)
        st.selectbox("Recent models", digests, index=digests.index(current) if current in digests else None,
                     format_func=names.get, key=key, on_change=ui.recent_model_picked, args=(key,))

ref = ui.current_model()
if ref is None:
    st.info("Open a model to see its summary and graph.")
    st.stop()

with ui.error_boundary(ref.name):
    s = ui.model_summary(ref.digest)
    st.subheader(ui.md(ref.name))
    st.caption(f"content id {ref.short} (sha256 over the model and its external data, not the file's own "
               f"sha256) · IR {s.ir_version} · opsets "
               + ", ".join(f"{ui.md(d)} {v}" for d, v in s.opsets.items())
               + (f" · producer {ui.md(s.producer)}" if s.producer else ""))
    c = st.columns(5)
    c[0].metric("Nodes", f"{s.node_count:,}", help=f"+{s.subgraph_node_count} inside subgraphs"
                if s.subgraph_node_count else None)
    c[1].metric("Op types", len(s.op_histogram))
    c[2].metric("Parameters", f"{s.parameter_count:,}")
    c[3].metric("Weights", f"{s.initializer_bytes / 2**20:.2f} MiB")
    c[4].metric("File", f"{s.file_bytes / 2**20:.2f} MiB",
                help=f"+{s.external_data_bytes / 2**20:.1f} MiB external data" if s.external_data_bytes else None)
    if s.quantization is not None:
        q = s.quantization
        st.info(f"**{q.describe()[0].upper() + q.describe()[1:]}.** Build it as it is with precision "
                f"{' or '.join(p.upper() for p in q.precisions) or 'INT8'}: no calibration data needed, TensorRT "
                "uses the model's own scales.", icon=":material/stacked_bar_chart:")
    for w in s.warnings:
        st.warning(ui.md_lines(w))

    def io_table(tensors):
        import pandas as pd  # here, not at the top: an idle server never loads pandas/pyarrow

        return pd.DataFrame([{"name": t.name, "dtype": t.dtype, "shape": t.shape_text(),
                              "dynamic dims": ", ".join(f"{i} ({t.shape[i] or '?'})" for i in t.dynamic_dims)
                              if t.shape else "rank unknown"} for t in tensors])

    a, b = st.columns(2)
    a.markdown("**Inputs**")
    a.dataframe(io_table(s.inputs), hide_index=True, width="stretch")
    b.markdown("**Outputs**")
    b.dataframe(io_table(s.outputs), hide_index=True, width="stretch")

    tab_graph, tab_ops, tab_parse = st.tabs(["Graph (Netron)", "Op types", "Parser check"])
    with tab_graph, ui.error_boundary("Graph view"):
        nodes = ui.node_choices(ref.digest)[len(s.op_histogram):]  # node_choices lists the op types first
        if ui.NETRON_SELECT in st.session_state:  # a selection made on another model keeps only this one's nodes
            st.session_state[ui.NETRON_SELECT] = [n for n in st.session_state[ui.NETRON_SELECT] if n in nodes]
        picked = st.multiselect("Select nodes in the graph", nodes, key=ui.NETRON_SELECT,
                                placeholder="Choose nodes to highlight and scroll to",
                                help="Netron highlights them without reloading the graph.")
        ui.netron_view(ref.path, select=picked)
    with tab_ops:
        ui.plotly_chart(op_histogram(s), key="model.ops")
    with tab_parse:
        backends = [b.name for b in ui.installed_backends()]
        if not backends:
            st.info("No TensorRT backend is installed; see Settings.")
        else:
            backend = st.selectbox("Parse with", backends, key="model.parse_backend")
            ui.parser_check_panel(ref, backend)
