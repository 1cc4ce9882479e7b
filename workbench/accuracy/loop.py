"""The culprit loop: quantize, measure the task metric on held-out data, and keep in float only what measurably
helps, round by round, until the metric is recovered — or say plainly that INT8 is not advisable and which
precision is, with the measured numbers.

Round 0 quantizes with the transformer-aware defaults (:mod:`workbench.quantize_defaults`; nothing changes for a
model that is not a transformer) and calibrates once; its ranges are reused by every later quantization, so a
trial differs from the current model only in what it keeps in float. Each round ranks culprits with the per-layer
comparison (error *added* per node, :mod:`.culprits`), turns the top ones into proposals (the culprit's nodes,
and the same nodes in every repeated block), re-quantizes and re-runs ONNX Runtime for each, and takes the one
with the largest measured gain. A proposal whose measured gain is not positive is never taken. The loop stops
when the metric is recovered (:mod:`.task_score`), when no proposal helps, or after ``max_rounds`` rounds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration_data import CalibrationData
from ..errors import WorkbenchError
from ..progress import NullReporter, Reporter, SubReporter, check_cancel
from .task_score import TaskScore, score

log = logging.getLogger(__name__)

LOOP_FILE = "culprit_loop.json"
LOOP_FORMAT = "trt-workbench.culprit-loop"
FINAL_MODEL = "model_qdq.onnx"
ROUND0 = "round0"


@dataclass(frozen=True)
class Trial:
    """One proposal, measured: keeping ``nodes`` (new ones) in float gives ``value`` (the task metric)."""

    label: str
    nodes: tuple[str, ...]
    value: float
    gain: float


@dataclass(frozen=True)
class Round:
    number: int
    excluded: tuple[str, ...]  # in float before the round (defaults, the user's, earlier rounds)
    remaining: tuple[str, ...]  # still quantized before the round
    before: float
    trials: tuple[Trial, ...]
    chosen: Trial | None
    after: float
    recovered: bool
    note: str = ""


@dataclass(frozen=True)
class Alternative:
    """Another precision measured on the same held-out data (``value`` None: could not be measured, ``note``
    says why)."""

    precision: str
    value: float | None
    recovered: bool
    note: str = ""


@dataclass(frozen=True)
class LoopResult:
    model: str
    precision: str
    calibrator: str
    metric: str
    target: float
    fp32: float  # FP32's own value of the metric (top-1 accuracy; 1.0 for cosine)
    output: str
    n_samples: int
    defaults: dict[str, list[str]]  # transformer-aware float groups applied in round 0
    plain: float | None  # the metric quantizing everything ONNX Runtime would (no defaults), for contrast
    calibrators: dict[str, float | None]  # round 0's metric per calibrator measured (None: it failed)
    baseline: TaskScore  # round 0
    rounds: tuple[Round, ...]
    final: TaskScore
    excluded: tuple[str, ...]  # kept in float in the final model
    n_quantized: int
    qdq_model: str
    recovered: bool
    advisable: bool
    recommendation: str  # "int8", or the precision to use instead (fp16, bf16, fp8, fp32)
    verdict: str
    alternatives: tuple[Alternative, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["baseline"], d["final"] = self.baseline.to_dict(), self.final.to_dict()
        return {"format": LOOP_FORMAT, "version": 1, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopResult:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["baseline"], kw["final"] = TaskScore.from_dict(d["baseline"]), TaskScore.from_dict(d["final"])
        kw["rounds"] = tuple(
            Round(**{**r, "excluded": tuple(r["excluded"]), "remaining": tuple(r["remaining"]),
                     "trials": tuple(Trial(**{**t, "nodes": tuple(t["nodes"])}) for t in r["trials"]),
                     "chosen": None if r["chosen"] is None else Trial(**{**r["chosen"],
                                                                         "nodes": tuple(r["chosen"]["nodes"])})})
            for r in d["rounds"])
        kw["alternatives"] = tuple(Alternative(**a) for a in d.get("alternatives", ()))
        for k in ("excluded", "notes"):
            kw[k] = tuple(kw.get(k, ()))
        return cls(**kw)

    def round_lines(self) -> list[str]:
        """What each round did, in words (the CLI prints these; the page shows them as a table)."""
        fmt = _fmt(self.metric)
        lines = [f"Round 0: {self.precision.upper()} with "
                 + (f"the transformer defaults in float ({sum(len(v) for v in self.defaults.values())} nodes)"
                    if any(self.defaults.values()) else "every node ONNX Runtime quantizes")
                 + f": {self.metric} {fmt(self.baseline.value)}"
                 + ("" if self.plain is None else f" (without the defaults: {fmt(self.plain)})")
                 + (f"; calibrators measured: {', '.join(f'{c} ' + ('failed' if v is None else fmt(v)) for c, v in self.calibrators.items())}, {self.calibrator} kept"
                    if len(self.calibrators) > 1 else "") + "."]
        for r in self.rounds:
            tried = "; ".join(f"{t.label} → {fmt(t.value)} ({_gain(self.metric, t.gain)})" for t in r.trials)
            tried = tried or "nothing to try"
            head = (f"Round {r.number}: {len(r.excluded)} node(s) already in float, {len(r.remaining)} still "
                    f"quantized; {self.metric} {fmt(r.before)}. Measured: {tried}.")
            if r.chosen:
                head += (f" Kept in float: {r.chosen.label} ({len(r.chosen.nodes)} node(s)) → {fmt(r.after)}"
                         + (" — recovered." if r.recovered else "."))
            else:
                head += f" {r.note or 'No proposal improves the metric: nothing proposed.'}"
            lines.append(head)
        return lines

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / LOOP_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str))
        return path


def load_loop(folder: str | Path) -> LoopResult:
    from ..errors import DataError

    path = Path(folder) / LOOP_FILE
    try:
        return LoopResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"Cannot read the culprit loop's result '{path}': {err}.") from err


def _gain(metric: str, gain: float) -> str:
    return f"{100 * gain:+.2f} pp" if metric == "top-1" else f"{gain:+.5f}"


def _fmt(metric: str) -> Any:
    return (lambda v: f"{v:.2%}") if metric == "top-1" else (lambda v: f"{v:.5f}")


# ---------------------------------------------------------------------------------------------- proposals


def role(name: str) -> str:
    """A node's role in a repeated block: its name with numbers replaced (``/layer.3/attn/MatMul_1`` →
    ``/layer.#/attn/MatMul_#``)."""
    return re.sub(r"\d+", "#", name)


