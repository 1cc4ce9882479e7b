"""Run the reference and the candidate on the same data and compare them, tensor by tensor.

Artifacts (one naming convention, in a job folder or wherever ``out_dir`` points):

* ``compare_results.json`` — both runners' outputs in Polygraphy's own ``RunResults`` JSON format, the candidate's
  tensors already under the reference's names; the runner names say what each side was
  (``polygraphy inspect data compare_results.json``, ``polygraphy run --load-outputs``);
* ``comparison.json`` — the :class:`ComparisonResult` (metrics, culprits, task metric);
* ``compare_tensors.npz`` — a fixed random subset of each tensor's values (reference and candidate) for figures;
* ``accuracy_report.html`` — the standalone report (see :mod:`workbench.reports.accuracy_html`).
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration_data import SYNTHETIC_NOTE, CalibrationData
from ..errors import DataError
from ..progress import NullReporter, Reporter, check_cancel
from . import culprits as cul
from .data import feeds, labels_for
from .graph import (
    GraphInfo,
    TensorLink,
    check_same_io,
    engine_links,
    graph_fingerprint,
    link_tensors,
    read_graph,
)
from .metrics import iteration_results, polygraphy_compare, tensor_stats
from .results import BeforeAfter, ComparisonResult, TaskMetric, TensorResult
from .runners import (
    MARK_ALL,
    UNFUSED,
    engine_runner,
    has_unfused_debug_api,
    ort_providers,
    ort_runner,
    provider_label,
    run_runners,
    runner_provider,
)
from .spec import (
    ENGINE,
    RANDOM_CALIBRATION_WARNING,
    REFERENCE_LABEL,
    SHORT_LABELS,
    SIM_QDQ,
    Candidate,
    CompareSpec,
)
from .tolerances import Tolerances, detect_precision, resolve, scale_ok, source_text, task_holds

log = logging.getLogger(__name__)

RESULTS_FILE = "compare_results.json"
COMPARISON_FILE = "comparison.json"
SAMPLES_FILE = "compare_tensors.npz"
REPORT_FILE = "accuracy_report.html"
BEFORE_AFTER_FILE = "before_after.json"
SAMPLES_PER_TENSOR = 4000
MARK_ALL_WARNING = (
    "Every tensor was marked as an engine output ('mark all'): this changes what TensorRT fuses, so the engine "
    "compared is not the engine deployed."
)


def _versions() -> tuple[tuple[str, str], ...]:
    out = []
    for dist in ("polygraphy", "onnxruntime", "onnx", "numpy"):
        try:
            out.append((dist, md.version(dist)))
        except md.PackageNotFoundError:
            continue
    return tuple(out)


def _reference_name(provider: str = "") -> str:
    """The reference runner's name in the saved results: says which execution provider was asked for."""
    on = f" ({provider_label(provider)})" if provider else ""
    return f"reference: {REFERENCE_LABEL}{on}"


def _candidate_name(candidate: Candidate) -> str:
    return f"candidate: {SHORT_LABELS[candidate.kind]} ({candidate.path.name})"


def _engine_debug(
    candidate: Candidate, spec: CompareSpec, ref: GraphInfo, warnings: list[str]
) -> tuple[Any, list[TensorLink], list[str]]:
    """(what to mark in the engine, links known in advance, reference tensors not compared).

    Per-layer on an engine means rebuilding it from its ONNX network with tensors marked: the unfused tensors as
    debug tensors where the backend can (fusion unchanged), else the layer boundaries from the build's layer
    listing as debug tensors, or every tensor as an output with ``mark_all`` (fusion changes)."""
    outputs = [TensorLink(o, o) for o in ref.graph_outputs]
    if not spec.per_layer:
        return None, outputs, []
    if candidate.network_model is None:
        warnings.append(
            "Only the model outputs were compared: a per-layer comparison of an engine rebuilds it from the ONNX "
            "network it was built from, and this plan came without one. Compare a build job instead."
        )
        return None, outputs, []
    if spec.mark_all:
        warnings.append(MARK_ALL_WARNING)
        links, missing = link_tensors(ref, candidate.network_model)
        return MARK_ALL, links, missing
    if has_unfused_debug_api(candidate.backend):
        return UNFUSED, [], []
    if candidate.layers_path is None:
        warnings.append(
            "No engine layer information for this engine, so only the model outputs were compared. "
            "Compare a build job (it keeps layers.json), or use 'mark all' (changes the engine)."
        )
        return None, outputs, []
    from ..layers import load_layers

    links, missing = engine_links(ref, candidate.network_model, load_layers(candidate.layers_path))
    net_outputs = set(read_graph(candidate.network_model).graph_outputs)
    return [lk.candidate for lk in links if lk.candidate not in net_outputs], links, missing


