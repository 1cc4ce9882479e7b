"""Accuracy page: a build (or an ONNX Runtime simulation of it) against ONNX Runtime running the FP32 model, tensor
by tensor; the layers that add the error; keep them in float and compare again. Comparisons run as jobs."""

from pathlib import Path

import streamlit as st

from workbench import ui
from workbench.accuracy import load_before_after, load_comparison, load_samples
from workbench.accuracy import options as opt
from workbench.accuracy.comparison import MARK_ALL_WARNING, SAMPLES_FILE
from workbench.accuracy.job import SOURCE_LABELS, submit_compare
from workbench.accuracy.spec import MAX_SAMPLES_LIMIT
from workbench.calibration_data import MIN_CALIBRATION_SAMPLES
from workbench.reports import accuracy_figures as figs

JOB = "accuracy.job_id"
NEXT = "accuracy.next_job_id"  # a job submitted below the comparison picker, shown on the next run
DATA = {"sample": "Sample's calibration set", "test": "Sample's labelled test set", "upload": "Upload .npz",
        "random": "Random (shapes only — accuracy meaningless)"}  # fmt: skip

st.title("Accuracy")
ref = ui.require_model()
if ref is None:
    st.stop()
wb = ui.workbench()


@st.cache_data(show_spinner=False, max_entries=16)
def _result(job_dir: str, stamp: float):
    return load_comparison(job_dir), load_before_after(job_dir)


@st.cache_data(show_spinner=False, max_entries=8)
def _samples(job_dir: str, stamp: float):
    return load_samples(Path(job_dir) / SAMPLES_FILE)


def _upload(label: str, kind: str, key: str) -> str | None:
    """An uploaded file stored in the workspace once (by upload id), as a path."""
    up = st.file_uploader(label, type=[kind], key=key)
    return None if up is None else ui.stored_upload(up, kind)