def _proposals(graph: Any, culprits: Sequence[Any], excluded: set[str], remaining: Sequence[str],
               limit: int) -> list[tuple[str, tuple[str, ...]]]:
    """(label, new nodes) to measure, at most ``limit``. From each top culprit: its inputs kept in float (their
    non-GEMM producers and every reader: a tensor is quantized for each quantized reader and by a quantized
    producer), and the culprit tensor itself (its nodes and readers); each also as the same nodes in every
    repeated block. Block-wide groups come first, ranked by the culprit scores they gather (six culprits, one per
    block, make one strong group), then single culprits; then the GEMM roles no culprit named (Q, K, V, FFN, ...
    in every block), so later rounds reach them. Nodes already in float are left out; empty and duplicate
    proposals are dropped."""
    from ..quantize_defaults import GEMMS
    from .culprits import propose_exclusions
    from .graph import quantizable

    by_role: dict[str, list[str]] = {}
    for n in remaining:
        by_role.setdefault(role(n), []).append(n)
    groups: dict[frozenset[str], list[Any]] = {}  # nodes -> [label, nodes, score]
    singles: dict[frozenset[str], list[Any]] = {}

    def add(label: str, nodes: Sequence[str], weight: float) -> None:
        fresh = [n for n in dict.fromkeys(nodes) if n not in excluded]
        if not fresh:
            return
        group = list(dict.fromkeys(m for n in fresh for m in by_role.get(role(n), [n])))
        if len(group) > len(fresh):
            entry = groups.setdefault(frozenset(group), [f"{_names(sorted({role(n) for n in fresh}))} in every block",
                                                         tuple(group), 0.0])
            entry[2] += weight
        entry = singles.setdefault(frozenset(fresh), [f"{_names(fresh)} {label}", tuple(fresh), 0.0])
        entry[2] += weight

    for c in culprits:
        inside = set(c.nodes)
        inputs = [x for n in c.nodes for x in graph.node_inputs.get(n, ()) if graph.producer.get(x) not in inside]
        side: list[str] = []
        for x in dict.fromkeys(inputs):
            p = graph.producer.get(x)
            if p is not None and graph.op_types.get(p) not in GEMMS:
                side.append(p)
            side += graph.consumers.get(x, ())
        weight = c.score if c.score == c.score and c.score != float("inf") else 1.0
        add(f"(keeping {_names(inputs)} in float, read by {c.tensor})", quantizable(graph, side), weight)
        add(f"(error added at {c.tensor})", propose_exclusions(graph, [c], 1, with_readers=True), weight)
    ranked = sorted(groups.values(), key=lambda e: -e[2]) + sorted(
        (e for k, e in singles.items() if k not in groups), key=lambda e: -e[2])
    out: list[tuple[str, tuple[str, ...]]] = [(e[0], e[1]) for e in ranked]
    seen = {frozenset(ns) for _, ns in out}
    for key, nodes in by_role.items():  # GEMM roles no culprit named, most nodes first
        if len(nodes) > 1 and graph.op_types.get(nodes[0]) in GEMMS and frozenset(nodes) not in seen:
            out.append((f"{key} in every block", tuple(nodes)))
    return out[:limit]


