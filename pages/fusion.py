"""Fusion page: which ONNX nodes became which engine layer, in tables, graphs and pictures."""

import time

import streamlit as st

from workbench import ui

st.title("Layer fusion")
wb = ui.workbench()
if st.session_state.get(ui.FUSION_JOB) and not st.session_state.get(ui.MODEL_DIGEST):
    with ui.error_boundary("Build"):  # a build to show and no model chosen yet: its model (never over a choice)
        ui.show_job(ui.FUSION_JOB, wb.jobs.get(st.session_state[ui.FUSION_JOB]))

ref = ui.require_model()
if ref is None:
    st.stop()
builds = [j for j in wb.builds() if j.model_digest == ref.digest and j.status == "succeeded"]
if not builds:
    st.info(f"No finished build of **{ui.md(ref.name)}** yet: build one on the **Build** page.")
    st.stop()

labels = {j.id: f"{j.title} · {time.strftime('%m-%d %H:%M', time.localtime(j.created))} · {j.id[:8]}" for j in builds}
if st.session_state.get(ui.FUSION_JOB) not in labels:
    st.session_state[ui.FUSION_JOB] = builds[0].id
job_id = st.selectbox("Build", list(labels), format_func=labels.get, key=ui.FUSION_JOB)
job_dir = wb.jobs.job_dir(job_id)


@st.cache_data(show_spinner="Reading the engine's layers …", max_entries=16)
def _report(job_dir: str, stamp: float, profile: int):
    from workbench.fusion import job_report

    return job_report(job_dir, profile=profile)


def _load(job_dir, profile: int = 0):
    from workbench.fusion import job_stamp

    return _report(str(job_dir), job_stamp(job_dir), profile)


layers = report = None
with ui.error_boundary("Layer report"):
    layers, report = _load(job_dir)
    if layers.num_profiles > 1:
        profile = st.radio(
            "Optimization profile", range(layers.num_profiles), horizontal=True, key="fusion.profile"
        )
        if profile:
            layers, report = _load(job_dir, int(profile))
if report is None or layers is None:
    st.stop()

counts = report.fate_counts
m = st.columns(6)
m[0].metric("ONNX nodes", report.num_onnx_nodes, help="Nodes of the network TensorRT parsed: for an explicit "
            "INT8/FP8 build the Q/DQ model, so its QuantizeLinear/DequantizeLinear nodes count too.")
m[1].metric("Engine layers", report.num_layers)
m[2].metric("Fused", counts["fused"], help="in one engine layer together with other ONNX nodes")
m[3].metric("Split", counts["split"], help="in several engine layers (e.g. a convolution and its epilogue)")
m[4].metric("Eliminated / folded", counts["eliminated"] + counts["constant_folded"])
m[5].metric("Unaccounted", counts["unaccounted"], help="in no layer and not explained: should be 0")
st.markdown(ui.md_lines(report.summary()))
if report.unaccounted:
    st.error(
        "ONNX nodes in no engine layer, unexplained: "
        + ", ".join(f"'{ui.md(n.node)}' ({ui.md(n.op_type)})" for n in report.unaccounted[:20])
    )
for note in report.notes + layers.warnings:
    st.caption(ui.md_lines(note))

SELECTED = "fusion.selected_layer"  # survives tab switches (the table widget's own state does not)
tabs = st.tabs(
    ["Layers", "Graph", "Pictures", "Reading the names", "Compare builds", "Export"],
    key="fusion.tab",
    on_change="rerun",
)  # only the open tab runs: Netron must not load inside a hidden tab
with tabs[0]:
    if tabs[0].open:
        import pandas as pd

        from workbench.layers import TABLE_COLUMNS

        rows = layers.search(st.text_input("Search layers", key="fusion.search"), profile=report.profile)
        frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
        event = st.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            column_config=ui.text_columns(frame),
            on_select="rerun",
            selection_mode="single-row",
            key="fusion.table",
        )
        picked = [i for i in (event.selection.rows if event and event.selection else []) if i < len(rows)]
        st.session_state[SELECTED] = rows[picked[0]]["index"] if picked else None
    selected = next((ly for ly in layers.layers if ly.index == st.session_state.get(SELECTED)), None)
    if tabs[0].open and selected is None:
        st.caption("Select a layer to see its ONNX nodes and tensors.")
    elif tabs[0].open:
        st.subheader(ui.md(selected.name))
        st.caption(f"{ui.md(selected.type)} · {ui.md(selected.precision_label)} · tactic "
                   f"{ui.md(selected.tactic or '-')}")
        st.markdown("**ONNX nodes in this layer**")
        if selected.onnx_nodes:
            nodes = pd.DataFrame(report.layer_node_rows(selected))
            st.dataframe(nodes, hide_index=True, width="stretch", column_config=ui.text_columns(nodes))
        else:
            st.caption("None: TensorRT added this layer (reformat, copy or shape program).")
        st.markdown("**Tensors**")
        tensors = pd.DataFrame(selected.tensor_rows())
        st.dataframe(tensors, hide_index=True, width="stretch", column_config=ui.text_columns(tensors))

