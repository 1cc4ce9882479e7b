"""The one module of the core that touches Streamlit: session-state keys, cached getters, error boundary,
and the few widgets several pages share (Netron view, job panel). Pages compose these and call the core.

Session state holds ids and digests only (never engines, sessions or arrays).
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from .errors import WorkbenchError
from .model import ModelRef, ModelSummary
from .service import Workbench
from .text import code, inert_plotly, md, md_lines

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- keys
MODEL_DIGEST = "model.digest"
MODEL_UPLOAD_ID = "model.upload_id"
BUILD_JOB = "build.job_id"
BUILD_LOG_LEVELS = "build.log_levels"
ENGINES_SELECTED = "engines.selected"
ENGINES_TABLE = "engines.table"
ENGINES_CONFIRM_DELETE = "engines.confirm_delete"
FUSION_JOB = "fusion.job_id"
QUANTIZE_JOB = "quantize.job_id"
SCORE_JOB = "quantize.score_job_id"
FUSION_COMPARE_JOB = "fusion.compare_job_id"
NETRON_SELECT = "netron.select"
MODEL_RECENT = "model.recent"  # the "Recent models" picker: shows the current model, written by it only on a pick
BUILD_FORM_OF = "build.form_of"  # (model digest, build id) whose settings the Build form was last filled from
BUILD_PREVIOUS_DATA = "build.calib.previous"  # the shown build's calibration data, offered as a source
UPLOADS = "uploads.stored"  # Streamlit upload file id -> stored path: a rerun never stores an upload again


def images_job_key(source_key: str, server: bool) -> str:
    """Where a calibration source keeps the id of its images job (archives and server folders apart)."""
    return f"{source_key}.{'folder' if server else 'images'}.job_id"


APP_DIR = Path(os.environ.get("WORKBENCH_APP_DIR") or Path(__file__).resolve().parent.parent)
STATIC_DIR = APP_DIR / "static"


# ---------------------------------------------------------------------------------------------- resources
@st.cache_resource(show_spinner=False)
def workbench() -> Workbench:
    """Shared by every session (thread-safe: it holds paths; job state is on disk behind a file lock)."""
    return Workbench.open()


_PRUNED_AT_START = False


@st.cache_resource(show_spinner="Preparing the Netron viewer …")
def netron_base() -> str:
    """Prepare the offline Netron copy in ``static/netron`` once per server process; its page's URL path."""
    from .netron import prepare_netron, prune_published

    global _PRUNED_AT_START
    if not _PRUNED_AT_START:  # once per server process (not on a cache clear): last run's publications
        _PRUNED_AT_START = True  # (run.sh also removes them before Streamlit measures static/)
        prune_published(STATIC_DIR)
    prepare_netron(STATIC_DIR / "netron")
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")  # Streamlit serves static/ below it
    return f"{'/' + base if base else ''}/app/static/netron/index.html"


@st.cache_data(show_spinner=False, max_entries=64)
def model_summary(digest: str) -> ModelSummary:
    wb = workbench()
    return wb.summary(wb.model(digest))


def published_model_url(path: str | os.PathLike[str]) -> str:
    """Same-origin URL of the model for the viewer. Not cached on purpose: publish_model reuses an existing
    publication of the same file (a few stat calls) and republishes one that was pruned meanwhile."""
    from .netron import publish_model

    base = str(st.get_option("server.baseUrlPath") or "").strip("/")  # Streamlit serves static/ below it
    return publish_model(STATIC_DIR, Path(path), url_prefix=f"{'/' + base if base else ''}/app/static")


# ---------------------------------------------------------------------------------------------- state
def current_model() -> ModelRef | None:
    digest = st.session_state.get(MODEL_DIGEST)
    if not digest:
        return None
    try:
        return workbench().model(digest)
    except WorkbenchError:
        st.session_state.pop(MODEL_DIGEST, None)
        return None


def sample_profiles(ref: ModelRef) -> tuple[Any, ...]:
    """The suggested optimization profiles when the model is a bundled sample (by content), else ()."""
    from .samples import sample_for

    s = sample_for(ref)
    return tuple(s.profiles()) if s else ()


def set_current_model(ref: ModelRef) -> None:
    """The user's newest choice of model (an upload, a sample, a pick, the demo): every page follows it."""
    st.session_state[MODEL_DIGEST] = ref.digest


def recent_key(current: str | None) -> str:
    """The "Recent models" picker's key: one per current model, so the picker is drawn anew (showing the current
    model) whenever another one is opened, never keeping an older value in the browser."""
    return f"{MODEL_RECENT}.{(current or 'none')[:16]}"


def recent_model_picked(key: str) -> None:
    """``on_change`` of the "Recent models" picker: a pick is the newest choice (a stale value of the picker never
    switches the model back: only a change made in it calls this)."""
    picked = st.session_state.get(key)
    if picked:
        st.session_state[MODEL_DIGEST] = picked


def keyed_for(prefix: str, labels: dict[str, str], chosen: str | None) -> str:
    """A picker's key that changes whenever its labels or the page's choice change. The browser's picker keeps
    the text it has shown: a comparison that failed meanwhile kept its old label, a newer job set by the page
    showed as the old one. A new key draws the picker anew; ``copy_choice`` keeps the user's pick."""
    import hashlib

    sig = hashlib.sha1(repr((sorted(labels.items()), chosen)).encode()).hexdigest()[:12]
    return f"{prefix}.{sig}"


def copy_choice(widget_key: str, state_key: str) -> None:
    """``on_change`` of a picker keyed by :func:`keyed_for`: the pick goes to the page's own state key."""
    st.session_state[state_key] = st.session_state.get(widget_key)


def show_job(key: str, job: Any) -> None:
    """Show ``job`` on the page that reads ``key`` (Build, Fusion): its model becomes the current model, so the
    page does not switch models behind the user's back later."""
    st.session_state[key] = job.id
    if job.model_digest:
        st.session_state[MODEL_DIGEST] = job.model_digest


@contextlib.contextmanager
def error_boundary(what: str = "") -> Iterator[None]:
    """Show domain errors as a specific message; anything else as a short error, never a dead page."""
    try:
        yield
    except WorkbenchError as err:
        st.error((f"**{md(what)}:** " if what else "") + md_lines(user_names(err.message))
                 + (f"\n\n{md_lines(user_names(err.hint))}" if err.hint else ""))
    except Exception as err:  # a bug: say so plainly, keep the app alive, keep the details in the server log
        log.exception("unexpected error%s", f" in {what}" if what else "")
        st.error(f"Unexpected error{' in ' + md(what) if what else ''}: {type(err).__name__}: {md(err)}. "
                 "Details are in the server log.")


def selected_row_id(table_key: str, ids: Sequence[str], selected_key: str) -> str | None:
    """The id of the row selected in the single-row table ``table_key`` whose rows are ``ids``; call it just before
    drawing the table.

    Streamlit keeps a keyed table's selection as a row *position* when the data change (another session adds or
    deletes a row), so a position read on its own may point at another row, or past the end. The position is therefore
    resolved against the ids the user saw when they clicked (kept in ``<table_key>.ids``), the id is kept in
    ``selected_key``, and when the rows have changed the table's selection is moved to that id's new row (or cleared
    when the row is gone).
    """
    ids = list(ids)
    shown_key = f"{table_key}.ids"
    shown = st.session_state.get(shown_key)
    state = st.session_state.get(table_key)
    if state is not None and shown is not None:
        rows = list(state["selection"]["rows"])
        st.session_state[selected_key] = shown[rows[0]] if rows and 0 <= rows[0] < len(shown) else None
    selected = st.session_state.get(selected_key)
    if selected not in ids:
        selected = None
        st.session_state.pop(selected_key, None)
    if state is None or shown != ids:
        st.session_state[table_key] = {"selection": {"rows": [ids.index(selected)] if selected else [],
                                                     "columns": [], "cells": []}}
    st.session_state[shown_key] = ids
    return selected