def _names(nodes: Sequence[str], shown: int = 3) -> str:
    return ", ".join(nodes[:shown]) + (f" and {len(nodes) - shown} more" if len(nodes) > shown else "")


# ---------------------------------------------------------------------------------------------- the loop


@dataclass
class _Context:
    model: Path
    heldout: CalibrationData
    labels: np.ndarray | None
    reference: dict[str, np.ndarray]
    output: str | None
    target: float | None
    reporter: Reporter
    runs: int = 0
    notes: list[str] = field(default_factory=list)

    def measure(self, path: Path) -> TaskScore:
        from ..quantize import run_model

        self.runs += 1
        outputs = run_model(path, self.heldout, batch_size=32, reporter=self.reporter)
        return score(self.reference, outputs, self.heldout.arrays, self.labels, output=self.output,
                     target=self.target)


def _quantize(ctx: _Context, spec: Any, folder: Path, calib: CalibrationData | None, ranges: Path | None,
              reporter: Reporter) -> tuple[Any, TaskScore]:
    from ..quantize import quantize_qdq

    folder.mkdir(parents=True, exist_ok=True)
    res = quantize_qdq(ctx.model, folder / FINAL_MODEL, calib, spec, reporter, reuse_ranges=ranges,
                       ranges_path=folder / "calibration.json")
    return res, ctx.measure(res.model_path)


def culprit_loop(
    model: str | Path,
    calibration: CalibrationData,
    heldout: CalibrationData,
    spec: Any,
    out_dir: str | Path,
    *,
    max_rounds: int = 3,
    max_trials: int = 6,
    defaults: bool | None = None,
    target: float | None = None,
    output: str | None = None,
    attribution_samples: int = 8,
    alternatives: bool = True,
    try_calibrators: bool = True,
    contrast: bool = True,
    reporter: Reporter | None = None,
) -> LoopResult:
    """Runs the loop (see the module docstring) for ``model`` quantized with ``spec`` (a
    :class:`workbench.quantize.QuantizeSpec`), calibrated on ``calibration`` and scored on ``heldout`` (a
    ``label`` extra makes the metric top-1 accuracy). ``defaults``: the transformer-aware float groups (None:
    when the model is a transformer). ``try_calibrators``: when round 0 does not recover the metric, the other
    INT8 calibrators are measured too and the best one is kept (its ranges serve every later round).
    ``contrast``: also measure round 0 without the transformer defaults (``plain``). Writes each round's Q/DQ
    model, the final one (``model_qdq.onnx``) and ``culprit_loop.json`` to ``out_dir``; returns the result."""
    model, out = Path(model).resolve(), Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # ONNX Runtime's shape inference and quantizer leave temporary files (sym_shape_infer_temp.onnx, <uuid>.data)
    # in the working directory: keep them in the loop's folder, not the user's (or the repository's)
    with _working_dir(out):
        return _loop(model, calibration, heldout, spec, out, max_rounds=max_rounds, max_trials=max_trials,
                     defaults=defaults, target=target, output=output, attribution_samples=attribution_samples,
                     alternatives=alternatives, try_calibrators=try_calibrators, contrast=contrast,
                     reporter=reporter or NullReporter())


