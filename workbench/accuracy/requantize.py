"""Keep the culprits in higher precision: re-quantize with them excluded, compare again, show before and after."""

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
from .candidates import simulate_qdq
from .comparison import BEFORE_AFTER_FILE, REPORT_FILE, SAMPLES_FILE, _write, compare, load_samples
from .results import BeforeAfter, ComparisonResult
from .spec import CompareSpec

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
    if not exclude:
        raise SpecError(
            "Nothing to keep in higher precision: no node names were given.",
            "Run a per-layer comparison first; its culprit finder proposes the nodes.",
        )
    reporter = reporter or NullReporter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = spec or CompareSpec(
        atol=before.atol, rtol=before.rtol, error_stat=before.error_stat, per_layer=before.per_layer
    )
    combined = tuple(dict.fromkeys([*quantize_spec.exclude_nodes, *exclude]))
    qspec = replace(quantize_spec, exclude_nodes=combined)
    reporter.log(f"Re-quantizing with {len(combined)} node(s) kept in float: {', '.join(combined)}.")
    candidate, qres = simulate_qdq(model, out_dir, calibration, qspec, SubReporter(reporter, 0.0, 0.4))
    candidate = replace(
        candidate,
        source=f"re-quantized with {', '.join(exclude)} kept in float ({qres.calibrator} calibrator)",
    )
    after = compare(model, candidate, data, spec, out_dir=out_dir, reporter=SubReporter(reporter, 0.4, 0.95))
    result = BeforeAfter(before, after, tuple(qres.excluded), tuple(exclude), candidate.path.name)
    _write(out_dir / BEFORE_AFTER_FILE, result.to_json())
    _write(
        out_dir / REPORT_FILE, render_report(after, load_samples(out_dir / SAMPLES_FILE), before_after=result)
    )
    return result
