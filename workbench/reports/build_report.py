"""The build report (Markdown), the portability card, and the downloadable bundle of a finished build."""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import RTX_COMPUTE_CAPABILITIES, gpu_info, versions
from ..build import CALIB_CACHE, LAYERS, NETWORK, PLAN, QDQ, RESULT, SPEC
from ..jobs import LOG_FILE
from ..spec import NO_TF32_SCRIPT, BuildSpec, polygraphy_command, trtexec_command
from ..text import md

REPORT = "report.md"
COMMANDS = "commands.sh"
BUNDLE = "bundle.zip"

# Files that go into a build's bundle, in this order (those that exist).
BUNDLE_FILES = [
    PLAN,
    SPEC,
    LAYERS,
    RESULT,
    REPORT,
    COMMANDS,
    NO_TF32_SCRIPT,
    LOG_FILE,
    NETWORK,
    f"{NETWORK}.data",  # the converted network's weights, when over 1 GiB
    QDQ,
    f"{QDQ}.data",  # ONNX Runtime's name for the Q/DQ model's external weights
    "calibration.json",
    CALIB_CACHE,
]


@dataclass(frozen=True)
class Portability:
    backend: str
    backend_version: str
    runs_on: str
    will_not_run_on: str
    version_rule: str


def portability(spec: BuildSpec, backend_version: str) -> Portability:
    if spec.backend == "tensorrt-rtx":
        caps = spec.compute_capabilities or RTX_COMPUTE_CAPABILITIES
        return Portability(
            "TensorRT-RTX", backend_version,
            runs_on="NVIDIA GPUs of compute capability " + ", ".join(caps) + " (RTX/Ampere and newer consumer and "
                    "workstation GPUs); kernels are finalized on the target GPU at first run.",
            will_not_run_on="Compute capability 9.0 (H100/H200) and any capability not listed; full TensorRT "
                            "runtimes (a TensorRT-RTX plan is not a TensorRT plan).",
            version_rule=f"Deserialize with TensorRT-RTX {backend_version.rsplit('.', 2)[0]}.x runtime.",
        )
    gpu = gpu_info()
    built_on = f"{gpu.name} (compute capability {gpu.compute_capability})" if gpu.present else "the build GPU"
    runs = ("Ampere and newer GPUs (hardware-compatible plan)" if spec.hardware_compatible
            else f"GPUs of the same model as {built_on} only")
    return Portability(
        "TensorRT", backend_version, runs_on=runs,
        will_not_run_on="Other GPU models" + ("" if spec.hardware_compatible else " or architectures"),
        version_rule=("Version-compatible: later TensorRT runtimes can load it (with the lean runtime)."
                      if spec.version_compatible else f"Exactly TensorRT {backend_version}."),
    )


def commands(spec: BuildSpec, model_name: str, network_name: str = "", backend_version: str = "") -> dict[str, str]:
    """Equivalent command lines that build what the workbench built.

    A converted or quantized build runs on the network model shipped in the job folder and bundle
    (``network_name``: the FP16-converted or Q/DQ ONNX), with the same precision and TF32 setting the build had.
    ``backend_version`` is the backend the build ran (full TensorRT 11 is strongly typed, <= 10 takes builder
    flags); without it, the version installed here.
    """
    src = network_name or model_name
    version = backend_version or _installed_version(spec.backend)
    return {
        "polygraphy": polygraphy_command(spec, src, "engine.plan", version),
        "trtexec": trtexec_command(spec, src, "engine.plan", version),
    }


def _installed_version(backend: str) -> str:
    from ..backends import backend_info

    try:
        return backend_info(backend).version
    except Exception:  # noqa: BLE001 - an unknown backend name: no version, builder flags
        return ""