def require_model() -> ModelRef | None:
    ref = current_model()
    if ref is None:
        st.info("No model open yet. Open one on the **Model** page (upload, or pick a bundled sample).")
        st.page_link("pages/model.py", label="Go to the Model page", icon=":material/upload_file:")
    return ref


def shown_build(ref: ModelRef) -> Any:
    """The build the Build page shows for the current model: the one last submitted or opened, if it is this
    model's, else this model's newest build (None when it has none). Never another model's build."""
    wb = workbench()
    job_id = st.session_state.get(BUILD_JOB)
    if job_id:
        with contextlib.suppress(WorkbenchError):
            job = wb.jobs.get(job_id)
            if job.model_digest == ref.digest:
                return job
    builds = wb.jobs_of("build", ref)
    return builds[0] if builds else None


_BUILD_FORM_KEYS = ("build.backend", "build.precision", "build.n_profiles", "build.calibrator", "build.percentile",
                    "build.exclude", "build.keep_fp32", "build.implicit", "build.reuse_ranges", "build.workspace_mb",
                    "build.opt_level", "build.caps", "build.timing_cache", "build.hw_compat", "build.version_compat",
                    "build.calib.source", BUILD_PREVIOUS_DATA)


def sync_build_form(ref: ModelRef, shown: Any) -> None:
    """Before the Build form is drawn: when the page is entered afresh, the model changed, or another build is
    shown (a rebuild from the Accuracy page, a build opened from Engines), fill the form from the shown build's
    spec (or reset it to the defaults when the model has no build), so pressing **Build** builds what is on
    screen."""
    from .samples import sample_for
    from .spec import BuildSpec, format_shape

    state = st.session_state
    target = (ref.digest, shown.id if shown is not None else None)
    fresh = "build.precision" not in state  # widget values are dropped when the user leaves the page
    if not fresh and state.get(BUILD_FORM_OF) == target:
        return
    state[BUILD_FORM_OF] = target
    for key in [k for k in state if k in _BUILD_FORM_KEYS or re.match(r"build\.p\d+\.", str(k))]:
        del state[key]
    if shown is None:
        return
    spec = BuildSpec.from_dict(shown.payload["spec"])
    state["build.backend"], state["build.precision"] = spec.backend, spec.precision
    if spec.profiles:
        state["build.n_profiles"] = len(spec.profiles)
        for i, profile in enumerate(spec.profiles):
            for name, rng in profile.shapes.items():
                for which in ("min", "opt", "max"):
                    state[f"build.p{i}.{name}.{which}"] = format_shape(getattr(rng, which))
    calib = spec.calibration
    if calib is not None and spec.precision in ("int8", "fp8"):
        state["build.calibrator"], state["build.percentile"] = calib.calibrator, float(calib.percentile)
        state["build.exclude"] = [*calib.exclude_nodes, *calib.exclude_op_types]
        state["build.implicit"] = calib.implicit
        if calib.ranges_path and Path(calib.ranges_path).is_file():
            state["build.reuse_ranges"] = calib.ranges_path
        sample = sample_for(ref)
        if calib.synthetic and not calib.data_path:
            state["build.calib.source"] = "random"
        elif sample and calib.data_path and sample.calibration_data and \
                Path(calib.data_path) == sample.calibration_data:
            state["build.calib.source"] = "sample"
        elif calib.data_path and Path(calib.data_path).is_file():
            state["build.calib.source"], state[BUILD_PREVIOUS_DATA] = "previous", calib.data_path
    state["build.keep_fp32"] = [*spec.keep_fp32_nodes, *spec.keep_fp32_op_types]
    state["build.workspace_mb"] = int(spec.workspace_mb or 0)
    state["build.opt_level"] = int(spec.optimization_level)
    state["build.caps"] = list(spec.compute_capabilities)
    state["build.timing_cache"] = spec.timing_cache
    state["build.hw_compat"], state["build.version_compat"] = spec.hardware_compatible, spec.version_compatible


# ---------------------------------------------------------------------------------------------- widgets
def netron_view(path: Path, select: Sequence[str] = (), height: int = 620) -> None:
    """Embed Netron (same origin, no external requests) showing the model at ``path``; ``select`` names
    nodes to highlight. Changing only ``select`` re-selects in the loaded view without reloading it."""
    from .netron import viewer_url

    base = netron_base()  # first: at start-up it removes the last run's publications
    url = viewer_url(published_model_url(path), select=select, netron_base=base)
    st.iframe(url, height=height, alt=f"Netron graph of {Path(path).name}")
    st.caption(f"[Open the graph in a new tab]({url})")


def _severity_colors() -> dict[str, str]:
    from .reports.colors import LOG_SEVERITY

    return LOG_SEVERITY


def log_view(text: str, levels: Sequence[str], height: int = 360, tail: int = 2000) -> None:
    from .jobs import parse_log

    colors = _severity_colors()
    lines = [ln for ln in parse_log(text) if ln.severity in levels][-tail:]
    body = "\n".join(f'<span style="color:{colors.get(ln.severity, "#333")}">{html.escape(ln.text)}</span>'
                     for ln in lines)
    st.html(f'<div style="height:{height}px;overflow:auto;display:flex;flex-direction:column-reverse;'
            f'border:1px solid #ddd;border-radius:6px;padding:6px;background:#fafafa">'
            f'<pre style="margin:0;font-size:12px;white-space:pre-wrap;word-break:break-all">{body}</pre></div>')


def job_status_line(job: Any) -> None:
    from .jobs import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED

    elapsed = f"{job.duration:.1f} s" if job.duration is not None else "not started"
    if job.status == RUNNING:
        st.progress(min(max(job.progress, 0.0), 1.0), text=f"{job.phase or 'Running'} · {elapsed}")
    elif job.status == QUEUED:
        st.info(f"Queued (submitted {time.strftime('%H:%M:%S', time.localtime(job.created))}); "
                + md(workbench().jobs.waiting_for(job)))
    elif job.status == SUCCEEDED:
        st.success(f"Finished in {elapsed}.")
    elif job.status == CANCELLED:
        st.warning(f"Cancelled. {md_lines(job.error or '')}")
    elif job.status == FAILED:
        st.error(failure_markdown(job.error or "", job.hint))


def failure_markdown(error: str, hint: str | None) -> str:
    """A failure for ``st.error``: the backend's quoted ``[E] …`` lines (see workbench.backend_log) as a code block,
    verbatim (its layer names carry underscores Markdown would eat), the rest as inert text (file-derived names)."""
    head: list[str] = []
    quoted: list[str] = []
    for line in error.splitlines():
        (quoted if line.startswith("[E] ") else head).append(line)
    text = "Failed: " + md_lines(user_names("\n".join(head)))
    if quoted:
        body = "\n".join(quoted)
        fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", body)), default=0))  # longer than any run inside
        text += f"\n\n{fence}\n{body}\n{fence}"
    return text + (f"\n\n{md_lines(user_names(hint))}" if hint else "")


EAGER_DOWNLOAD_BYTES = 16 << 20


def download_file(label: str, path: Path, mime: str = "application/octet-stream", key: str | None = None,
                  file_name: str | None = None) -> None:
    """A download button that always delivers. Files up to :data:`EAGER_DOWNLOAD_BYTES` go with the page: Streamlit
    names them by content, so their URL is the same on every rerun and stays valid one rerun longer (a click while
    the page reruns still gets the file). A *deferred* download (a callable, read on click) gets a new id on every
    rerun and the old one is dropped when the rerun ends: a click in between got nothing ("Deferred file … not
    found"). Only bigger files (plans of real models) are still read on click, so reruns don't re-read them."""
    try:
        small = path.stat().st_size <= EAGER_DOWNLOAD_BYTES
    except OSError:
        small = False
    st.download_button(label, data=path.read_bytes() if small else (lambda: path.read_bytes()),
                       file_name=file_name or path.name, mime=mime, key=key, on_click="ignore")


