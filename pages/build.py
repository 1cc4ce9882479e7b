"""Build page: precision, optimization profiles and knobs in forms; the build runs as a background job."""

import streamlit as st

from workbench import ui
from workbench.errors import SpecError
from workbench.spec import (
    CALIBRATORS,
    IMPLICIT_CALIBRATORS,
    PRECISIONS,
    BuildSpec,
    CalibrationSpec,
    Profile,
    ShapeRange,
    check_explicitly_quantized,
    default_profile,
    format_shape,
    parse_shape,
    shared_dim_notes,
)

st.title("Build")
ref = ui.require_model()
if ref is None:
    st.stop()
wb = ui.workbench()
summary = ui.model_summary(ref.digest)
backends = ui.installed_backends()
if not backends:
    st.error("No TensorRT backend is installed. Install `tensorrt-rtx-cu13` (builds without a GPU) or TensorRT.")
    st.stop()

shown = ui.shown_build(ref)  # the build on the right: always this model's
ui.sync_build_form(ref, shown)  # the form on the left holds that build's settings
form, panel = st.columns([1, 1], gap="large")
with form:
    st.caption(f"Model **{ui.md(ref.name)}** · {summary.node_count} nodes")
    names = [b.name for b in backends]
    backend_name = st.selectbox("Backend", names, format_func=lambda n: next(b.label for b in backends
                                                                             if b.name == n), key="build.backend")
    info = next(b for b in backends if b.name == backend_name)
    if not info.can_run_engines:
        st.caption(f"ℹ️ {info.run_reason}")
    support = info.precisions

    def label(p: str) -> str:
        ok, _ = support.get(p, (False, ""))
        return p.upper() if ok else f"{p.upper()} (unavailable)"

    quantized = summary.quantization  # an explicitly quantized (Q/DQ) model: its own precision is the default
    precision = st.selectbox("Precision", PRECISIONS, format_func=label, key="build.precision",
                             index=PRECISIONS.index(quantized.precisions[0]) if quantized and quantized.precisions
                             else 0)
    ok, why = support.get(precision, (False, "Unknown precision."))
    (st.caption if ok else st.warning)(why or "Full FP32.")
    if quantized is not None:
        try:
            check_explicitly_quantized(BuildSpec(backend=backend_name, precision=precision), quantized)
        except SpecError as err:
            st.warning(f"{err.message} {err.hint}")
            ok = False

    # ---- optimization profiles
    dynamic = [t for t in summary.inputs if t.is_dynamic]
    profiles: list[Profile] = []
    if dynamic:
        suggested = ui.sample_profiles(ref)  # a bundled sample's documented profile, else one from the model
        proposal = suggested[0] if suggested else default_profile(summary.inputs)
        example = next((format_shape(r.opt) for r in proposal.shapes.values()), "1x3x224x224")
        st.markdown(f"**Optimization profiles** — min / opt / max shape for each dynamic input (e.g. `{example}`)")
        for note in shared_dim_notes(summary.inputs):
            st.caption(f"ℹ️ {note}")
        n_prof = st.number_input("Profiles", 1, 8, 1, key="build.n_profiles")
        for p in range(int(n_prof)):
            with st.container(border=True):
                st.markdown(f"Profile {p}")
                shapes = {}
                for t in dynamic:
                    prop = proposal.shapes.get(t.name)
                    cols = st.columns(3)
                    vals = []
                    for col, which in zip(cols, ("min", "opt", "max"), strict=True):
                        default = format_shape(getattr(prop, which)) if prop else ""
                        vals.append(col.text_input(f"{t.name} {which}", default, key=f"build.p{p}.{t.name}.{which}",
                                                   help=f"Model declares {t.shape_text()}"))
                    shapes[t.name] = vals
                profiles.append(shapes)  # type: ignore[arg-type]
    else:
        st.caption("All inputs have static shapes: no optimization profile needed.")

    # ---- calibration
    calibration = None
    if precision in ("int8", "fp8") and quantized is not None:
        st.markdown("**Calibration**")
        st.info(f"None needed: the model is {quantized.describe()}. It is built as it is, with its own scales.")
    elif precision in ("int8", "fp8"):
        st.markdown("**Calibration**")
        data_path, synthetic = ui.calibration_source(ref, "build.calib")
        reuse = ui.ranges_choice(ref, "build.reuse_ranges")
        implicit = False
        if backend_name == "tensorrt" and not info.strongly_typed_only and precision == "int8":
            implicit = st.checkbox("TensorRT's implicit calibrator (TensorRT ≤ 10, writes a calibration cache)",
                                   key="build.implicit",
                                   help="Otherwise the workbench calibrates with ONNX Runtime into a Q/DQ model "
                                        "(explicit quantization), which every TensorRT generation builds.")
        calibrator = st.selectbox("Calibrator", IMPLICIT_CALIBRATORS if implicit else CALIBRATORS,
                                  key="build.calibrator")
        percentile = st.number_input("Percentile", 90.0, 100.0, 99.999, format="%.3f", key="build.percentile",
                                     disabled=calibrator != "percentile")
        exclude_nodes, exclude_ops = ui.nodes_and_op_types("Keep out of quantization (node names or op types)",
                                                           ref.digest, key="build.exclude")
        calibration = CalibrationSpec(
            data_path=data_path, calibrator=calibrator, percentile=float(percentile),
            exclude_nodes=exclude_nodes, exclude_op_types=exclude_ops, synthetic=synthetic and not reuse,
            ranges_path=reuse, implicit=implicit)
    keep_nodes: tuple[str, ...] = ()
    keep_ops: tuple[str, ...] = ()
    if precision in ("fp16", "bf16") and info.strongly_typed_only:
        keep_nodes, keep_ops = ui.nodes_and_op_types(
            "Keep in FP32 (node names or op types)", ref.digest, key="build.keep_fp32",
            help=f"The {precision.upper()} conversion leaves these in FP32: the Accuracy page's culprits, or "
                 "op types such as Softmax or LayerNormalization.")

    # ---- advanced
    with st.expander("Advanced"):
        ws_mb = st.number_input("Workspace memory limit (MiB, 0 = builder default)", 0, 1 << 20, 0,
                                key="build.workspace_mb")
        opt_level = st.slider("Builder optimization level", 0, 5, 3, key="build.opt_level")
        caps: list[str] = []
        hw = vc = False
        timing_cache = True
        if backend_name == "tensorrt-rtx":
            from workbench.backends import RTX_COMPUTE_CAPABILITIES

            caps = st.multiselect("Target compute capabilities (empty = all TensorRT-RTX supports)",
                                  RTX_COMPUTE_CAPABILITIES, key="build.caps")
            st.caption("Timing cache: TensorRT-RTX has none (kernels are finalized on the target GPU).")
        else:
            timing_cache = st.checkbox("Persist and reuse the timing cache", True, key="build.timing_cache")
            hw = st.checkbox("Hardware compatible (Ampere and newer)", key="build.hw_compat")
            vc = st.checkbox("Version compatible", key="build.version_compat")

    parsed = wb.last_parse_check(ref, backend_name)
    rejected = parsed is not None and not parsed["ok"]
    if rejected:
        issues = parsed["issues"]
        st.error(f"The parser check with {backend_name} rejects {len(issues)} node(s) of this model ("
                 + ", ".join(ui.code(i.get('node') or '?') for i in issues[:5]) + (" …" if len(issues) > 5 else "")
                 + "): a build would fail the same way. Replace them, or give TensorRT a plugin for them; the "
                 "details are on the Model page, tab Parser check.")
    if warning := wb.build_time_warning(ref):
        st.warning(ui.md(warning))
    if st.button("Build", type="primary", key="build.submit", disabled=not ok or rejected):
        with ui.error_boundary("Build"):
            built_profiles = []
            for i, shapes in enumerate(profiles):
                ranges = {}
                for name, (a, b, c) in shapes.items():  # type: ignore[attr-defined]
                    try:
                        ranges[name] = ShapeRange(parse_shape(a, f"{name} min"), parse_shape(b, f"{name} opt"),
                                                  parse_shape(c, f"{name} max"))
                    except SpecError as err:
                        raise SpecError(f"Profile {i}: {err.message}", err.hint) from err
                built_profiles.append(Profile(ranges))
            spec = BuildSpec(backend=backend_name, precision=precision, profiles=tuple(built_profiles),
                             workspace_mb=int(ws_mb) or None, optimization_level=int(opt_level),
                             timing_cache=timing_cache, compute_capabilities=tuple(caps), hardware_compatible=hw,
                             version_compatible=vc, calibration=calibration, keep_fp32_nodes=keep_nodes,
                             keep_fp32_op_types=keep_ops)
            st.session_state[ui.BUILD_JOB] = job_id = wb.submit_build(ref, spec)
            st.session_state[ui.BUILD_FORM_OF] = (ref.digest, job_id)  # the form already holds its settings
            st.toast("Build queued.")

with panel:
    shown = ui.shown_build(ref)  # again: the button above may have queued one
    if shown is not None:
        with ui.error_boundary("Build job"):
            ui.build_job_panel(shown.id)
    else:
        st.info("Fill in the form and press **Build**. The build runs in a background worker: you can leave this "
                "page and come back; finished builds are listed on the **Engines** page.")