def _engine_batch(candidate: Candidate, batch_size: int) -> int:
    """A batch size the engine's first optimization profile accepts (its max batch), from the build spec."""
    if candidate.build_spec_path is None or not candidate.build_spec_path.is_file():
        return batch_size
    from ..spec import BuildSpec

    spec = BuildSpec.from_json(candidate.build_spec_path.read_text())
    if not spec.profiles:
        return batch_size
    limits = [r.max[0] for r in spec.profiles[0].shapes.values() if r.max]
    return max(1, min([batch_size, *limits]))


def _unfused_links(ref: GraphInfo, candidate: Candidate, names: Sequence[str]) -> list[TensorLink]:
    """Links for the debug tensors an engine actually reported (known only after it ran)."""
    from .graph import network_links

    links, _ = network_links(ref, candidate.network_model or candidate.path, names)
    return links


def compare(
    model: str | Path,
    candidate: Candidate,
    data: CalibrationData,
    spec: CompareSpec | None = None,
    *,
    out_dir: str | Path | None = None,
    reporter: Reporter | None = None,
) -> ComparisonResult:
    """Compares ``candidate`` against ONNX Runtime running ``model`` (FP32) on ``data``; writes the artifacts to
    ``out_dir`` when given. Raises DataError/ModelError (bad input), BackendUnavailable (an engine that cannot
    run here), BackendError (a runner failed), Cancelled."""
    spec = spec or CompareSpec()
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    model = Path(model)
    ref = read_graph(model)
    warnings: list[str] = []
    notes: list[str] = []
    if candidate.synthetic_calibration:
        warnings.append(RANDOM_CALIBRATION_WARNING)
    if data.synthetic:
        warnings.append(f"Compared on {SYNTHETIC_NOTE}: the numbers say how the models differ on noise.")
    ref_name = _reference_name(ort_providers()[0])
    batch = _engine_batch(candidate, spec.batch_size) if candidate.is_engine else spec.batch_size
    feed_list, n, feed_notes = feeds(data, model, spec.max_samples, batch)
    notes += feed_notes
    reporter.log(
        f"Reference: {ref_name[len('reference: ') :]}. Candidate: {candidate.label} — {candidate.path.name}."
    )

    debug: Any = None
    if candidate.is_engine:
        debug, links, missing = _engine_debug(candidate, spec, ref, warnings)
    else:
        check_same_io(ref, read_graph(candidate.path))
        if spec.per_layer:
            links, missing = link_tensors(ref, candidate.path)
        else:
            links, missing = [TensorLink(o, o) for o in ref.graph_outputs], []
    have = {lk.reference for lk in links}
    links += [TensorLink(o, o) for o in ref.graph_outputs if o not in have and not candidate.is_engine]
    reporter.log(
        f"Comparing {len(links) if debug != UNFUSED else 'the unfused'} tensor(s) over {n} sample(s) in "
        f"{len(feed_list)} batch(es)."
    )

    with tempfile.TemporaryDirectory(prefix="wb-compare-") as tmp:
        ref_marks = [lk.reference for lk in links if lk.reference not in ref.graph_inputs]
        if debug == UNFUSED:
            ref_marks = [t for t in ref.tensors if t not in ref.graph_inputs]
        if candidate.is_engine:  # first: it picks the TensorRT module before Polygraphy is imported
            cand_runner = engine_runner(candidate, debug, _candidate_name(candidate))
        else:
            cand_runner = ort_runner(
                candidate.path, [lk.candidate for lk in links], _candidate_name(candidate), Path(tmp)
            )
        ref_runner = ort_runner(model, ref_marks, ref_name, Path(tmp))
        check_cancel(reporter)
        (cand_out, ref_out), times = run_runners(
            [cand_runner, ref_runner], feed_list, reporter, "run models", span=(0.05, 0.85)
        )
    ref_provider, cand_provider = runner_provider(ref_runner), runner_provider(cand_runner)
    reporter.log(
        f"ONNX Runtime ran the reference on {ref_provider or 'an unknown provider'}"
        + (f", the candidate on {cand_provider}." if cand_provider else ".")
    )
    if debug == UNFUSED:
        links = _unfused_links(ref, candidate, list(cand_out[0]) if cand_out else [])
        links += [TensorLink(o, o) for o in ref.graph_outputs if o not in {lk.reference for lk in links}]
        missing = [
            t for t in ref.tensors if t not in {lk.reference for lk in links} and t not in ref.graph_inputs
        ]

    ref_iters, cand_iters, absent = _pair(links, feed_list, ref_out, cand_out, ref)
    names = [lk.reference for lk in links if lk.reference not in absent]
    if not names:
        raise DataError(
            "No tensor could be compared: the candidate produced none of the reference's tensors."
        )

    reporter.progress(0.9, "compare")
    precision = candidate_precision(candidate)
    tol, overridden = resolve(precision, **{f: getattr(spec, f) for f in TOLERANCE_FIELDS})
    reporter.log(f"Tolerances: {tol.describe()} ({source_text(precision, overridden)}).")
    rr = iteration_results(ref_iters, cand_iters, ref_name, _candidate_name(candidate))
    t_cmp = time.monotonic()
    verdicts = polygraphy_compare(rr, tol.atol, tol.rtol, tol.error_stat)
    t_own = time.monotonic()
    stats = {
        t: tensor_stats([it[t] for it in ref_iters], [it[t] for it in cand_iters], tol.atol, tol.rtol)
        for t in names
    }
    t_end = time.monotonic()
    tensors = _tensor_results(ref, names, links, verdicts, stats, ref_iters, cand_out, tol)
    tensors.sort(key=lambda t: (t.order, t.depth, t.name))
    per_layer = spec.per_layer and len(tensors) > len(ref.graph_outputs)
    culprits = cul.rank_culprits(tensors, spec.top_k) if per_layer else ()
    jump = cul.find_jump(tensors) if per_layer else None
    nf_tensor, nf_node = cul.first_nonfinite(tensors)
    if nf_tensor:
        warnings.insert(
            0, f"NaN/Inf first appear in the candidate at tensor '{nf_tensor}' (node '{nf_node}')."
        )
    if any(t.nonfinite_reference for t in tensors):
        warnings.append("The FP32 reference itself produces NaN/Inf on these data.")
    task = _task_metric(data, n, spec, ref, ref_iters, cand_iters, warnings)
    outputs = tuple(t for t in ref.graph_outputs if t in names)
    outputs_passed = all(
        t.passed and t.nonfinite_candidate <= t.nonfinite_reference for t in tensors if t.is_output
    )
    nonfinite_out = any(t.nonfinite_candidate > t.nonfinite_reference for t in tensors if t.is_output)
    held = None if task is None else task_holds(task.delta_pp, spec.task_max_drop_pp)
    passed = not nonfinite_out and held is not False and (outputs_passed or bool(held))
    with_readers = candidate.kind == SIM_QDQ or (
        candidate.kind == ENGINE
        and candidate.network_model is not None
        and bool(graph_fingerprint(candidate.network_model)["qdq"])
    )
    network = candidate.path if candidate.kind == SIM_QDQ else candidate.network_model
    kept_float = cul.float_in_candidate(ref, network) if with_readers else ()
    proposals = cul.propose_exclusions(ref, culprits, spec.top_k, with_readers=with_readers, skip=kept_float)
    recovery = _recovery(data, n, spec, ref, ref_iters, cand_iters, warnings)
    if absent:
        notes.append(f"{len(absent)} tensor(s) were not produced by one side and were skipped.")
    notes.append(
        f"Time: inference {times[1]:.3f} s (reference) + {times[0]:.3f} s (candidate) over {len(feed_list)} "
        f"batch(es); Polygraphy's comparator {t_own - t_cmp:.3f} s; cosine/SNR/tolerances {t_end - t_own:.3f} s."
    )
    result = ComparisonResult(
        model=model.name,
        candidate=candidate.path.name,
        candidate_kind=candidate.kind,
        candidate_source=candidate.source,
        data_source=data.source,
        synthetic_data=data.synthetic,
        n_samples=n,
        n_iterations=len(feed_list),
        atol=tol.atol,
        rtol=tol.rtol,
        error_stat=tol.error_stat,
        per_layer=per_layer,
        mark_all=bool(spec.mark_all and candidate.is_engine),
        passed=passed,
        tensors=tuple(tensors),
        outputs=outputs,
        culprits=culprits,
        jump=jump,
        first_nonfinite=nf_tensor,
        first_nonfinite_node=nf_node,
        task=task,
        proposed_exclusions=proposals,
        kept_float=kept_float,
        recovered=bool(recovery and recovery.recovered),
        recovery="" if recovery is None else recovery.text(),
        jump_note=cul.jump_note(ref, jump, kept_float),
        only_in_reference=tuple(sorted({*missing, *absent} - set(names))),
        warnings=tuple(warnings),
        notes=tuple(notes),
        duration_s=time.monotonic() - t0,
        created=time.time(),
        versions=_versions(),
        synthetic_calibration=candidate.synthetic_calibration,
        reference_provider=ref_provider,
        candidate_provider=cand_provider,
        precision=precision,
        min_cosine=tol.min_cosine,
        max_rel_error=tol.max_rel_error,
        tolerance_source=source_text(precision, overridden),
        outputs_passed=outputs_passed,
        task_max_drop_pp=spec.task_max_drop_pp,
    )
    for w in warnings:
        reporter.log(w, logging.WARNING)
    reporter.log(
        f"{result.summary()} {sum(t.passed for t in tensors)}/{len(tensors)} tensors within tolerance"
        + (f"; top culprit: {culprits[0].tensor} ({', '.join(culprits[0].nodes)})" if culprits else "")
        + "."
    )
    if out_dir is not None:
        save_artifacts(Path(out_dir), result, rr, ref_iters, cand_iters)
    reporter.progress(1.0, "done")
    return result