@contextlib.contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _loop(model: Path, calibration: CalibrationData, heldout: CalibrationData, spec: Any, out: Path, *,
          max_rounds: int, max_trials: int, defaults: bool | None, target: float | None, output: str | None,
          attribution_samples: int, alternatives: bool, try_calibrators: bool, contrast: bool,
          reporter: Reporter) -> LoopResult:
    from ..quantize import qdq_summary, run_model
    from ..quantize_defaults import float_groups
    from .data import labels_for
    from .graph import read_graph

    graph = read_graph(model)
    reporter.progress(0.0, "FP32 reference")
    reference = run_model(model, heldout, batch_size=32, reporter=reporter)
    ctx = _Context(model, heldout, labels_for(heldout, heldout.n_samples), reference, output, target, reporter)
    groups = float_groups(graph)
    use_defaults = groups.transformer if defaults is None else defaults and groups.transformer
    if defaults and not groups.transformer:
        ctx.notes.append("The model does not look like a transformer: no transformer defaults applied.")
    default_nodes = groups.nodes if use_defaults else ()
    for line in groups.lines() if use_defaults else ():
        reporter.log(f"Kept in float by default: {line}.")

    plain: float | None = None
    if use_defaults and contrast:  # the contrast the user needs: what quantizing everything would give
        reporter.progress(0.05, "round 0 without defaults")
        _, s = _quantize(ctx, spec, out / "plain", calibration, None, SubReporter(reporter, 0.05, 0.15))
        plain = s.value
        reporter.log(f"Round 0 without the transformer defaults ({spec.calibrator}): {s.text()}.")
    reporter.progress(0.15, "round 0")
    spec0 = replace(spec, exclude_nodes=tuple(dict.fromkeys([*spec.exclude_nodes, *default_nodes])))
    res, current = _quantize(ctx, spec0, out / ROUND0, calibration, None, SubReporter(reporter, 0.15, 0.25))
    best_dir = out / ROUND0
    measured_cal: dict[str, float | None] = {res.calibrator: current.value}
    if not current.recovered and try_calibrators and spec.precision == "int8":
        from ..quantize import CALIBRATORS

        others = [c for c in CALIBRATORS if c != spec.calibrator]
        for i, cal in enumerate(others):
            check_cancel(reporter)
            sub = SubReporter(reporter, 0.25 + 0.05 * i / len(others), 0.25 + 0.05 * (i + 1) / len(others), cal)
            folder = out / f"{ROUND0}-{cal}"
            try:
                r2, s2 = _quantize(ctx, replace(spec0, calibrator=cal), folder, calibration, None, sub)
            except WorkbenchError as err:
                measured_cal[cal] = None
                ctx.notes.append(f"The {cal} calibrator failed: {err.message}")
                reporter.log(f"Round 0 with the {cal} calibrator failed: {err.message}", logging.WARNING)
                continue
            measured_cal[cal] = s2.value
            reporter.log(f"Round 0 with the {cal} calibrator: {s2.text()}.")
            if s2.value > current.value:
                res, current, best_dir = r2, s2, folder
    ranges = best_dir / "calibration.json"
    excluded = list(res.excluded)
    baseline = current
    reporter.log(f"Round 0: {current.text()}.")
    rounds: list[Round] = []
    for k in range(1, max_rounds + 1):
        if current.recovered:
            break
        check_cancel(reporter)
        lo, hi = 0.3 + 0.6 * (k - 1) / max_rounds, 0.3 + 0.6 * k / max_rounds
        remaining = list(qdq_summary(best_dir / FINAL_MODEL).quantized_nodes)
        proposals = _rank(model, best_dir / FINAL_MODEL, heldout, graph, set(excluded), remaining, max_trials,
                          attribution_samples)
        trials: list[Trial] = []
        trial_dir = out / f"round{k}"
        for i, (label, nodes) in enumerate(proposals):
            sub = SubReporter(reporter, lo + (hi - lo) * i / max(1, len(proposals)),
                              lo + (hi - lo) * (i + 1) / max(1, len(proposals)))
            sub.progress(0.0, f"round {k}: measuring {label}")
            spec_t = replace(spec, exclude_nodes=tuple(dict.fromkeys([*excluded, *nodes])))
            _, s = _quantize(ctx, spec_t, trial_dir / f"trial{i}", None, ranges, sub)
            trials.append(Trial(label, nodes, s.value, s.value - current.value))
            reporter.log(f"Round {k}: keeping {label} in float → {s.text()} "
                         f"({_gain(s.metric, s.value - current.value)}).")
        helpful = [t for t in trials if t.gain > 0]
        chosen = max(helpful, key=lambda t: (t.gain, -len(t.nodes))) if helpful else None
        before = current.value
        if chosen is None:
            note = ("No proposal improves the metric: nothing proposed." if trials
                    else "No culprit left to propose (every node the comparison blames is in float).")
            rounds.append(Round(k, tuple(excluded), tuple(remaining), before, tuple(trials), None, before, False,
                                note))
            _partial(out, baseline, rounds)
            break
        best_dir = trial_dir / f"trial{trials.index(chosen)}"
        current = replace(current, value=chosen.value)  # measured above on the same held-out data
        rounds.append(Round(k, tuple(excluded), tuple(remaining), before, tuple(trials), chosen, chosen.value,
                            current.recovered))
        excluded = list(dict.fromkeys([*excluded, *chosen.nodes]))
        _partial(out, baseline, rounds)
    shutil.copyfile(best_dir / FINAL_MODEL, out / FINAL_MODEL)
    shutil.copyfile(best_dir / "calibration.json", out / "calibration.json")
    n_quantized = len(qdq_summary(out / FINAL_MODEL).quantized_nodes)
    alts: list[Alternative] = []
    usable = current.recovered and n_quantized > 0
    if current.recovered and not usable:
        ctx.notes.append("The metric is recovered only with every node in float: that is not INT8 any more.")
    if not usable and alternatives:
        reporter.progress(0.9, "other precisions")
        alts = _alternatives(ctx, spec0, calibration, out / "alternatives", SubReporter(reporter, 0.9, 1.0),
                             base=out / ROUND0 / FINAL_MODEL)
    recommendation, verdict = _verdict(spec.precision, current, baseline, rounds, alts, n_quantized,
                                       bool(default_nodes))
    result = LoopResult(
        model=model.name, precision=spec.precision, calibrator=res.calibrator, metric=current.metric,
        target=current.target, fp32=current.reference, output=current.output, n_samples=current.n_samples,
        defaults={k: list(v) for k, v in groups.groups.items() if v and use_defaults}, plain=plain,
        calibrators=measured_cal,
        baseline=baseline, rounds=tuple(rounds), final=current, excluded=tuple(excluded), n_quantized=n_quantized,
        qdq_model=FINAL_MODEL, recovered=usable, advisable=recommendation == spec.precision,
        recommendation=recommendation, verdict=verdict, alternatives=tuple(alts),
        notes=(*ctx.notes, f"{ctx.runs} ONNX Runtime runs of {heldout.n_samples} held-out samples "
               f"({heldout.source})."),
    )
    result.save(out)
    reporter.log(verdict)
    reporter.progress(1.0, "done")
    return result