def render_report(job: dict[str, Any], spec: BuildSpec, result: dict[str, Any], model_name: str,
                  model_digest: str) -> str:
    port = portability(spec, result.get("backend_version", ""))
    cmds = commands(spec, model_name, result.get("network_model", ""), result.get("backend_version", ""))
    lines = [
        f"# Build report: {md(model_name)}",  # names, messages: from the model file, made text
        "",
        f"- Model: {md(model_name)} (sha256 `{model_digest}`)",
        f"- Backend: {port.backend} {port.backend_version}",
        f"- Built on: {md(result.get('built_on') or 'unknown')}",
        f"- Precision: {spec.precision.upper()}",
        *([f"- Calibration: {md(spec.calibration.describe())}"] if spec.calibration and spec.precision in ("int8", "fp8")
          else []),
        f"- Build time: {result.get('build_seconds', 0):.2f} s (job total {result.get('total_seconds', 0):.2f} s)",
        f"- Plan size: {result.get('plan_bytes', 0) / 1024:.1f} KiB",
        *([f"- Peak memory of the build worker: {result['peak_rss_mib']:.0f} MiB"] if result.get("peak_rss_mib")
          else []),
        f"- Job: `{job.get('id', '')}`",
    ]
    if result.get("network_model"):
        lines.append(f"- Network built: {md(result['network_model'])} (converted from the model; included)")
    lines += ["", "## Optimization profiles", ""]
    if not spec.profiles:
        lines.append("Static shapes (no profile needed).")
    for i, prof in enumerate(spec.profiles):
        lines.append(f"Profile {i}:")
        lines.append("")
        lines.append("| input | min | opt | max |")
        lines.append("|---|---|---|---|")
        for name, r in prof.shapes.items():
            lines.append(f"| {md(name)} | {list(r.min)} | {list(r.opt)} | {list(r.max)} |")
        lines.append("")
    lines += ["## Portability", "", f"- Runs on: {port.runs_on}", f"- Will not run on: {port.will_not_run_on}",
              f"- Runtime version: {port.version_rule}", ""]
    check = result.get("precision_check") or {}
    if check:
        lines += ["## Precision check", "", md(check.get("summary", "")), ""]
    for title, items in (("Warnings", result.get("warnings", ())), ("Notes", result.get("notes", ()))):
        if items:
            lines += [f"## {title}", ""] + [f"- {md(w)}" for w in items] + [""]
    lines += ["## Redo this build", "", "```sh", cmds["polygraphy"], "```", "", "```sh", cmds["trtexec"], "```", "",
              "## Versions", ""] + [f"- {k}: {v}" for k, v in versions().items() if v]
    return "\n".join(lines) + "\n"


def _zip_into(target: Any, job_dir: Path, files: list[str] | None) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for name in BUNDLE_FILES if files is None else files:
            path = job_dir / name
            if path.is_file():
                # plans are mostly weights: deflating them costs seconds per 100 MB and saves little
                stored = name.endswith(".plan") or name.endswith(".onnx")
                zf.write(path, arcname=name, compress_type=zipfile.ZIP_STORED if stored else None)


def bundle_size(job_dir: Path, files: list[str] | None = None) -> int:
    """Bytes of the files a bundle of the job would hold (before compression)."""
    return sum((job_dir / n).stat().st_size for n in (BUNDLE_FILES if files is None else files)
               if (job_dir / n).is_file())


def bundle_bytes(job_dir: Path, files: list[str] | None = None) -> bytes:
    """The bundle :func:`write_bundle` would write, in memory, written nowhere (for small builds: the page hands
    it to the browser with the page itself). The same files give the same bytes."""
    import io

    buf = io.BytesIO()
    _zip_into(buf, job_dir, files)
    return buf.getvalue()


def write_bundle(job_dir: Path, files: list[str] | None = None) -> Path:
    """Zip the named artifacts of a job (those that exist; default :data:`BUNDLE_FILES`) into ``bundle.zip``.

    Made when first asked for, not after every build: a bundle doubles a build's disk use (plans can be GBs)."""
    out = job_dir / BUNDLE
    # streamed to disk, renamed when complete; a name of its own, so two requests at once cannot mix their bytes
    part = job_dir / f"{BUNDLE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
    try:
        _zip_into(part, job_dir, files)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


def summary_json(job: dict[str, Any], spec: BuildSpec, result: dict[str, Any], layers: Any | None) -> str:
    data = {"job": {k: job.get(k) for k in ("id", "title", "model_name", "model_digest")},
            "spec": spec.to_dict(), "result": result, "versions": versions()}
    if layers is not None:
        data["layers"] = json.loads(layers.to_json()) if hasattr(layers, "to_json") else layers
    return json.dumps(data, indent=2, default=str)