@st.cache_data(show_spinner=False, max_entries=8)
def _bundle_bytes(job_dir: str, stamp: float) -> bytes:
    from .reports.build_report import bundle_bytes

    return bundle_bytes(Path(job_dir))


def download_name(job: Any, suffix: str) -> str:
    """A build's download named after its model and build: ``digits_mlp.int8.3Fq9xK2a.plan``, not ``engine.plan``
    (two downloads never overwrite each other, and the name says what it is)."""
    from .model import safe_filename

    stem = re.sub(r"\.onnx$", "", job.model_name or "model", flags=re.IGNORECASE)
    precision = str((job.payload.get("spec") or {}).get("precision") or "build")
    return safe_filename(f"{stem}.{precision}.{job.id[:8]}{suffix}")


def quoted_as_code(text: str) -> str:
    """Markdown of a sentence whose 'quoted' names become code: Markdown ate the underscores of '__myl_<Ops>' and
    took <Ops> for a tag. An apostrophe inside a word (the convolution's) is not a quote."""
    return re.sub(r"(?<![A-Za-z])'([^'`]+?)'(?![A-Za-z])", r"`\1`", text)


_ZERO_DELTA = re.compile(r"^[+-]?0+(\.0*)?(?![\d.])")


def metric_row(items: Sequence[tuple[str, str, str | None, str | None]], notes: Sequence[str] = ()) -> None:
    """Metrics (label, value, delta, help) side by side, each column as wide as its value needs: ``st.metric``
    cuts a value wider than its column to "347.…", so a tensor name beside short numbers gets the room it needs.
    A zero delta ("+0.00 pp") is grey and has no arrow (it is no gain); so are the deltas of the labels in
    ``notes``, which are remarks ("4 layers"), not changes."""
    if not items:
        return
    for col, (label, value, delta, tip) in zip(st.columns([max(len(str(v)), 7) for _, v, _, _ in items]),
                                               items, strict=True):
        plain = delta is None or label in notes or bool(_ZERO_DELTA.match(str(delta).strip()))
        col.metric(md(label), md(value), _md_delta(delta), help=md_lines(tip) if tip else None, delta_color="off" if plain else "normal",
                   delta_arrow="off" if plain else "auto")


def plotly_chart(fig: Any, container: Any = None, **kwargs: Any) -> Any:
    """``st.plotly_chart`` (or ``container.plotly_chart``) of ``fig`` with every string that came from a file made
    plain text: a tensor or node named ``<a href=...>`` draws no link."""
    import plotly.graph_objects as go

    safe = go.Figure(inert_plotly(fig.to_dict()))
    return (container or st).plotly_chart(safe, **kwargs)


def _md_delta(delta: str | None) -> str | None:
    """A metric's delta as inert Markdown, its leading sign kept as written (it sets the arrow's direction)."""
    if delta is None:
        return None
    text = str(delta)
    sign = text[:1] if text[:1] in "+-−" else ""
    return sign + md(text[len(sign):])


SCORE_COLUMNS = {"accuracy_fp32": "top-1 FP32", "accuracy_qdq": "top-1 Q/DQ", "accuracy_delta_pp": "Δ top-1 (pp)",
                 "max_abs_err": "max abs err", "mean_abs_err": "mean abs err", "quantize_s": "time (s)"}


PERCENT_COLUMNS = ("accuracy_fp32", "accuracy_qdq")  # fractions shown as 98.19 %, as on the Accuracy page


def number_columns(frame: Any, fmt: str = "%.4g", labels: dict[str, str] | None = None) -> dict[str, Any]:
    """``column_config`` for a table: its float columns in ``fmt`` (0.9997 keeps its digits, 1.2884001 loses the
    noise), or in scientific notation where the magnitudes call for it (a max relative error of 7.9E14 beside
    0.0079: a 16-digit number is not read), and ``labels`` as column titles (the data keep their names)."""
    import numpy as np
    import pandas as pd

    labels = labels or {}
    config: dict[str, Any] = {}
    for name in frame.columns:
        if name in PERCENT_COLUMNS and pd.api.types.is_numeric_dtype(frame[name]):
            config[name] = st.column_config.NumberColumn(labels.get(name, name), format="percent")
        elif pd.api.types.is_float_dtype(frame[name]):
            mags = np.abs(frame[name].to_numpy(dtype=float))
            mags = mags[np.isfinite(mags) & (mags > 0)]
            wide = mags.size > 0 and (mags.max() >= 1e6 or mags.min() < 1e-4)
            config[name] = st.column_config.NumberColumn(labels.get(name, name),
                                                         format="scientific" if wide else fmt)
        elif name in labels:
            config[name] = st.column_config.Column(labels[name])
    return config


# Columns holding names (layers, nodes, tensors) or sentences: a narrow default width cuts them to "/model/bl…".
TEXT_COLUMNS = ("name", "node", "onnx_nodes", "inputs", "outputs", "also in", "layer", "layers", "explanation",
                "evidence", "why", "ONNX nodes", "tensor")


def text_columns(frame: Any, wide: tuple[str, ...] = TEXT_COLUMNS) -> dict[str, Any]:
    """``column_config`` giving the name and sentence columns of ``frame`` a large width."""
    return {name: st.column_config.Column(width="large") for name in frame.columns if name in wide}


@st.cache_data(show_spinner=False, ttl=600)
def installed_backends() -> list[Any]:
    from .backends import installed_backends as _installed

    return _installed()


def parser_check_panel(ref: ModelRef, backend: str) -> None:
    """Really parse the model with the backend's ONNX parser (in a worker), and list what it rejects."""
    from .errors import BackendError

    wb = workbench()
    with error_boundary("Parser check"):
        try:
            result, job_id = wb.parse_check(ref, backend)
        except BackendError as err:  # the last check failed (its worker died, ...): say why, offer another
            st.error(f"**Parser check:** {md_lines(err.message)}" + (f"\n\n{md_lines(err.hint)}" if err.hint else ""))
            if not st.button("Check again", key=f"model.parse_retry.{backend}"):
                return
            result, job_id = wb.parse_check(ref, backend, retry=True)
        if result is None and job_id is not None:
            wait_for_job(job_id, f"Parsing with {backend}")
            return
        assert result is not None
        if result["ok"]:
            st.success(f"{backend} {result['backend_version']} parses the model: "
                       f"{result['network_layers']} network layers.")
        else:
            import pandas as pd

            st.error(f"{backend} {result['backend_version']} rejects {len(result['issues'])} node(s). "
                     "A build will fail until they are replaced or a TensorRT plugin is provided for them.")
            if result["issues"]:
                st.dataframe(pd.DataFrame(result["issues"]), hide_index=True, width="stretch")
            else:  # refused without naming a node: the backend's own error lines say why
                from .backend_log import quote, quoted_errors

                errors = quoted_errors([ln[4:] for ln in result.get("log", ()) if ln.startswith("[E] ")])
                if errors:
                    st.code(quote(errors), language=None)


def wait_for_job(job_id: str, label: str) -> None:
    """Poll a short job without blocking the script; rerun the page once it finishes."""

    @st.fragment(run_every=0.7)
    def poll() -> None:
        job = workbench().jobs.get(job_id)
        if not job.active:
            if job.status != "succeeded":
                st.error(f"{md(label)} failed: {md_lines(job.error or '')}")
                return
            st.rerun()
        st.caption(f"{md(label)} … ({job.status})")

    poll()


