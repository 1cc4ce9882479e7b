"""A comparison pays for what it reports, not for Polygraphy's log nobody reads (issue 16): the results (every
tensor's metrics and verdict, culprits, the report) are exactly those computed with Polygraphy's log-only
statistics left on."""

from __future__ import annotations

import contextlib
import json

import pytest
from polygraphy.comparator import util as comp_util

from workbench.accuracy import CompareSpec, compare, load_data, metrics, simulate_fp16
from workbench.samples import get_sample


def _comparable(result) -> dict:
    doc = json.loads(result.to_json())
    for key in ("duration_s", "created", "notes"):  # timings
        doc.pop(key, None)
    return doc


@pytest.fixture()
def counted_stats(monkeypatch):
    calls = []
    real = comp_util.str_output_stats

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(comp_util, "str_output_stats", counting)
    return calls


def test_a_per_layer_comparison_skips_the_log_statistics_and_gives_the_same_results(tmp_path, monkeypatch,
                                                                                    counted_stats):
    sample = get_sample("cnn_residual")
    data = load_data(sample.path, sample.test_data)
    cand = simulate_fp16(sample.path, tmp_path)
    spec = CompareSpec(per_layer=True, max_samples=8, batch_size=4)

    fast = compare(sample.path, cand, data, spec, out_dir=tmp_path / "fast")
    assert counted_stats == [], "Polygraphy computed statistics for its silenced log"

    monkeypatch.setattr(metrics, "_no_statistics_for_the_log", contextlib.nullcontext)
    logged = compare(sample.path, cand, data, spec, out_dir=tmp_path / "logged")
    assert counted_stats, "the reference run did not compute Polygraphy's log statistics"

    assert _comparable(fast) == _comparable(logged)
    assert len(fast.tensors) > len(fast.outputs)  # per layer indeed
    assert (tmp_path / "fast" / "comparison.json").is_file()