def _partial(out: Path, baseline: TaskScore, rounds: Sequence[Round]) -> None:
    """The rounds so far (``culprit_loop.partial.json``): what a long loop has measured if it is stopped."""
    doc = {"baseline": baseline.to_dict(), "rounds": [asdict(r) for r in rounds]}
    (out / "culprit_loop.partial.json").write_text(json.dumps(doc, indent=1, default=str))


def _rank(model: Path, current: Path, heldout: CalibrationData, graph: Any, excluded: set[str],
          remaining: Sequence[str], limit: int, n: int) -> list[tuple[str, tuple[str, ...]]]:
    """Proposals from a per-layer comparison of the current Q/DQ model on the first ``n`` held-out samples."""
    from .candidates import candidate_from_path
    from .comparison import compare
    from .spec import CompareSpec

    subset = CalibrationData({k: v[:n] for k, v in heldout.arrays.items()}, heldout.source, heldout.synthetic)
    result = compare(model, candidate_from_path(current), subset,
                     CompareSpec(max_samples=n, batch_size=n, per_layer=True, top_k=max(2 * limit, 8)))
    return _proposals(graph, result.culprits, excluded, remaining, limit)


# ---------------------------------------------------------------------------------------------- verdict


def _alternatives(ctx: _Context, spec: Any, calibration: CalibrationData, folder: Path,
                  reporter: Reporter, *, base: Path | None = None) -> list[Alternative]:
    """FP16, BF16 and FP8, INT8 weight-only (from ``base``, round 0's Q/DQ model) and ONNX Runtime's dynamic INT8
    (for contrast) measured on the same held-out data."""
    from .candidates import simulate_fp16

    out: list[Alternative] = []

    def measured(precision: str, make: Any, note: str = "") -> None:
        check_cancel(reporter)
        try:
            s = ctx.measure(make())
        except (WorkbenchError, RuntimeError, ValueError) as err:
            text = (getattr(err, "message", None) or str(err)).splitlines()[0]
            kernel = re.search(r"Could not find an implementation for (\w+)", text)
            text = (f"ONNX Runtime on this CPU has no {precision.upper()} kernel for {kernel.group(1)}" if kernel
                    else text[:300])
            out.append(Alternative(precision, None, False, f"not measured: {text}"))
            return
        out.append(Alternative(precision, s.value, s.recovered, note))
        reporter.log(f"{precision.upper()}: {s.text()}.")

    reporter.progress(0.0, "FP16")
    measured("fp16", lambda: simulate_fp16(ctx.model, folder / "fp16").path, "the build's FP16 conversion")
    reporter.progress(0.25, "BF16")
    measured("bf16", lambda: _bf16(ctx.model, folder / "bf16"), "the build's BF16 conversion")
    reporter.progress(0.5, "FP8")

    def fp8() -> Path:
        from ..quantize import quantize_qdq

        res = quantize_qdq(ctx.model, folder / "fp8" / FINAL_MODEL, calibration, replace(spec, precision="fp8"),
                           SubReporter(reporter, 0.5, 0.75))
        return res.model_path

    measured("fp8", fp8, "Q/DQ E4M3 with ONNX Runtime's distribution calibration, transformer defaults; "
             "engines run on GPUs of compute capability 8.9 or newer")
    if base is not None and spec.precision == "int8":
        from .weight_only import weight_only

        reporter.progress(0.7, "weight-only INT8")
        measured("int8-weight-only", lambda: weight_only(base, folder / "weight_only" / "model_weight_only.onnx"),
                 "INT8 weights per channel, float activations (round 0's Q/DQ without activation Q/DQ): the form "
                 "TensorRT-RTX runs as a weight-only GEMM")
    reporter.progress(0.75, "dynamic INT8")
    measured("int8-dynamic", lambda: _dynamic(ctx.model, folder / "dynamic"),
             "ONNX Runtime's own dynamic INT8 (activation scales per batch): an ONNX Runtime path, not a TensorRT one")
    return out