# ---------------------------------------------------------------------------------------------- build job panel
LOG_LEVELS = ("error", "warning", "info", "verbose", "debug")


def build_job_panel(job_id: str) -> None:
    """Live while the build runs (progress, filtered log, cancel); its results once it has finished."""
    levels = st.multiselect("Log levels", LOG_LEVELS, default=["error", "warning", "info"], key=BUILD_LOG_LEVELS)
    job_panel(job_id, "Build", levels=levels, results=build_results)


def build_results(job: Any) -> None:
    from .reports.build_report import BUNDLE, REPORT, commands, portability
    from .spec import BuildSpec

    wb = workbench()
    res = job.result
    spec = BuildSpec.from_dict(job.payload["spec"])
    c = st.columns(3)  # three short values: the panel is half the page wide, longer ones would be cut
    c[0].metric("Plan", f"{res.get('plan_bytes', 0) / 1024:.0f} KiB")
    c[1].metric("Build time", f"{res.get('build_seconds', 0):.2f} s")
    c[2].metric("Precision", spec.precision.upper())
    peak = f" · peak memory {res['peak_rss_mib']:.0f} MiB" if res.get("peak_rss_mib") else ""
    st.caption(f"{res.get('backend')} {res.get('backend_version', '')} · built on "
               f"{md(res.get('built_on') or 'an unknown machine')}{peak}")
    d = st.columns(3)
    with d[0]:
        download_file("Download plan", wb.jobs.artifact(job.id, "engine.plan"), key=f"dl.plan.{job.id}",
                      file_name=download_name(job, ".plan"))
    with d[1]:
        from .reports.build_report import bundle_size

        job_dir = wb.jobs.job_dir(job.id)
        if (job_dir / BUNDLE).is_file() or bundle_size(job_dir) > EAGER_DOWNLOAD_BYTES:  # zipped to disk on click
            bundle: Any = lambda: wb.bundle_path(job.id).read_bytes()  # noqa: E731
        else:  # small: zipped in memory, handed over with the page (see download_file)
            bundle = _bundle_bytes(str(job_dir), job_dir.joinpath("engine.plan").stat().st_mtime)
        st.download_button("Bundle (.zip)", data=bundle, file_name=download_name(job, ".bundle.zip"),
                           mime="application/zip", key=f"dl.bundle.{job.id}", on_click="ignore")
    with d[2]:
        download_file("Report (.md)", wb.jobs.artifact(job.id, REPORT), "text/markdown",
                      key=f"dl.report.{job.id}", file_name=download_name(job, ".report.md"))
    check = res.get("precision_check") or {}
    if check.get("summary"):
        (st.success if check.get("honoured", True) else st.warning)(md_lines(check["summary"]))
    for w in res.get("warnings", []):
        st.warning(md_lines(w))
    for n in res.get("notes", []):
        st.caption(md_lines(n))
    port = portability(spec, res.get("backend_version", ""))
    with st.container(border=True):
        st.markdown("**Portability**")
        st.markdown(f"- **Runs on:** {port.runs_on}\n- **Will not run on:** {port.will_not_run_on}\n"
                    f"- **Runtime:** {port.version_rule}")
    cmds = commands(spec, job.model_name, res.get("network_model", ""), res.get("backend_version", ""))
    st.markdown("**Redo this build outside the app**" + (
        f" (on `{res['network_model']}` from the bundle)" if res.get("network_model") else ""))
    for cmd in (cmds["polygraphy"], cmds["trtexec"]):  # one option a line: on one line its end was hidden
        st.code(re.sub(r" (?=--)", lambda _: " \\\n    ", cmd), language="bash", wrap_lines=True)
    st.markdown("**Next**")
    n = st.columns(2)
    if n[0].button("Fusion report", key=f"build.to_fusion.{job.id}", icon=":material/account_tree:",
                   help="Which ONNX nodes became which engine layer, for this build."):
        show_job(FUSION_JOB, job)
        st.switch_page("pages/fusion.py")
    with n[1]:
        st.page_link("pages/accuracy.py", label="Check accuracy", icon=":material/troubleshoot:",
                     help="On the Accuracy page, candidate 'a finished build': this build against FP32.")


DIFF_COLUMNS = {"presence": "in", "precision_a": "precision A", "precision_b": "precision B",
                "precision_changed": "precision changed", "fusion_changed": "fusion changed",
                "fused_with_a": "fused with (A)", "fused_with_b": "fused with (B)", "layers_a": "layers (A)",
                "layers_b": "layers (B)"}


def build_diff_panel(layers: Any, other: Any, profile: int, label_a: str, label_b: str, file_name: str) -> None:
    """Two builds of one model: which ONNX nodes changed fusion group or precision. A is the build picked on the
    page, B the other; the table, the figure and the summary all say which is which."""
    import pandas as pd

    from .fusion import diff_builds
    from .reports.fusion_figures import diff_precision
    from .reports.fusion_html import to_csv

    def short(label: str) -> str:  # "model.onnx (1a2b3c4d): tensorrt-rtx · INT8, entropy · 1 profile · <when> · <id>"
        return label.split(": ", 1)[-1].rsplit(" · ", 2)[0] + " · " + label.rsplit(" · ", 1)[-1]

    diff = diff_builds(layers, other, profile=profile)
    st.markdown(f"**A** (the build picked above): {md(label_a)}  \n**B**: {md(label_b)}")
    st.markdown(md_lines(diff.summary()))
    only = st.toggle("Only nodes that changed", value=True, key="fusion.only_changed")
    rows = diff.to_rows(changed_only=only)
    if rows:
        frame = pd.DataFrame(rows)
        frame["presence"] = frame["presence"].map({"both": "A and B", "only_a": "A only", "only_b": "B only"})
        st.dataframe(frame, hide_index=True, width="stretch", column_config=number_columns(frame, labels=DIFF_COLUMNS))
    else:
        st.info("No ONNX node changed fusion group or precision between the two builds.")
    st.plotly_chart(diff_precision(diff, f"A: {short(label_a)}", f"B: {short(label_b)}"), width="stretch",
                    key="fusion.fig.diff")
    st.download_button("Comparison (CSV)", data=lambda: to_csv(diff.to_rows()), on_click="ignore",
                       file_name=file_name, mime="text/csv", key="fusion.dl.diff")


@st.cache_data(show_spinner=False, max_entries=16)
def node_choices(digest: str) -> list[str]:
    """Op types first, then node names: what a user may keep out of quantization."""
    from .model import node_names

    wb = workbench()
    ref = wb.model(digest)
    return sorted(model_summary(digest).op_histogram) + node_names(ref.path)