calib_file, test_file = opt.sample_files(ref.path)
builds = opt.build_choices(wb.jobs, ref.digest)
earlier = opt.comparisons(wb.jobs, ref.digest)
with st.expander("New comparison", expanded=not earlier), ui.error_boundary("Comparison"):
    st.caption(
        "Reference: ONNX Runtime running the original FP32 model. Without a GPU no engine can run here, "
        "so a build is compared through an ONNX Runtime simulation of the network it built (labelled so)."
    )
    sources = (["build"] if builds else []) + ["fp16", "int8", "fp8", "file"]
    source = st.radio(
        "Candidate", sources, format_func=SOURCE_LABELS.get, horizontal=True, key="accuracy.source"
    )
    kw: dict = {}
    engine = False
    build = None
    blocked = ""  # why the Compare button is disabled
    if source == "build":
        build = st.selectbox("Build", builds, format_func=lambda b: b.label, key="accuracy.build")
        kw["build_job"], engine = build.job_id, build.runs_here
    elif source in ("int8", "fp8"):
        cals = (["sample"] if calib_file else []) + ["upload", "random"]
        cal = st.radio(
            "Calibration data", cals, format_func=DATA.get, horizontal=True, key="accuracy.calib_source"
        )
        upload = _upload("Calibration .npz", "npz", "accuracy.calib_upload") if cal == "upload" else None
        kw["calib_path"] = str(calib_file) if cal == "sample" else upload
        kw["calib_random"] = cal == "random"
        if cal == "upload" and not upload:
            blocked = ("Upload a calibration .npz (one array per model input, at least "
                       f"{MIN_CALIBRATION_SAMPLES} samples), or choose random calibration explicitly.")
        if cal == "random":
            st.warning("Random calibration: the Q/DQ ranges describe noise — shapes only, accuracy meaningless. "
                       "The result and its report will say so.")
        kw["calibrator"], kw["percentile"] = ui.calibrator_inputs("accuracy", fp8=source == "fp8")
        kw["precision"] = source
    elif source == "file":
        kw["candidate_path"] = _upload("Candidate ONNX (FP16 or Q/DQ)", "onnx", "accuracy.candidate_upload")
    datas = (["test"] if test_file else []) + ["upload", "random"]
    data_src = st.radio("Data", datas, format_func=DATA.get, horizontal=True, key="accuracy.data_source")
    data_path = str(test_file) if data_src == "test" else None
    if data_src == "upload":
        data_path = _upload(
            "Data .npz (one array per input; 'label' enables top-1)", "npz", "accuracy.data_upload"
        )
        data_path = data_path and ui.mapped_data(ref, data_path, "accuracy.data", labels=True)  # x/y → input/label
    shapes = opt.build_profile_shapes(wb.jobs, kw.get("build_job"))
    if data_src == "random" or kw.get("calib_random"):
        blocked = blocked or ui.random_shape_inputs(ref, shapes, "accuracy.shape")
    kw.update(ui.tolerance_inputs(opt.source_precision(source, build), "accuracy"))
    c = st.columns(3)
    if data_src == "random":  # random data: this many samples are made
        kw["max_samples"] = int(c[0].number_input("Samples", 1, MAX_SAMPLES_LIMIT, 256, key="accuracy.n_random"))
    else:  # real data: all of it by default, the same samples Quantize scores on
        kw["max_samples"] = int(c[0].number_input("Max samples", 1, MAX_SAMPLES_LIMIT, MAX_SAMPLES_LIMIT,
                                                  key="accuracy.max_samples", help="All the data's samples unless "
                                                  "lowered (the result says how many were compared)."))
    outputs = ["(none)", *opt.output_names(ref.path)]
    label = c[1].selectbox("Top-1 on output", outputs, key="accuracy.label",
                           format_func=lambda o: f"auto ({outputs[1]})" if o == "(none)" and len(outputs) > 1 else o,
                           help="Needs a 'label' array in the data; auto: the model's first output.")
    kw["top_k"] = int(c[2].number_input("Culprits", 1, 20, 3, key="accuracy.top_k"))
    kw["per_layer"] = st.checkbox("Per layer (every tensor both sides have)", True, key="accuracy.per_layer")
    kw["mark_all"] = engine and kw["per_layer"] and st.checkbox("Mark every tensor", key="accuracy.mark_all")
    if kw["mark_all"]:
        st.warning(MARK_ALL_WARNING)
    if source == "file" and not kw["candidate_path"]:
        blocked = blocked or "Upload the candidate ONNX model."
    if data_src == "upload" and not data_path:
        blocked = blocked or "Upload the comparison data (.npz), or choose other data."
    if blocked:
        st.info(blocked)
    if st.button("Compare", type="primary", key="accuracy.submit", disabled=bool(blocked)):
        request = opt.new_request(
            source, ref.path, ref.name, data_path=data_path, label=label, shapes=shapes, **kw
        )
        st.session_state[JOB] = submit_compare(wb.jobs, ref, request)
        st.toast("Comparison queued.")


with st.expander("Culprit loop (INT8): measure what to keep in float", expanded=bool(st.session_state.get(ui.LOOP))):
    with ui.error_boundary("Culprit loop"):
        ui.culprit_loop_panel(ref, builds, calib_file, test_file)

if st.session_state.get(NEXT):
    st.session_state[JOB] = st.session_state.pop(NEXT)
earlier = opt.comparisons(wb.jobs, ref.digest)  # again: the button above may have queued one
if not earlier:
    st.info("No comparison of this model yet: choose a candidate and data above and press **Compare**.")
    st.stop()
if st.session_state.get(JOB) not in {j.id for j in earlier}:
    st.session_state[JOB] = earlier[0].id