def _bf16(model: Path, folder: Path) -> Path:
    from ..build import prepare_network
    from ..spec import BuildSpec

    folder.mkdir(parents=True, exist_ok=True)
    path, _ = prepare_network(model, BuildSpec(precision="bf16"), folder, NullReporter(), True)
    return path


def _dynamic(model: Path, folder: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model_dynamic.onnx"
    quantize_dynamic(str(model), str(path), per_channel=True, weight_type=QuantType.QInt8)
    return path


def _verdict(precision: str, final: TaskScore, baseline: TaskScore, rounds: Sequence[Round],
             alts: Sequence[Alternative], n_quantized: int, defaults: bool) -> tuple[str, str]:
    fmt = _fmt(final.metric)
    p = precision.upper()
    if final.recovered and n_quantized:
        extra = sum(len(r.chosen.nodes) for r in rounds if r.chosen)
        how = (("with the transformer defaults alone" if defaults else "as quantized") if not extra else
               f"after {sum(1 for r in rounds if r.chosen)} round(s) keeping {extra} more node(s) in float")
        return precision, (f"{p} is usable: {final.metric} {fmt(final.value)} on {final.n_samples} held-out samples "
                           f"(target {fmt(final.target)}) {how}; {n_quantized} node(s) stay quantized.")
    usable = {a.precision: a for a in alts if a.value is not None and a.recovered}
    # TensorRT paths, preferred in this order; weight-only INT8 (float activations) after the float precisions
    tensorrt = [q for q in ("fp8", "fp16", "bf16", "int8-weight-only") if q in usable and q != precision]
    choice = tensorrt[0] if tensorrt else "fp32"
    why = (f"{p} is not advisable for this model: after {len(rounds)} round(s) the {final.metric} is "
           f"{fmt(final.value)} (round 0: {fmt(baseline.value)}; target {fmt(final.target)}) on {final.n_samples} "
           "held-out samples" + (", and only with every node in float." if final.recovered else "."))
    measured = "; ".join(f"{a.precision.upper()} {fmt(a.value)}" if a.value is not None
                         else f"{a.precision.upper()} {a.note}" for a in alts)
    if choice == "fp32" and not alts:
        advice = " Other precisions were not measured (alternatives off)."
    elif choice == "fp32":
        advice = " No reduced precision reaches the target here: keep FP32."
    elif choice == "int8-weight-only":
        advice = (" Use weight-only INT8 (INT8 weights, float activations: "
                  f"{fmt(usable[choice].value)}), which TensorRT-RTX builds; FP16/BF16/FP8 were not measured or "
                  "miss the target here.")
    else:
        advice = f" Use {choice.upper()}" + (" (on GPUs of compute capability 8.9 or newer; FP16 elsewhere)"
                                             if choice == "fp8" and "fp16" in usable else "") + "."
    return choice, why + advice + (f" Measured: {measured}." if measured else "")
