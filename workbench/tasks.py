"""What each kind of job does inside the worker process. Each task returns a small JSON-able result."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .build import LAYERS, PLAN, build_engine, select_backend
from .jobs import LOG_FILE, Job
from .progress import Reporter, peak_rss_mib
from .spec import NO_TF32_SCRIPT, NO_TF32_SOURCE, BuildSpec

log = logging.getLogger(__name__)

def _layer_step(spec: BuildSpec, reporter: Reporter) -> Callable[[Path], dict[str, Any]]:
    def step(job_dir: Path) -> dict[str, Any]:
        from .layers import parse_build_log
        from .precision_check import check_precision

        layers = _inspected_layers(spec, job_dir, reporter) or parse_build_log(
            (job_dir / LOG_FILE).read_text(errors="replace"))
        (job_dir / LAYERS).write_text(layers.to_json())
        return check_precision(spec.precision, layers)

    return step


def _inspected_layers(spec: BuildSpec, job_dir: Path, reporter: Reporter) -> Any | None:
    """The engine inspector's layers where this machine can deserialize the plan (a GPU the backend supports):
    the source of truth. Elsewhere (TensorRT-RTX on a CPU-only machine) None: the build log's listing serves."""
    from .backends import backend_info
    from .errors import WorkbenchError

    if not backend_info(spec.backend).can_run_engines:
        return None
    from .layers import inspect_plan

    try:
        layers = inspect_plan(job_dir / PLAN, spec.backend)
    except WorkbenchError as err:
        reporter.log(f"Engine inspector unavailable ({err.message}); the layer listing comes from the build log.",
                     logging.WARNING)
        return None
    reporter.log(f"Layer information from TensorRT's engine inspector ({len(layers.layers)} layers).")
    return layers


def run_build(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .reports.build_report import COMMANDS, REPORT, commands, render_report

    spec = BuildSpec.from_dict(job.payload["spec"])
    select_backend(spec.backend)
    model_path = Path(job.payload["model_path"])
    result = build_engine(model_path, spec, job_dir, reporter, layer_parser=_layer_step(spec, reporter))
    res = result.to_dict()
    res["built_on"] = _built_on()
    res["peak_rss_mib"] = peak_rss_mib()  # the build is done: what it needed (the report and bundle add little)
    for w in result.warnings:
        reporter.log(w, logging.WARNING)
    for n in result.notes:
        reporter.log(n)
    (job_dir / REPORT).write_text(
        render_report(job.to_dict(), spec, res, job.model_name or model_path.name, job.model_digest)
    )
    cmds = commands(spec, job.model_name or model_path.name, result.network_model, result.backend_version)
    if NO_TF32_SCRIPT in cmds["polygraphy"]:
        (job_dir / NO_TF32_SCRIPT).write_text(NO_TF32_SOURCE)
    (job_dir / COMMANDS).write_text(
        "#!/bin/sh\n# Redo this build outside the workbench.\n" + "\n".join(cmds.values()) + "\n"
    )
    reporter.log(f"Plan written: {result.plan_bytes / 1024:.1f} KiB in {result.build_seconds:.2f} s.")
    return json.loads(json.dumps(res, default=str))


def _built_on() -> str:
    """The build machine's GPU as the reports print it ("a machine without GPU" for TensorRT-RTX on CPU)."""
    from .backends import gpu_info

    gpu = gpu_info()
    return f"{gpu.name} (CC {gpu.compute_capability})" if gpu.present else "a machine without GPU"


def run_parse(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .parse_check import run_parse_task

    return run_parse_task(job, job_dir, reporter)


def run_quantize(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .quantize_task import run_quantize as task

    return task(job, job_dir, reporter)


def run_score(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .quantize_task import run_score as task

    return task(job, job_dir, reporter)


def run_compare(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .accuracy.job import run_compare as task

    return task(job, job_dir, reporter)


def run_culprit_loop(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .accuracy.loop_job import run_loop as task

    return task(job, job_dir, reporter)


def run_demo(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    from .demo import run_demo as task

    return task(job, job_dir, reporter)


THUMBNAIL = "thumb-{:02d}.png"  # the preview of an images job: a few samples as the model sees them


def run_images(job: Job, job_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Images (a folder on the server, or an archive) → the .npz for the model's image input, made once per
    source content and preprocessing in the workspace's data folder (a repeat reuses it), plus a few
    thumbnails as PNG files in the job folder. Progress per image read; cancel stops at the next image."""
    import numpy as np
    from PIL import Image

    from . import calibration_images as ci
    from .calibration_data import model_inputs
    from .progress import SubReporter

    payload, request = job.payload, job.payload["request"]
    spec = ci.image_input(model_inputs(Path(payload["model_path"])))
    pre = ci.ImagePreprocess.from_dict(request["preprocess"])
    roots = None if payload.get("roots") is None else [Path(r) for r in payload["roots"]]
    source = Path(request["source"])
    reporter.log(
        f"Reading images from {source} for input '{spec.name}' {spec.shape_text()}: {pre.describe()}"
    )
    reporter.progress(0.0, "Listing the images" if source.is_dir() else "Checking the archive")
    made = ci.materialize_npz(
        source,
        spec,
        pre,
        Path(payload["out_dir"]),
        roots=roots,
        max_images=int(request["max_images"]),
        work_dir=payload["work_dir"],
        reporter=SubReporter(reporter, 0.02, 0.95),
    )
    reporter.log(
        f"{'Reused' if made.reused else 'Wrote'} {made.npz_path.name}: {made.n_images} images"
        + (" (made earlier from the same images and preprocessing)." if made.reused else ".")
    )
    for note in made.notes:
        reporter.log(note)
    reporter.progress(0.95, "Writing the preview")
    with np.load(made.npz_path, allow_pickle=False) as z:
        arr = z[spec.name] if spec.name in z.files else z[z.files[0]]
    thumbs = []
    for j, (i, pixels) in enumerate(ci.thumbnails(arr, pre)):
        name = THUMBNAIL.format(j)
        Image.fromarray(pixels).save(job_dir / name)
        thumbs.append({"file": name, "name": made.files[i]})
    return {
        "npz": str(made.npz_path),
        "n": made.n_images,
        "notes": list(made.notes),
        "reused": made.reused,
        "input": spec.name,
        "shape": [int(d) for d in arr.shape],
        "dtype": str(arr.dtype),
        "thumbs": thumbs,
    }


TASKS: dict[str, Callable[[Job, Path, Reporter], dict[str, Any]]] = {
    "demo": run_demo,
    "compare": run_compare,
    "culprit_loop": run_culprit_loop,
    "build": run_build,
    "parse": run_parse,
    "quantize": run_quantize,
    "score": run_score,
    "images": run_images,
}
