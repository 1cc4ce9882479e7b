"""Keep the culprits in higher precision: re-quantize (Q/DQ) or convert to FP16 again with them excluded, compare
again, show before and after."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..calibration_data import CalibrationData
from ..errors import SpecError
from ..progress import NullReporter, Reporter, SubReporter
from ..reports.accuracy_html import render_report
from .candidates import simulate_fp16, simulate_qdq
from .comparison import BEFORE_AFTER_FILE, REPORT_FILE, SAMPLES_FILE, _write, compare, load_samples
from .results import BeforeAfter, ComparisonResult
from .spec import RANDOM_CALIBRATION, CompareSpec

log = logging.getLogger(__name__)


def requantize_and_compare(
    model: str | Path,
    calibration: CalibrationData,
    quantize_spec: Any,
    exclude: Sequence[str],
    data: CalibrationData,
    before: ComparisonResult,
    out_dir: str | Path,
    spec: CompareSpec | None = None,
    reporter: Reporter | None = None,
) -> BeforeAfter:
    """Quantizes ``model`` again with ``exclude`` (ONNX node names, e.g. a comparison's
    ``proposed_exclusions``) added to ``quantize_spec.exclude_nodes`` (a
    :class:`workbench.quantize.QuantizeSpec`), compares the new Q/DQ model on ``data`` the way ``before`` was
    compared, and returns both. Artifacts of the new comparison and ``before_after.json`` go to ``out_dir``."""
    reporter, out_dir, spec = _again(exclude, "higher precision", before, out_dir, spec, reporter)
    combined = tuple(dict.fromkeys([*quantize_spec.exclude_nodes, *exclude]))
    qspec = replace(quantize_spec, exclude_nodes=combined)
    reporter.log(f"Re-quantizing with {len(combined)} node(s) kept in float: {', '.join(combined)}.")
    candidate, qres = simulate_qdq(model, out_dir, calibration, qspec, SubReporter(reporter, 0.0, 0.4))
    candidate = replace(
        candidate,
        source=f"re-quantized with {', '.join(exclude)} kept in float ({qres.calibrator} calibrator)"
        + (f" — {RANDOM_CALIBRATION}" if candidate.synthetic_calibration else ""),
    )
    after = compare(model, candidate, data, spec, out_dir=out_dir, reporter=SubReporter(reporter, 0.4, 0.95))
    return _save(
        BeforeAfter(before, after, tuple(qres.excluded), tuple(exclude), candidate.path.name), out_dir
    )


def _again(exclude: Sequence[str], precision: str, before: ComparisonResult, out_dir: str | Path,
           spec: CompareSpec | None, reporter: Reporter | None) -> tuple[Reporter, Path, CompareSpec]:
    """What a before/after needs: names to keep in ``precision``, the output folder, and ``before``'s settings."""
    if not exclude:
        raise SpecError(
            f"Nothing to keep in {precision}: no node names were given.",
            "Run a per-layer comparison first; its culprit finder proposes the nodes.",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec or CompareSpec(
        atol=before.atol, rtol=before.rtol, error_stat=before.error_stat, per_layer=before.per_layer
    )
    return reporter or NullReporter(), out, spec


def _save(result: BeforeAfter, out_dir: Path) -> BeforeAfter:
    _write(out_dir / BEFORE_AFTER_FILE, result.to_json())
    _write(
        out_dir / REPORT_FILE,
        render_report(result.after, load_samples(out_dir / SAMPLES_FILE), before_after=result),
    )
    return result


def reconvert_and_compare(
    model: str | Path,
    exclude: Sequence[str],
    data: CalibrationData,
    before: ComparisonResult,
    out_dir: str | Path,
    spec: CompareSpec | None = None,
    reporter: Reporter | None = None,
    *,
    keep_nodes: Sequence[str] = (),
    keep_op_types: Sequence[str] = (),
) -> BeforeAfter:
    """The FP16 remedy: converts ``model`` to FP16 again (the build's converter) with ``exclude`` (node names or
    op types, e.g. a comparison's ``proposed_exclusions``) kept in FP32 on top of ``keep_nodes`` /
    ``keep_op_types``, compares it on ``data`` the way ``before`` was compared, and returns both."""
    from .graph import read_graph

    reporter, out_dir, spec = _again(exclude, "FP32", before, out_dir, spec, reporter)
    graph = read_graph(model)
    op_types = set(graph.op_types.values())
    names = set(graph.node_names)
    nodes = tuple(dict.fromkeys([*keep_nodes, *(e for e in exclude if e in names or e not in op_types)]))
    ops = tuple(dict.fromkeys([*keep_op_types, *(e for e in exclude if e in op_types and e not in names)]))
    reporter.log(f"Converting to FP16 again with {', '.join([*nodes, *ops])} kept in FP32.")
    candidate = simulate_fp16(
        model, out_dir, SubReporter(reporter, 0.0, 0.2), keep_nodes=nodes, keep_op_types=ops
    )
    candidate = replace(candidate, source=f"FP16 converted again with {', '.join(exclude)} kept in FP32")
    after = compare(model, candidate, data, spec, out_dir=out_dir, reporter=SubReporter(reporter, 0.2, 0.95))
    return _save(BeforeAfter(before, after, (*nodes, *ops), tuple(exclude), candidate.path.name), out_dir)