def nodes_and_op_types(label: str, digest: str, key: str, help: str | None = None
                       ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A multiselect of op types and node names; returns (node names, op types) as the spec takes them."""
    picked = st.multiselect(label, node_choices(digest), key=key, help=help)
    ops = set(model_summary(digest).op_histogram)
    return tuple(p for p in picked if p not in ops), tuple(p for p in picked if p in ops)


@st.cache_data(show_spinner=False, max_entries=16)
def _calibration_stats(model_path: str, data_path: str) -> Any:
    import pandas as pd

    from .calibration_data import model_inputs, preview_npz

    p = preview_npz(Path(data_path), model_inputs(Path(model_path)), extra_keys=("label",))
    return pd.DataFrame(p.columns), p.n_samples, p.values_read


def calibration_preview(ref: ModelRef, data_path: str, what: str = "Calibration data") -> None:
    """``what``: which box the data are for (an error says so: calibration data, or held-out data)."""
    from .calibration_data import PREVIEW_MAX_BYTES

    with error_boundary(f"{what} {_user_name(data_path)}"):
        stats, n, values_read = _calibration_stats(str(ref.path), data_path)
        st.caption(f"{n} samples in {md(_user_name(data_path))}")
        st.dataframe(stats, width="stretch", hide_index=True)
        if not values_read:
            st.caption(f"Shapes and types checked. Over {PREVIEW_MAX_BYTES // 2**20} MiB of arrays, so the values "
                       "(NaN/Inf, ranges) are read and checked by the job, in a worker, not by this page.")


def data_roots() -> tuple[Path, ...]:
    """The server folders data and models may be opened from (``WORKBENCH_DATA_ROOTS``)."""
    from .calibration_images import data_roots as roots

    return roots(workbench().ws.root)


def stored_upload(up: Any, kind: str = "data") -> str:
    """The workspace path of an uploaded file (a data file, or ``kind="onnx"`` a model), stored once per upload
    (Streamlit's file id), not on every rerun."""
    seen = st.session_state.setdefault(UPLOADS, {})
    if up.file_id not in seen:
        wb = workbench()
        seen[up.file_id] = str(wb.import_upload(up, up.name).path if kind == "onnx" else wb.store_data(up, up.name))
    return str(seen[up.file_id])


def user_names(text: str) -> str:
    """``text`` with every stored data file's name as the user gave it: the workspace stores uploads as
    ``<24 hex digits>-name.npz``, a name the user never saw."""
    return re.sub(r"\b[0-9a-f]{24}-(?=[^\s/'\"]+)", "", text)


def mapped_data(ref: ModelRef, data_path: str, key: str, labels: bool) -> str | None:
    """An uploaded .npz as the model reads it: as is when it names every model input, else mapped — a picker per
    model input (and for the labels when ``labels``) choosing one of its arrays — into a new .npz. None until
    every input is mapped."""
    from .calibration_data import model_inputs
    from .npz_mapping import LABEL, array_names, mapped_path, remap_npz

    names = array_names(data_path)
    inputs = [i.name for i in model_inputs(ref.path)]
    if set(inputs) <= set(names):
        return data_path
    st.info(f"{_user_name(data_path)} holds {', '.join(f'`{n}`' for n in names)}; the model reads "
            f"{', '.join(f'`{n}`' for n in inputs)}. Say which array is which.")
    mapping: dict[str, str] = {}
    cols = st.columns(len(inputs) + int(labels))
    for col, name in zip(cols, inputs, strict=False):
        picked = col.selectbox(f"Model input '{name}' ←", names, index=None, key=f"{key}.map.{name}")
        if picked:
            mapping[name] = picked
    if labels:
        picked = cols[-1].selectbox("Labels (for top-1) ←", ["(none)", *names], key=f"{key}.map.{LABEL}",
                                    index=names.index(LABEL) + 1 if LABEL in names else 0)
        if picked and picked != "(none)":
            mapping[LABEL] = picked
    if set(inputs) - set(mapping):
        return None
    with error_boundary(f"Mapping {_user_name(data_path)}"):
        out = mapped_path(data_path, mapping)
        return str(out if out.is_file() else remap_npz(data_path, out, mapping, name=_user_name(data_path)))
    return None


def _user_name(path: str) -> str:
    """A stored data file's name as the user gave it (without the content digest the workspace puts in front)."""
    return re.sub(r"^[0-9a-f]{24}-", "", Path(path).name)


def calibration_source(ref: ModelRef, key: str, label: str = "Calibration data") -> tuple[str | None, bool]:
    """Where calibration data comes from: the sample's own set, an uploaded .npz, images (an uploaded archive or a
    folder on the server, preprocessed once into an .npz in the workspace), or (labelled) random data.

    Returns (data path or None, synthetic): the path is always an .npz. Shows a preview of real data.
    """
    from .samples import sample_for

    sample = sample_for(ref)  # by content: a user's model named like a sample does not get the sample's data
    previous = st.session_state.get(f"{key}.previous")  # the data of the build the form was filled from
    previous = previous if previous and Path(previous).is_file() else None
    sources = ((["previous"] if previous else []) + (["sample"] if sample and sample.calibration_data else [])
               + ["upload", "images", "folder", "random"])
    source = st.radio(label, sources, horizontal=True, key=f"{key}.source",
                      format_func={"previous": f"Same as the build shown ({_user_name(previous or '')})",
                                   "sample": "Sample's calibration set", "upload": "Upload .npz",
                                   "images": "Image archive (.zip/.tar.gz)", "folder": "Folder on the server",
                                   "random": "Random (shapes only — accuracy meaningless)"}.get)
    data_path = None
    if source == "previous" and previous:
        data_path = previous
    elif source == "sample" and sample:
        data_path = str(sample.calibration_data)
    elif source == "upload":
        up = st.file_uploader("Calibration data (.npz: one array per model input, first axis = samples; "
                              "never unpickled)", type=["npz"], key=f"{key}.upload")
        if up is not None:
            with error_boundary(f"Calibration data {up.name}"):
                data_path = mapped_data(ref, stored_upload(up), f"{key}.upload", labels=False)
    elif source == "images":
        up = st.file_uploader("Images (.zip or .tar.gz of PNG, JPEG, BMP, ...; other files are skipped)",
                              type=["zip", "tar.gz", "tgz", "tar"], key=f"{key}.images")
        if up is not None:
            with error_boundary(f"Images {up.name}"):
                data_path = _image_source(ref, key, stored_upload(up), None)
    elif source == "folder":
        roots = data_roots()
        folder = st.text_input("Folder of images on the server (subfolders included)", key=f"{key}.folder",
                               placeholder=str(roots[0] / "my-images"),
                               help="Allowed below: " + ", ".join(str(r) for r in roots)
                               + " (the administrator sets WORKBENCH_DATA_ROOTS).")
        if folder.strip():
            with error_boundary("Image folder"):
                data_path = _image_source(ref, key, folder, tuple(str(r) for r in roots))
    elif source == "random":
        st.warning("Random calibration data: the engine builds, but its accuracy is meaningless.")
    if data_path:
        calibration_preview(ref, data_path)
    return data_path, source == "random"


def calibrator_inputs(key: str, fp8: bool = False) -> tuple[str, float]:
    """Calibrator and percentile side by side (the percentile only for the percentile calibrator; neither for
    FP8, whose scales come from ONNX Runtime's distribution method)."""
    c = st.columns(2)
    calibrator = str(c[0].selectbox("Calibrator", ("entropy", "minmax", "percentile"), key=f"{key}.calibrator",
                                    disabled=fp8, help="FP8 scales come from ONNX Runtime's distribution method, "
                                    "whatever the calibrator."))
    percentile = c[1].number_input("Percentile", 50.001, 100.0, 99.999, format="%.3f", key=f"{key}.percentile",
                                   disabled=fp8 or calibrator != "percentile")
    return calibrator, float(percentile)


def random_shape_inputs(ref: ModelRef, shapes: dict[str, list[int]], key: str) -> str:
    """Text inputs for the per-sample shapes random data still need (dynamic inputs that neither ``shapes`` —
    e.g. a build's profile —, a sample's profile nor the model's static dims give); typed shapes go into
    ``shapes``. Returns why random data cannot be made yet ("" when they can)."""
    from .accuracy import options as opt

    known = opt.random_shapes(ref.path, ref.name, shapes)
    missing = ""
    for name, text in opt.shapes_needed(ref.path, known):
        typed = st.text_input(f"Per-sample shape of input '{md(name)}' {md(text)} for random data (no batch axis)",
                              key=f"{key}.{name}", placeholder="e.g. 64x64")
        if typed.strip():
            with error_boundary("Shape"):
                shapes[name] = opt.parse_sample_shape(name, typed)
        if name not in shapes:
            missing = missing or f"Random data need a shape for input '{name}' {text}: type one above."
    return missing


def scoring_data_source(ref: ModelRef, key: str) -> str | None:
    """Labelled held-out data for scoring: the sample's test split, an uploaded .npz (one array per input and a
    ``label`` array for top-1), or none (scores then come from the calibration data itself). Returns its path."""
    from .samples import sample_for

    sample = sample_for(ref)
    sources = (["sample"] if sample and sample.test_data else []) + ["upload", "none"]
    source = st.radio("Test data for scoring", sources, horizontal=True, key=f"{key}.source",
                      format_func={"sample": "Sample's labelled test set", "upload": "Upload .npz",
                                   "none": "None: score on the calibration data"}.get)
    data_path = None
    if source == "sample" and sample:
        data_path = str(sample.test_data)
    elif source == "upload":
        up = st.file_uploader("Held-out data (.npz: one array per model input and a 'label' array of class "
                              "indices for top-1; never unpickled)", type=["npz"], key=f"{key}.upload")
        if up is not None:
            with error_boundary(f"Held-out data {up.name}"):
                data_path = mapped_data(ref, stored_upload(up), f"{key}.upload", labels=True)
    else:
        st.caption("Without held-out data each calibrator is scored on the samples it calibrated on, which "
                   "flatters all of them.")
    if data_path:
        calibration_preview(ref, data_path, "Held-out data")
    return data_path


def _images_preview(job: Any) -> None:
    """What a finished images job made: the .npz, its notes, thumbnails of samples as the model sees them."""
    res = job.result
    st.caption(f"{res['n']} images → {md(Path(res['npz']).name)} · " + " · ".join(md(n) for n in res["notes"]))
    thumbs = res.get("thumbs") or []
    if thumbs:
        jobs = workbench().jobs
        st.image(
            [jobs.artifact(job.id, t["file"]).read_bytes() for t in thumbs],
            caption=[t["name"] for t in thumbs],
            width=72,
        )


def _image_source(ref: ModelRef, key: str, source: str, roots: tuple[str, ...] | None) -> str | None:
    """The preprocessing form (defaults read from the model's input shape); **Apply** reads the images into an
    .npz in a background job (the same request again reuses the finished job). Shows the job; returns the .npz
    once it succeeded. Session state keeps only the job id, per kind of source."""
    from . import calibration_images as ci

    wb = workbench()
    spec = wb.image_input(ref)
    d = ci.propose_preprocess(spec)
    k = f"{key}.pre.{ref.digest[:12]}"
    norms = [*ci.NORMALIZATIONS, "custom"]
    preset = next((n for n, v in ci.NORMALIZATIONS.items() if v == (d.scale, d.mean, d.std)), "custom")
    with st.form(f"{k}.form"):
        st.caption(f"Preprocessing for input '{md(spec.name)}' {md(spec.shape_text())}")
        c5 = st.columns(5)
        mode = str(c5[0].selectbox("Resize", ["shorter side", "exact", "none"], key=f"{k}.resize_mode"))
        r0 = d.resize if isinstance(d.resize, int) else 256
        side = c5[1].number_input("Side / height", 1, 16384, r0, key=f"{k}.resize")
        width = c5[2].number_input("Width (exact)", 1, 16384, r0, key=f"{k}.resize_w")
        crop = d.crop or (224, 224)
        ch = c5[3].number_input("Crop height (0: none)", 0, 16384, crop[0], key=f"{k}.crop_h")
        cw = c5[4].number_input("Crop width (0: none)", 0, 16384, crop[1], key=f"{k}.crop_w")
        c = st.columns(4)
        norm = str(c[0].selectbox("Normalization", norms, index=norms.index(preset),
                              format_func=lambda n: ci.NORMALIZATION_LABELS.get(n, "custom: scale, mean, std"),
                              key=f"{k}.norm"))
        scale = c[1].number_input("Scale (custom)", 0.0, 1e6, d.scale, format="%.6f", key=f"{k}.scale")
        mean = c[2].text_input("Mean (custom)", ", ".join(f"{v:g}" for v in d.mean), key=f"{k}.mean",
                               help="One per channel, in the channel order below (BGR: blue first).")
        std = c[3].text_input("Std (custom)", ", ".join(f"{v:g}" for v in d.std), key=f"{k}.std")
        c = st.columns(4)
        order = str(c[0].selectbox("Channel order", ci.CHANNEL_ORDERS, key=f"{k}.order", disabled=d.channels == 1))
        layout = str(c[1].selectbox("Layout", ci.LAYOUTS, index=ci.LAYOUTS.index(d.layout), key=f"{k}.layout"))
        dtype = str(c[2].selectbox("Data type", ci.DTYPES, index=ci.DTYPES.index(d.dtype), key=f"{k}.dtype"))
        applied = c[3].form_submit_button("Apply")
    s, m, sd = (ci.normalization(norm, order) if norm != "custom" else
                (float(scale), ci.parse_channel_values(mean, "Mean"), ci.parse_channel_values(std, "Std")))
    resizes: dict[str, int | tuple[int, int] | None] = {
        "shorter side": int(side), "exact": (int(side), int(width)), "none": None}
    resize = resizes[mode]
    pre = ci.ImagePreprocess(resize=resize, crop=(int(ch), int(cw)) if ch and cw else None, scale=s, mean=m,
                             std=sd, channel_order=order, channels=d.channels, layout=layout, dtype=dtype)
    state = images_job_key(key, server=roots is not None)
    if applied:  # checked now (model input, preprocessing, source); the images are read by the job
        st.session_state[state] = wb.submit_images(ref, source, pre, roots)
    job = wb.images_job(st.session_state.get(state), ref, source, pre, roots)  # cheap checks on every rerun
    if job is None:
        st.info(
            "Check the preprocessing, then press **Apply**: the images are read in a background job "
            "(asking again for the same images and preprocessing reuses the result)."
        )
        return None
    job = job_panel(job.id, "Image reading", results=_images_preview)
    return str(job.result["npz"]) if job.status == "succeeded" else None


def job_panel(job_id: str, what: str = "Job", levels: Sequence[str] = ("error", "warning", "info"),
              results: Any = None) -> Any:
    """Any job: live progress, cancel and log while it runs (the page reruns when it ends); once finished, its
    status, ``results(job)`` when it succeeded, and the log (the end of a long one; the download has it all).
    Returns the job."""
    from .jobs import LOG_FILE

    wb = workbench()
    job = wb.jobs.get(job_id)
    st.markdown(f"**{md(job.title)}**  \n`job {job.id}`")
    if job.active:

        @st.fragment(run_every=0.5)
        def live() -> None:
            j = wb.jobs.get(job_id)
            if not j.active:
                st.rerun()
            job_status_line(j)
            if st.button(f"Cancel {what.lower()}", key=f"job.cancel.{job_id}", type="secondary"):
                wb.jobs.cancel(job_id)
                st.toast("Cancelling …")
            tail = wb.jobs.read_log_tail(job_id, LIVE_LOG_BYTES)
            log_view(tail.text, levels)
            if tail.cut:
                st.caption(_log_cut_note(tail))

        live()
        return job
    job_status_line(job)
    if job.status == "succeeded" and results is not None:
        results(job)
    tail = wb.jobs.read_log_tail(job_id, LOG_BYTES)
    with st.expander(f"{what} log", expanded=job.status != "succeeded"):
        if tail.cut:
            st.caption(_log_cut_note(tail) + " The download below has the whole log.")
        log_view(tail.text, levels)
        download_file("Download the whole log" if tail.cut else "Download log", wb.jobs.artifact(job.id, LOG_FILE),
                      "text/plain", key=f"job.log.{job.id}", file_name=f"{what.lower()}-{job.id}.log")
    return job


LOG_BYTES, LIVE_LOG_BYTES = 4 << 20, 1 << 20  # the end of a long log that a finished / running job panel shows


def _log_cut_note(tail: Any) -> str:
    return (f"Showing the last {min(len(tail.text.encode()), tail.size) / 2**20:.1f} MiB of a "
            f"{tail.size / 2**20:.1f} MiB log: earlier lines were cut.")


def ranges_choice(ref: ModelRef, key: str) -> str | None:
    """Offer the calibration ranges of this model's earlier quantize/INT8 jobs, to build without recalibrating."""
    wb = workbench()
    options: dict[str, str] = {}
    for kind in ("quantize", "build"):
        for job in wb.jobs_of(kind, ref, status="succeeded"):
            path = wb.jobs.job_dir(job.id) / "calibration.json"
            if path.is_file():
                options[str(path)] = f"{job.title} · {time.strftime('%m-%d %H:%M', time.localtime(job.created))}"
    if not options:
        return None
    choice = st.selectbox("Reuse calibration ranges from an earlier run (no recalibration)", [""] + list(options),
                          format_func=lambda p: options.get(p, "— calibrate again —"), key=key)
    return choice or None


def plan_size_note(fp32: dict[str, Any], int8: dict[str, Any]) -> str:
    """Why an INT8 plan can be larger than the FP32 one (it looks backwards)."""
    return (f"The INT8 plan is larger than the FP32 one ({int8['plan_bytes'] / 1024:.0f} vs "
            f"{fp32['plan_bytes'] / 1024:.0f} KiB): this model's weights are a few KiB, so what INT8 saves on them "
            f"is less than what it adds — quantization scales, and the layers that convert to and from INT8 "
            f"({int8['layers']} engine layers against {fp32['layers']}). On models with megabytes of weights the "
            "INT8 plan is the smaller one.")


DEMO_JOB = "demo.job_id"


def demo_panel() -> None:
    """One click: the whole flow on the digits sample, ending on the exported HTML report."""
    wb = workbench()
    job_id = st.session_state.get(DEMO_JOB)
    if not job_id:
        if st.button("▶ Run the demo: FP32 and INT8 builds, fusion and accuracy reports on the digits sample",
                     key="demo.start", type="primary"):
            with error_boundary("Demo"):
                ref, job_id = wb.start_demo()
                set_current_model(ref)
                st.session_state[DEMO_JOB] = job_id
                st.rerun()
        return
    with error_boundary("Demo"):
        job = job_panel(job_id, "Demo")
        if job is None or job.status != "succeeded":
            return
        from .demo import REPORT

        res = job.result
        cmp = res.get("compare") or {}
        task = cmp.get("task") or {}
        top = cmp.get("top_culprit") or {}
        # The verdict and the task metric first, then the speed-relevant facts, then the per-layer detail.
        status = cmp.get("status") or ("pass" if cmp.get("passed") else "fail")
        items: list[tuple[str, str, str | None, str | None]] = [
            ("Verdict", {"pass": "PASS", "task holds": "PASS — task holds"}.get(status, "FAIL"), None,
             cmp.get("verdict"))]
        if task:
            items.append(("Top-1, INT8 simulation", f"{task['candidate_accuracy']:.2%}",
                          f"{(task['candidate_accuracy'] - task['reference_accuracy']) * 100:+.2f} pp vs FP32",
                          "On the sample's labelled test set; FP32 is ONNX Runtime running the original model."))
        items += [
            ("FP32 plan", f"{res['fp32']['plan_bytes'] / 1024:.0f} KiB", f"{res['fp32']['layers']} layers", None),
            ("INT8 plan", f"{res['int8']['plan_bytes'] / 1024:.0f} KiB",
             f"{res['int8']['int8_layers']} of {res['int8']['layers']} layers in INT8", None),
        ]
        if top:
            items.append(("Adds the most error", top["tensor"], "node " + ", ".join(top["nodes"]),
                          "The tensor whose error grows most over its input's: keep its node in higher precision "
                          "(Accuracy page, Culprits) and compare again."))
        metric_row(items, notes=("FP32 plan", "INT8 plan", "Adds the most error"))
        if (res["int8"]["plan_bytes"] or 0) > (res["fp32"]["plan_bytes"] or 0):
            st.caption(plan_size_note(res["fp32"], res["int8"]))
        st.caption(md(cmp.get("candidate_label", "")))
        d = st.columns(3)
        with d[0]:
            download_file("Download the demo report (HTML)", workbench().jobs.artifact(job_id, REPORT), "text/html",
                          key="demo.download")
        if d[1].button("Open the fusion report", key="demo.fusion"):
            show_job(FUSION_JOB, workbench().jobs.get(res["steps"]["int8"]))
            st.switch_page("pages/fusion.py")
        if d[2].button("Start over", key="demo.reset"):
            st.session_state.pop(DEMO_JOB, None)
            st.rerun()


def tolerance_inputs(precision: str | None, prefix: str) -> dict[str, float]:
    """The comparison's tolerances: the defaults for the candidate's ``precision`` said in a caption (all
    precisions' in the help), and, once the user asks, inputs starting from them (keyed per precision, so each
    keeps its own). Returns only what the user set: the rest takes the precision's defaults."""
    from .accuracy import options as opt

    st.caption(opt.tolerance_caption(precision))
    if not st.toggle("Set the tolerances myself", key=f"{prefix}.custom_tolerances", help=opt.tolerance_help()):
        return {}
    tol, p = opt.default_tolerances(precision), precision or "auto"
    t = st.columns(5)
    return {
        "atol": t[0].number_input("atol", 0.0, value=tol.atol, format="%g", key=f"{prefix}.atol.{p}"),
        "rtol": t[1].number_input("rtol", 0.0, value=tol.rtol, format="%g", key=f"{prefix}.rtol.{p}"),
        "min_cosine": t[2].number_input("Min cosine", -1.0, 1.0, value=tol.min_cosine, format="%g",
                                        key=f"{prefix}.min_cosine.{p}"),
        "max_rel_error": t[3].number_input("Max ‖c−r‖/‖r‖", 0.0, value=tol.max_rel_error, format="%g",
                                           key=f"{prefix}.max_rel_error.{p}"),
        "task_max_drop_pp": t[4].number_input("Top-1 may drop (pp)", 0.0, 100.0, value=1.0,
                                              key=f"{prefix}.task_max_drop_pp"),
    }


# ---------------------------------------------------------------------------------------------- culprit loop

LOOP = "accuracy.loop_job_id"
_LOOP_DATA = {"sample": "Sample's calibration set", "test": "Sample's labelled test set", "upload": "Upload .npz"}


def _npz_upload(label: str, key: str) -> str | None:
    up = st.file_uploader(label, type=["npz"], key=key)
    return None if up is None else stored_upload(up, "npz")


def culprit_state(job: Any, result: Any) -> tuple[str | None, tuple[str, ...], list[str]]:
    """Above the culprit picker: what the comparison already keeps in higher precision (its chain of
    re-quantizations, and what its Q/DQ model has in float), why the error still jumps there, and whether the task
    metric is recovered. Returns (the build the chain started from, the chain's exclusions, all kept nodes)."""
    from .accuracy import loop_view

    root_build, kept_before = loop_view.chain_root(workbench().jobs, job)
    kept_now = list(dict.fromkeys([*kept_before, *result.kept_float]))
    if kept_now:
        st.caption(f"Already in higher precision ({len(kept_now)}): " + ", ".join(code(n) for n in kept_now))
    if result.jump_note:
        st.caption(f"Error jumps at {code(result.jump)}: {md(result.jump_note)}")
    if result.recovered:
        st.success(f"Task metric recovered — {result.recovery}: nothing needs to be kept in higher precision; the "
                   "culprits above are for reading only.")
    return root_build, kept_before, kept_now

def culprit_loop_panel(ref: ModelRef, builds: Sequence[Any], calib_file: Path | None,
                       test_file: Path | None) -> None:
    """The culprit loop on the Accuracy page: calibrate, then measure round by round what keeping nodes in float
    gives on held-out data, keep only measured gains, stop when the task metric is recovered, or say INT8 is not
    advisable. ``builds``: the model's builds (:func:`workbench.accuracy.options.build_choices`)."""
    from .accuracy import loop_view
    from .accuracy.loop import load_loop
    from .accuracy.loop_job import LoopRequest, submit_loop

    wb = workbench()
    st.caption("Each round ranks culprits, re-quantizes and re-runs ONNX Runtime on the held-out data for every "
               "proposal, and keeps only the largest measured gain; the loop stops once top-1 is within 1 pp of "
               "FP32 (with labels) or the outputs' mean cosine to FP32 reaches 0.99. Transformers start with "
               "mask arithmetic, Softmax, LayerNorm, GELU and residual Adds in float.")
    c = st.columns(2)
    cal_src = c[0].radio("Calibration data", (["sample"] if calib_file else []) + ["upload"], horizontal=True,
                         format_func=_LOOP_DATA.get, key="accuracy.loop.calib_source")
    cal = str(calib_file) if cal_src == "sample" else _npz_upload("Calibration .npz", "accuracy.loop.calib")
    held_src = c[1].radio("Held-out data", (["test"] if test_file else []) + ["upload"], horizontal=True,
                          format_func=_LOOP_DATA.get, key="accuracy.loop.heldout_source")
    held = str(test_file) if held_src == "test" else _npz_upload(
        "Held-out .npz ('label' for top-1; else the outputs' cosine to FP32)", "accuracy.loop.heldout")
    d = st.columns(3)
    calibrator = d[0].selectbox("Calibrator", ("minmax", "entropy", "percentile"), key="accuracy.loop.calibrator",
                                help="When round 0 misses the target, the other calibrators are measured too.")
    rounds = int(d[1].number_input("Rounds at most", 1, 10, 3, key="accuracy.loop.rounds"))
    target = d[2].number_input("Target (0: default)", 0.0, 1.0, 0.0, format="%g", key="accuracy.loop.target",
                               help="Mean cosine (default 0.99) or top-1 as a fraction (default FP32's − 1 pp).")
    missing = "" if cal and held else "Choose calibration and held-out data (.npz, one array per model input)."
    if missing:
        st.info(missing)
    if st.button("Run the culprit loop", type="primary", disabled=bool(missing), key="accuracy.loop.submit"):
        with error_boundary("Culprit loop"):
            req = LoopRequest(calib_path=str(cal), heldout_path=str(held), calibrator=str(calibrator),
                              max_rounds=rounds, target=float(target) or None)
            st.session_state[LOOP] = submit_loop(wb.jobs, ref, req)
            st.toast("Culprit loop queued.")
    runs = loop_view.loops(wb.jobs, ref.digest)
    if not runs:
        return
    if st.session_state.get(LOOP) not in {j.id for j in runs}:
        st.session_state[LOOP] = runs[0].id
    labels = {j.id: loop_view.loop_label(j) for j in runs}
    loop_id = str(st.selectbox("Culprit loop", list(labels), format_func=lambda j: labels.get(j, j), key=LOOP))
    loop_job = job_panel(loop_id, "Culprit loop")
    if loop_job.status != "succeeded":
        return
    loop_dir = wb.jobs.job_dir(loop_id)
    res = load_loop(loop_dir)
    (st.success if res.advisable else st.warning)(res.verdict)
    fmt = (lambda v: f"{v:.2%}") if res.metric == "top-1" else (lambda v: f"{v:.5f}")
    metric_row([
        (f"{res.metric}, round 0", fmt(res.baseline.value), None, f"FP32: {fmt(res.fp32)}"),
        (f"{res.metric}, final", fmt(res.final.value), None, f"target {fmt(res.target)}"),
        ("Rounds", str(len(res.rounds)), None, None),
        ("Kept in float / quantized", f"{len(res.excluded)} / {res.n_quantized}", None, None),
    ])
    st.dataframe(loop_view.rounds_table(res), hide_index=True, key="accuracy.loop.rounds_table")
    if res.alternatives:
        st.dataframe(loop_view.alternatives_table(res), hide_index=True, key="accuracy.loop.alternatives")
    for kind, path in loop_view.artifacts(loop_dir).items():
        download_file(f"Download {path.name}", path, "application/octet-stream", key=f"accuracy.loop.dl.{kind}")
    int8_builds = [b for b in builds if b.precision == res.precision]
    if res.advisable and res.excluded and int8_builds:
        b = st.selectbox("Build to rebuild", int8_builds, format_func=lambda b: b.label, key="accuracy.loop.build")
        if st.button(f"Rebuild it with the loop's {len(res.excluded)} node(s) kept in float",
                     key="accuracy.loop.rebuild"):
            with error_boundary("Rebuild"):
                st.session_state[BUILD_JOB] = wb.rebuild_keeping_float(b.job_id, list(res.excluded))
                st.switch_page("pages/build.py")
    elif res.advisable and res.excluded:
        st.caption(f"To build it: Build page, {res.precision.upper()}, reuse the ranges of this loop and exclude "
                   f"its {len(res.excluded)} nodes — or `trt-workbench build … --precision {res.precision} "
                   f"--calib-data … --exclude …`.")


def culprit_actions(ref: ModelRef, job: Any, result: Any, next_key: str) -> None:
    """Below the culprits of a comparison: what is already kept in higher precision, a picker of what to keep too,
    compare again without it (the new job's id goes to ``next_key`` for the page's next run), and rebuild the
    engine the chain of comparisons started from with every kept node."""
    from .accuracy import options as opt
    from .accuracy.job import requantize_request, submit_compare

    wb = workbench()
    job_id = job.id
    root_build, kept_before, kept_now = culprit_state(job, result)
    choices = [n for n in node_choices(ref.digest) if n not in kept_now]
    default = [] if result.recovered else [n for n in result.proposed_exclusions if n in choices]
    keep = st.multiselect("Also keep in higher precision", choices, default, key=f"accuracy.keep.{job_id}")
    again = requantize_request(wb.jobs, job, keep) if keep else None
    fp16 = result.candidate_kind == "ort-fp16"
    if keep and again is None:
        st.caption(
            "Comparing again needs a candidate the workbench made: an INT8/FP8 or FP16 simulation, or "
            "a build's network. With the CLI: `trt-workbench quantize … --exclude` "
            f"{md(' '.join(keep))}."
        )
    what = ("Convert to FP16 again keeping these in FP32, and compare" if fp16
            else "Re-quantize without these and compare")
    if st.button(what, disabled=again is None, key="accuracy.requantize") and again is not None:
        st.session_state[next_key] = submit_compare(wb.jobs, ref, again)
        st.rerun()
    precision = opt.rebuild_precision(wb.jobs, root_build)
    rebuild = list(dict.fromkeys([*kept_before, *keep]))
    if rebuild and precision and root_build:  # also after re-quantizing: the build the chain started from
        kept = "in FP32" if precision == "fp16" else "in float (out of quantization)"
        if st.button(f"Rebuild the {precision.upper()} engine with {len(rebuild)} node(s) kept {kept}",
                     key="accuracy.rebuild", help=md(", ".join(rebuild))):
            with error_boundary("Rebuild"):
                st.session_state[BUILD_JOB] = wb.rebuild_keeping_float(root_build, rebuild)
                st.switch_page("pages/build.py")
