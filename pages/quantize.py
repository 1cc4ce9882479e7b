"""Quantize page: calibration data, calibrators scored on the user's data, a Q/DQ model as a job."""

import pandas as pd
import streamlit as st

from workbench import ui
from workbench.quantize import CALIBRATORS
from workbench.quantize_task import RANGES, SCORES, QuantizeRequest

st.title("Quantize")
ref = ui.require_model()
if ref is None:
    st.stop()
wb = ui.workbench()
summary = ui.model_summary(ref.digest)
st.caption(f"Model **{ui.md(ref.name)}** · explicit quantization: calibrate with ONNX Runtime and write a Q/DQ model "
           "(symmetric INT8 activations, per-channel weights) that TensorRT ≥ 11 and TensorRT-RTX build directly.")
if summary.quantization is not None:  # quantizing it again would stack Q/DQ nodes on its own
    st.info(f"Nothing to quantize: **{ui.md(ref.name)}** is already {summary.quantization.describe()}. Build it as it is; "
            "to calibrate differently, open the FP32 model it was made from.")
    st.page_link("pages/build.py", label="Build it as it is", icon=":material/build:")
    st.stop()

form, panel = st.columns([1, 1], gap="large")
with form:
    data_path, synthetic = ui.calibration_source(ref, "quantize.calib")
    precision = st.radio("Precision", ["int8", "fp8"], horizontal=True, key="quantize.precision",
                         format_func=str.upper)
    calibrator = st.selectbox("Calibrator", CALIBRATORS, key="quantize.calibrator",
                              help="entropy and min-max are TensorRT's classics; percentile clips outliers.")
    percentile = st.number_input("Percentile", 90.0, 100.0, 99.999, format="%.3f", key="quantize.percentile",
                                 disabled=calibrator != "percentile")
    ops = set(summary.op_histogram)
    exclude = st.multiselect("Keep in higher precision (node names or op types)", ui.node_choices(ref.digest),
                             key="quantize.exclude",
                             help="Suggestions come from the Accuracy page's culprit finder.")
    reuse = ui.ranges_choice(ref, "quantize.reuse")
    test_path = ui.scoring_data_source(ref, "quantize.test")
    req = QuantizeRequest(
        data_path=data_path, calibrator=calibrator, percentile=float(percentile), precision=precision,
        exclude_nodes=tuple(e for e in exclude if e not in ops), exclude_op_types=tuple(e for e in exclude if e in ops),
        synthetic=synthetic, reuse_ranges=reuse)
    a, b = st.columns(2)
    if a.button("Quantize", type="primary", key="quantize.submit"):
        with ui.error_boundary("Quantize"):
            st.session_state[ui.QUANTIZE_JOB] = wb.submit_quantize(ref, req)
    if b.button("Score all calibrators", key="quantize.score",
                help="Quantize with each calibrator and compare against FP32 in ONNX Runtime on the test data "
                     "(else on the calibration data)."):
        with ui.error_boundary("Score calibrators"):
            st.session_state[ui.SCORE_JOB] = wb.submit_score(
                ref, QuantizeRequest(**{**req.to_dict(), "reuse_ranges": None, "test_data_path": test_path}))

scores = None  # the calibrator table, shown below both columns: half the page cuts its columns off
with panel:
    job_id = st.session_state.get(ui.QUANTIZE_JOB)
    if job_id:
        with ui.error_boundary("Quantize job"):
            job = ui.job_panel(job_id, "Quantization")
            if job is not None and job.status == "succeeded":
                res = job.result
                if res.get("synthetic"):
                    st.warning("Calibrated on random data: shapes only — accuracy meaningless.")
                c = st.columns(3)
                c[0].metric("Quantized nodes", res.get("n_quantized_nodes"))
                c[1].metric("Kept in float", len(res.get("excluded", [])))
                c[2].metric("Samples", res.get("n_samples"))
                for w in res.get("warnings", []):
                    st.warning(ui.md_lines(w))
                d = st.columns(2)
                with d[0]:
                    ui.download_file("Download Q/DQ model", wb.jobs.artifact(job.id, "model_qdq.onnx"),
                                     key=f"dl.qdq.{job.id}")
                with d[1]:
                    ui.download_file("Download ranges (JSON)", wb.jobs.artifact(job.id, RANGES), "application/json",
                                     key=f"dl.ranges.{job.id}")
                st.caption("Build it: on the Build page choose INT8/FP8 and reuse these ranges, or "
                           "`trt-workbench build model_qdq.onnx …`.")
                st.page_link("pages/build.py", label="Build with these ranges", icon=":material/build:")
    score_id = st.session_state.get(ui.SCORE_JOB)
    if score_id:
        with ui.error_boundary("Calibrator scores"):
            job = ui.job_panel(score_id, "Scoring")
            if job is not None and job.status == "succeeded":
                frame = pd.read_json(wb.jobs.artifact(job.id, SCORES), orient="records")
                res = job.result
                if res.get("synthetic"):
                    st.warning("Calibrated on random data: the numbers say nothing about real accuracy.")
                test_name = (job.payload.get("request") or {}).get("test_data_path")
                why = " (highest top-1, then lowest max abs error)" if res.get("labelled") else " (lowest max abs error)"
                n_scored = f", {res['n_scored']} samples" if res.get("n_scored") else ""
                if res.get("held_out", bool(test_name)):
                    st.markdown(f"**Calibrators on held-out data** ({ui.md(res.get('scored_on', test_name))}{n_scored}) — best: "
                                f"**{res.get('best')}**{why}")
                else:
                    st.markdown(f"**Calibrators scored on the calibration data**{f' ({n_scored[2:]})' if n_scored else ''}"
                                f" — best: **{res.get('best')}**{why}")
                    st.warning("No held-out test set: each calibrator was scored on the samples it calibrated "
                               "on, which flatters all of them. Give labelled test data for an honest score.")
                if not res.get("labelled"):
                    st.caption("No 'label' array in the test data: scored by output error only (no top-1).")
                cols = [c for c in ("calibrator", "output", "accuracy_fp32", "accuracy_qdq", "accuracy_delta_pp",
                                    "max_abs_err", "mean_abs_err", "cosine", "quantize_s") if c in frame]
                scores = frame[cols]
                st.caption("Scores per calibrator: the table below.")
    if not job_id and not score_id:
        st.info("Choose data and a calibrator, then **Quantize** (a background job: you can leave the page). "
                "**Score all calibrators** measures each one against FP32 on your data, so choosing is a "
                "measurement, not a guess.")
if scores is not None:
    st.markdown("**Calibrator scores**: each calibrator's Q/DQ model against the FP32 model, both in ONNX Runtime")
    st.dataframe(scores, hide_index=True, width="stretch", column_config=ui.number_columns(scores, labels=ui.SCORE_COLUMNS))