TOLERANCE_FIELDS = ("atol", "rtol", "error_stat", "min_cosine", "max_rel_error")


def candidate_precision(candidate: Candidate) -> str:
    """What the candidate computes in: as its maker said, else read from its ONNX file (an engine's network)."""
    if candidate.precision:
        return candidate.precision
    source = candidate.network_model if candidate.is_engine else candidate.path
    if source is None or source.suffix.lower() != ".onnx":
        return ""
    try:
        return detect_precision(source)
    except Exception as err:  # an unreadable file was already refused by the runners; never fail a verdict here
        log.debug("precision of %s not detected: %s", source, err)
        return ""


def _pair(
    links: Sequence[TensorLink],
    feed_list: Sequence[Mapping[str, np.ndarray]],
    ref_out: Sequence[Mapping[str, np.ndarray]],
    cand_out: Sequence[Mapping[str, np.ndarray]],
    ref: GraphInfo,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]], set[str]]:
    """Per iteration, {reference tensor name: values} for both sides (the candidate's read through its link;
    a reference graph input is the fed array). Returns them and the tensors one side did not produce."""
    ref_iters: list[dict[str, np.ndarray]] = []
    cand_iters: list[dict[str, np.ndarray]] = []
    absent: set[str] = set()
    for i, feed in enumerate(feed_list):
        r_it: dict[str, np.ndarray] = {}
        c_it: dict[str, np.ndarray] = {}
        for lk in links:
            rv = feed.get(lk.reference) if lk.reference in ref.graph_inputs else ref_out[i].get(lk.reference)
            cv = cand_out[i].get(lk.candidate)
            if rv is None or cv is None:
                absent.add(lk.reference)
                continue
            r_it[lk.reference] = np.asarray(rv)
            c_it[lk.reference] = lk.values(np.asarray(cv))
        ref_iters.append(r_it)
        cand_iters.append(c_it)
    return ref_iters, cand_iters, absent