if tabs[1].open:
    with tabs[1]:
        st.caption(
            "Left: the ONNX model TensorRT parsed. Right: the engine as a graph, one node per engine layer "
            "(attributes: fused ONNX nodes, precision, tactic). The layer selected in the Layers tab is "
            "highlighted in both."
        )
        with ui.error_boundary("Graph view"):
            from workbench.fusion import job_engine_graph, job_network_model

            graph = job_engine_graph(job_dir, layers, report, name=f"{ref.name} engine")
            left, right = st.columns(2)
            with left:
                ui.netron_view(
                    job_network_model(job_dir), select=selected.onnx_nodes if selected else (), height=560
                )
            with right:
                ui.netron_view(graph, select=(selected.name,) if selected else (), height=560)

if tabs[2].open:
    from workbench.reports import fusion_figures as ff

    with tabs[2]:
        kind = st.segmented_control(
            "Fusion groups as", ["sunburst", "treemap"], default="sunburst", key="fusion.kind"
        )
        ui.plotly_chart(
            ff.fusion_groups(report, kind=kind or "sunburst"), width="stretch", key="fusion.fig.groups"
        )
        a, b = st.columns(2)
        ui.plotly_chart(ff.node_fates(report), a, width="stretch", key="fusion.fig.fates")
        ui.plotly_chart(ff.precision_breakdown(report), b, width="stretch", key="fusion.fig.precision")
        ui.plotly_chart(ff.layer_type_breakdown(report), width="stretch", key="fusion.fig.types")

if tabs[3].open:
    import pandas as pd

    with tabs[3]:
        for title, table in (
            ("**Opaque regions**: compiler-made kernels and the ONNX nodes inside", report.opaque_rows()),
            ("**Layers TensorRT added** (no ONNX node of their own)", report.inserted_rows()),
            ("**ONNX nodes no layer's metadata names: their fate and the evidence**", report.evidence_rows()),
        ):
            st.markdown(title)
            if table:
                frame = pd.DataFrame(table)
                st.dataframe(frame, hide_index=True, width="stretch", column_config=ui.text_columns(frame))
            else:
                st.caption("None.")
        if report.conventions:
            st.markdown("**How to read the layer names in this engine**")
            st.markdown("\n".join(f"- **{k.replace('_', ' ')}**: {ui.quoted_as_code(v)}"
                                   for k, v in report.conventions.items()))
        if report.unknown_metadata:
            st.warning(
                "Layer metadata names nodes this model lacks: " + ", ".join(map(ui.md, report.unknown_metadata[:20]))
            )

if tabs[4].open:
    others = [j for j in builds if j.id != job_id]
    with tabs[4]:
        if not others:
            st.caption("Build this model again (another precision or profile) to compare two builds here.")
            st.page_link("pages/build.py", label="Go to the Build page", icon=":material/build:")
        else:
            if st.session_state.get(ui.FUSION_COMPARE_JOB) not in {j.id for j in others}:
                st.session_state[ui.FUSION_COMPARE_JOB] = others[0].id
            other = st.selectbox(
                "Compare with", [j.id for j in others], format_func=labels.get, key=ui.FUSION_COMPARE_JOB
            )
            with ui.error_boundary("Comparison"):
                ui.build_diff_panel(layers, _load(wb.jobs.job_dir(other))[0], report.profile, labels[job_id],
                                    labels[other], f"fusion-{job_id}-vs-{other}.csv")

if tabs[5].open:
    from workbench.reports import fusion_html as fh

    with tabs[5]:
        files = fh.export_files(report, layers, f"fusion-{job_id}", title=labels[job_id])
        for col, (label, content, file_name, mime) in zip(st.columns(len(files)), files, strict=True):
            col.download_button(
                label,
                data=content,
                file_name=file_name,
                mime=mime,
                on_click="ignore",
                key=f"fusion.dl.{file_name}",
            )
        st.caption("The HTML report is one self-contained file (figures included): it opens offline.")