labels = {j.id: opt.comparison_label(j) for j in earlier}
pick = ui.keyed_for("accuracy.pick", labels, st.session_state[JOB])  # drawn anew when a label or the choice changes
job_id = st.selectbox("Comparison", list(labels), index=list(labels).index(st.session_state[JOB]),
                      format_func=labels.get, key=pick, on_change=ui.copy_choice, args=(pick, JOB))
job = ui.job_panel(job_id, "Comparison")
if job.status != "succeeded":
    st.stop()

job_dir = wb.jobs.job_dir(job_id)
with ui.error_boundary("Comparison result"):
    result, ba = _result(str(job_dir), opt.stamp(job_dir))
    # What matters first: the verdict and the task metric, the build's speed-relevant facts, then the detail.
    {"pass": st.success, "task holds": st.success, "fail": st.error}[result.status](result.summary())
    build_job = (job.payload.get("request") or {}).get("build_job")
    ui.metric_row(opt.headline(result) + opt.build_facts(wb.jobs, build_job))
    (st.warning if result.is_simulation else st.info)(
        f"Candidate **{ui.md(result.candidate)}** — {ui.md(result.kind_label)}."
    )
    st.caption(f"Source: {ui.md(result.candidate_source.rstrip('.'))}. {result.n_samples} samples compared. Reference ran "
               f"on {result.reference_provider or 'an unrecorded provider'} (ONNX Runtime)"
               + (f"; candidate on {result.candidate_provider}." if result.candidate_provider else "."))
    errors, warnings = opt.alerts(result)
    for text in errors:
        st.error(ui.md_lines(text))
    for text in warnings:
        st.warning(ui.md_lines(text))
    ui.metric_row(opt.detail(result))  # columns as wide as their values: a tensor name is not cut
    names = [
        "Along the network",
        "Table",
        "Tensor",
        "Culprits",
        *(["Before / after"] if ba else []),
        "Export",
    ]
    tabs = dict(zip(names, st.tabs(names), strict=True))
    with tabs["Along the network"]:
        metrics = list(figs.METRICS)
        metric = st.selectbox(
            "Metric", metrics, format_func=lambda k: figs.METRICS[k][0], key="accuracy.metric"
        )
        ui.plotly_chart(figs.depth_figure(result, metric), key="accuracy.depth")
    with tabs["Table"]:
        table = figs.tensor_table(result)
        st.dataframe(table, hide_index=True, key="accuracy.table", column_config=ui.number_columns(table))
    with tabs["Tensor"]:
        samples = _samples(str(job_dir), opt.stamp(job_dir))
        shown = list(samples)
        if shown:
            first = shown.index(figs.default_tensor(result, shown))
            name = st.selectbox("Tensor", shown, index=first, key="accuracy.tensor")
            ui.plotly_chart(figs.histogram_figure(name, *samples[name]), key="accuracy.hist")
            ui.plotly_chart(figs.scatter_figure(name, *samples[name]), key="accuracy.scatter")
    with tabs["Culprits"]:
        if not result.culprits:
            st.info("Run a per-layer comparison of a reduced-precision candidate to rank the culprits.")
        else:
            ui.plotly_chart(figs.culprit_figure(result), key="accuracy.culprits")
            culprits = figs.culprit_table(result)
            st.dataframe(culprits, hide_index=True, column_config=ui.number_columns(culprits))
            ui.culprit_actions(ref, job, result, next_key=NEXT)
    if ba:
        with tabs["Before / after"]:
            ui.plotly_chart(figs.before_after_figure(ba), key="accuracy.before_after")
            st.dataframe(figs.before_after_table(ba), hide_index=True)
    with tabs["Export"]:
        mimes = {"report": "text/html", "qdq": "application/octet-stream"}
        for kind, path in opt.artifacts(job_dir).items():
            mime = mimes.get(kind, "application/json")
            ui.download_file(f"Download {path.name}", path, mime, key=f"accuracy.dl.{kind}.{job_id}")
        st.caption("compare_results.json is Polygraphy's RunResults format (`polygraphy inspect data`).")