def _tensor_results(
    ref: GraphInfo,
    names: Sequence[str],
    links: Sequence[TensorLink],
    verdicts: Mapping[str, Mapping[str, Any]],
    stats: Mapping[str, Any],
    ref_iters: Sequence[Mapping[str, np.ndarray]],
    cand_out: Sequence[Mapping[str, np.ndarray]],
    tol: Tolerances,
) -> list[TensorResult]:
    attr = cul.attribute(ref, {t: s.rel_rms for t, s in stats.items()})
    cand_names = {lk.reference: lk.candidate for lk in links}
    tensors = []
    for t in names:
        s, v, a = stats[t], verdicts.get(t, {}), attr[t]
        within, similar = bool(v.get("passed", False)), scale_ok(s.cosine, s.rel_rms, tol)
        producer = ref.producer.get(t, "")
        tensors.append(
            TensorResult(
                name=t,
                candidate_name=cand_names[t],
                producer=producer,
                op_type=ref.op_types.get(producer, "input"),
                order=ref.order.get(t, -1),
                depth=ref.depth.get(t, 0),
                is_output=t in ref.graph_outputs,
                is_input=t in ref.graph_inputs,
                shape=tuple(int(d) for d in np.shape(ref_iters[0][t])),
                candidate_dtype=str(np.asarray(cand_out[0].get(cand_names[t], np.zeros(0))).dtype),
                passed=within and similar,
                within_atol_rtol=within,
                scale_ok=similar,
                max_abs=float(v.get("max_abs", math.nan)),
                mean_abs=float(v.get("mean_abs", math.nan)),
                max_rel=float(v.get("max_rel", math.nan)),
                mean_rel=float(v.get("mean_rel", math.nan)),
                cosine=s.cosine,
                snr_db=s.snr_db,
                rel_rms=s.rel_rms,
                needed_atol=s.needed_atol,
                needed_rtol=s.needed_rtol,
                nonfinite_reference=s.nonfinite_reference,
                nonfinite_candidate=s.nonfinite_candidate,
                error_in=a.error_in,
                added=a.added,
                score=a.score,
                segment=a.segment,
            )
        )
    return tensors


def _task_metric(
    data: CalibrationData,
    n: int,
    spec: CompareSpec,
    ref: GraphInfo,
    ref_iters: Sequence[Mapping[str, np.ndarray]],
    cand_iters: Sequence[Mapping[str, np.ndarray]],
    warnings: list[str],
) -> TaskMetric | None:
    from ..quantize import accuracy_of

    labels = labels_for(data, n)
    if labels is None:
        if spec.label_output:
            warnings.append(
                f"No 'label' array in the data ({data.source}), so top-1 accuracy of '{spec.label_output}' "
                "could not be measured."
            )
        return None
    output = spec.label_output or ref.graph_outputs[0]
    if output not in ref_iters[0]:
        raise DataError(
            f"The model has no output '{output}' to measure top-1 accuracy on.",
            f"Its outputs are: {', '.join(ref.graph_outputs)}.",
        )
    r = {output: np.concatenate([it[output] for it in ref_iters])}
    c = {output: np.concatenate([it[output] for it in cand_iters])}
    acc_r = accuracy_of(r, labels, output, ref.path)
    acc_c = accuracy_of(c, labels, output, ref.path)
    agree = float(np.mean(np.argmax(r[output].reshape(n, -1), 1) == np.argmax(c[output].reshape(n, -1), 1)))
    return TaskMetric(output, n, acc_r, acc_c, agree)


def _recovery(
    data: CalibrationData,
    n: int,
    spec: CompareSpec,
    ref: GraphInfo,
    ref_iters: Sequence[Mapping[str, np.ndarray]],
    cand_iters: Sequence[Mapping[str, np.ndarray]],
    warnings: list[str],
) -> Any:
    """The culprit loop's task metric on the model outputs (:mod:`.task_score`): top-1 within 1 pp where the data
    have labels, else a mean per-sample cosine of at least 0.99. None when it cannot be measured."""
    from ..errors import WorkbenchError
    from .task_score import score

    outputs = [o for o in ref.graph_outputs if o in ref_iters[0] and o in cand_iters[0]]
    if not outputs or n == 0:
        return None
    name = spec.label_output if spec.label_output in outputs else outputs[0]
    r = {name: np.concatenate([it[name] for it in ref_iters])}
    c = {name: np.concatenate([it[name] for it in cand_iters])}
    inputs = {k: np.asarray(v)[:n] for k, v in data.arrays.items()}
    try:
        return score(r, c, inputs, labels_for(data, n), output=name)
    except WorkbenchError:
        return score(r, c, inputs, None, output=name)  # labels that do not fit this output: cosine instead


# ---------------------------------------------------------------------------------------------- artifacts


def save_artifacts(
    out_dir: Path,
    result: ComparisonResult,
    run_results: Any,
    ref_iters: Sequence[Mapping[str, np.ndarray]],
    cand_iters: Sequence[Mapping[str, np.ndarray]],
) -> dict[str, Path]:
    """Writes the Polygraphy results, the comparison JSON, value samples and the HTML report into ``out_dir``."""
    from ..reports.accuracy_html import render_report

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out_dir / RESULTS_FILE,
        "comparison": out_dir / COMPARISON_FILE,
        "samples": out_dir / SAMPLES_FILE,
        "report": out_dir / REPORT_FILE,
    }
    from .runners import quiet_polygraphy

    with quiet_polygraphy():
        run_results.save(str(paths["results"]))
    _write(paths["comparison"], result.to_json())
    samples = _samples(result, ref_iters, cand_iters)
    np.savez_compressed(paths["samples"], **samples)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    _write(paths["report"], render_report(result, load_samples(paths["samples"])))
    return paths


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _samples(
    result: ComparisonResult,
    ref_iters: Sequence[Mapping[str, np.ndarray]],
    cand_iters: Sequence[Mapping[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {"names": np.array([t.name for t in result.tensors], dtype=str)}
    for i, t in enumerate(result.tensors):
        r = np.concatenate([np.asarray(it[t.name], dtype=np.float32).reshape(-1) for it in ref_iters])
        c = np.concatenate([np.asarray(it[t.name], dtype=np.float32).reshape(-1) for it in cand_iters])
        if r.size > SAMPLES_PER_TENSOR:
            idx = np.sort(rng.choice(r.size, SAMPLES_PER_TENSOR, replace=False))
            r, c = r[idx], c[idx]
        out[f"t{i}_ref"], out[f"t{i}_cand"] = r, c
    return out


def load_samples(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tensor: (reference values, candidate values)} from ``compare_tensors.npz`` (a sample of each tensor)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["names"]]
        return {n: (z[f"t{i}_ref"], z[f"t{i}_cand"]) for i, n in enumerate(names)}


def load_comparison(folder: str | Path) -> ComparisonResult:
    """The comparison saved in a job folder (or a ``comparison.json`` path)."""
    p = Path(folder)
    return ComparisonResult.load(p / COMPARISON_FILE if p.is_dir() else p)


def load_before_after(folder: str | Path) -> BeforeAfter | None:
    p = Path(folder) / BEFORE_AFTER_FILE
    return BeforeAfter.load(p) if p.is_file() else None
