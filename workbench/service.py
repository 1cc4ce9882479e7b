"""The workbench as one object: what pages and the CLI call. Holds paths and ids only, never engines."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .build import PLAN, check_spec_for_backend
from .errors import BackendError, DataError, JobError, ModelError, SpecError
from .jobs import FAILED, SUCCEEDED, Job, JobStore
from .model import (
    ModelRef,
    ModelSummary,
    get_model,
    import_model,
    list_models,
    stored_summary,
)
from .quantize_task import QuantizeRequest
from .spec import BuildSpec, validate_spec
from .workspace import Workspace

if TYPE_CHECKING:
    from .calibration_data import InputSpec
    from .calibration_images import ImagePreprocess


LARGE_GRAPH_NODES = 5000  # a graph this big (nodes, subgraphs included) gets a build-time warning at submit


@dataclass(frozen=True)
class Workbench:
    ws: Workspace
    jobs: JobStore

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> Workbench:
        ws = Workspace.at(root) if root else Workspace.default()
        return cls(ws, JobStore(ws))

    # ------------------------------------------------------------------ models
    def import_upload(self, data: IO[bytes] | bytes, filename: str, max_bytes: int | None = None) -> ModelRef:
        if max_bytes:
            return import_model(self.ws, data, filename, max_bytes=max_bytes)
        return import_model(self.ws, data, filename)

    def import_path(self, path: Path) -> ModelRef:
        if not path.exists():
            raise ModelError(f"'{path}' does not exist.", "Check the path.")
        return import_model(self.ws, path, path.name, max_bytes=1 << 62)

    def import_server_model(self, path: str) -> ModelRef:
        """A model already on the server (too big to upload: weights over the upload limit in external-data
        files), opened by path below the allowed data folders (``WORKBENCH_DATA_ROOTS``, default the workspace's
        ``data/``); its external-data files are hard-linked into the workspace where they can be, else copied."""
        from .calibration_images import ENV_DATA_ROOTS, data_roots
        from .workspace import confined_server_path, roots_text

        roots = data_roots(self.ws.root)
        hint = (f"Models are opened from the server only below {roots_text(roots)}; move the model there, or ask "
                f"the administrator to add its folder to {ENV_DATA_ROOTS}.")
        real = confined_server_path(path, roots, "models on the server", hint, ModelError)
        if not real.is_file():
            raise ModelError(f"'{path}' is not a model file on the server" + ("" if real.exists() else
                             " (it does not exist)") + ".", "Give the path of the .onnx file.")
        if real.suffix.lower() != ".onnx":
            raise ModelError(f"'{path}' is not an .onnx file.", "Give the path of the .onnx file; archives are "
                             "uploaded instead.")
        root = next(r for r in (Path(r).resolve() for r in roots) if real.is_relative_to(r))
        return import_model(self.ws, real, real.name, max_bytes=1 << 62, below=root)

    def model(self, digest: str) -> ModelRef:
        return get_model(self.ws, digest)

    def models(self) -> list[ModelRef]:
        return list_models(self.ws)

    def summary(self, ref: ModelRef) -> ModelSummary:
        """Summary of a stored model, computed once per digest and kept beside it."""
        return stored_summary(ref.path)

    # ------------------------------------------------------------------ parser check
    def parse_check(
        self, ref: ModelRef, backend: str, retry: bool = False
    ) -> tuple[dict[str, Any] | None, str | None]:
        """(cached result, None) or (None, job id of the running check).

        A cache that cannot be read (a worker killed while writing it by an older version, a damaged disk) is
        treated as missing; a finished check's result is taken from its job then. A failed check raises
        BackendError with its reason until ``retry`` asks for a new one."""
        from .parse_check import ParseResult, read_cache, write_cache
        from .spec import BACKENDS

        if backend not in BACKENDS:
            raise BackendError(f"Unknown backend '{backend}'.", f"Choose one of {', '.join(BACKENDS)}.")
        cache = ref.path.parent / f"parse-{backend}.json"
        cached = read_cache(cache)
        if cached is not None:
            return json.loads(json.dumps(cached.to_dict())), None  # as JSON has it (lists), like the CLI's
        for job in self.jobs.list(kind="parse"):  # newest first
            if job.model_digest == ref.digest and job.payload.get("backend") == backend:
                if job.active:
                    return None, job.id
                if job.status == SUCCEEDED and job.result:
                    try:
                        result = ParseResult.from_dict(job.result)
                    except (TypeError, KeyError, AttributeError):
                        break
                    write_cache(cache, result)
                    return json.loads(json.dumps(result.to_dict())), None
                if job.status == FAILED and not retry:
                    raise BackendError(
                        f"The parser check with {backend} failed: {job.error}", job.hint or None
                    )
                break
        job_id = self.jobs.submit(
            "parse",
            {"model_path": str(ref.path), "backend": backend, "cache_path": str(cache)},
            title=f"Parser check of {ref.name} with {backend}",
            model_digest=ref.digest,
            model_name=ref.name,
        )
        return None, job_id

    def last_parse_check(self, ref: ModelRef, backend: str) -> dict[str, Any] | None:
        """The model's finished parser check with ``backend``, if one was made (never starts one)."""
        from .parse_check import read_cache

        cached = read_cache(ref.path.parent / f"parse-{backend}.json")
        return json.loads(json.dumps(cached.to_dict())) if cached is not None else None

    # ------------------------------------------------------------------ builds
    def submit_build(self, ref: ModelRef, spec: BuildSpec) -> str:
        """Validate everything that can be validated cheaply before a worker starts, then queue the build.

        Calibration data: only the .npz headers are checked here (names, shapes, dtypes against the model's inputs
        and the profiles); the worker reads the values and fails the job, naming file and input, on NaN/Inf."""
        summary = self.summary(ref)
        validate_spec(spec, summary)
        check_spec_for_backend(spec)
        calib = spec.calibration
        if spec.precision in ("int8", "fp8") and calib and calib.data_path:
            # the worker reads the data for implicit calibration, or unless it reuses ranges or calibrates on noise
            if calib.implicit or not (calib.ranges_path or calib.synthetic):
                self._check_build_data(summary, spec)
        return self.jobs.submit(
            "build",
            {"model_path": str(ref.path), "spec": spec.to_dict()},
            title=f"{ref.name} ({ref.short[:8]}): {spec.summary()}",  # two models of one name stay apart
            model_digest=ref.digest,
            model_name=ref.name,
        )

    def build_time_warning(self, ref: ModelRef) -> str | None:
        """A warning to show before building a very large graph: the build may take many minutes, holds the build
        slot meanwhile, and stops at the job time limit. None for an ordinary model."""
        summary = self.summary(ref)
        nodes = summary.node_count + summary.subgraph_node_count
        if nodes < LARGE_GRAPH_NODES:
            return None
        limit = self.jobs.timeout_s
        stop = (f"it is stopped after {limit // 60} min {limit % 60} s (the job time limit, Settings)"
                if limit else "no job time limit is set")
        return (f"'{ref.name}' has {nodes:,} nodes: building it may take many minutes on this machine, during which "
                f"it holds the build slot that every user's builds, quantizations and comparisons share; {stop}.")

    @staticmethod
    def _check_build_data(summary: ModelSummary, spec: BuildSpec) -> None:
        """The build's calibration .npz headers against the model's inputs, then the profiles: TensorRT's implicit
        calibration runs on the last profile (Polygraphy's choice), so the data must fit that one; Q/DQ calibration
        runs in ONNX Runtime and the data must fit at least one profile (else the ranges come from shapes the
        engine never sees)."""
        from .calibration_data import MIN_CALIBRATION_SAMPLES, check_npz_headers

        calib = spec.calibration
        assert calib is not None and calib.data_path
        path, inputs = Path(calib.data_path), _input_specs(summary)
        check_npz_headers(path, inputs)
        candidates = spec.profiles[-1:] if calib.implicit else spec.profiles
        errors: list[DataError] = []
        for profile in candidates:
            try:
                check_npz_headers(path, inputs, profile=profile)
                errors = []
                break
            except DataError as err:
                errors.append(err)
        if not errors:  # fits a profile (or the model is static): enough samples to calibrate on?
            check_npz_headers(path, inputs, min_samples=MIN_CALIBRATION_SAMPLES)
            return
        if calib.implicit:
            raise DataError(
                f"{errors[0].message} TensorRT calibrates with the build's last optimization profile.",
                errors[0].hint,
            )
        extra = (
            f" It fits none of the build's {len(errors)} profiles (the first shown)."
            if len(errors) > 1
            else ""
        )
        raise DataError(errors[0].message + extra, errors[0].hint)

    # ------------------------------------------------------------------ quantization
    def submit_quantize(self, ref: ModelRef, req: QuantizeRequest) -> str:
        """Check the request and the data's headers against the model now (specific errors before anything runs,
        without reading the arrays), then queue calibration; NaN/Inf in the data fail the job, naming file and
        input."""
        from .quantize_task import check_data
        from .spec import refuse_requantizing

        req.quantize_spec()  # validates calibrator, precision, percentile
        refuse_requantizing(self.summary(ref))
        if not req.reuse_ranges:
            check_data(_input_specs(self.summary(ref)), req)
        return self.jobs.submit(
            "quantize",
            {"model_path": str(ref.path), "request": req.to_dict()},
            title=f"{ref.name}: {req.precision.upper()} Q/DQ, {req.calibrator}"
            + (" (random data)" if req.synthetic else ""),
            model_digest=ref.digest,
            model_name=ref.name,
        )

    def submit_score(self, ref: ModelRef, req: QuantizeRequest) -> str:
        """Like :meth:`submit_quantize` (headers only, here), for calibration and test data; queue the scoring."""
        from .quantize_task import check_data
        from .spec import refuse_requantizing

        refuse_requantizing(self.summary(ref))
        check_data(_input_specs(self.summary(ref)), req)
        return self.jobs.submit(
            "score",
            {"model_path": str(ref.path), "request": req.to_dict()},
            title=f"{ref.name}: score calibrators",
            model_digest=ref.digest,
            model_name=ref.name,
        )

    # ------------------------------------------------------------------ calibration images
    def image_input(self, ref: ModelRef) -> InputSpec:
        """The model's one image input (rank 4), from the stored summary (the model is not parsed again);
        DataError when the model has none (several inputs, or not an image batch)."""
        from .calibration_images import image_input

        return image_input(_input_specs(self.summary(ref)))

    def submit_images(
        self,
        ref: ModelRef,
        source: str | os.PathLike[str],
        preprocess: ImagePreprocess,
        roots: Sequence[str | os.PathLike[str]] | None,
    ) -> str:
        """Queue reading images into an .npz for the model's image input (an ``images`` job); its id.

        ``source``: with ``roots``, a folder of images or an image archive on the server below one of them
        (relative paths below the first); without, an archive this workspace stored (:meth:`store_data`). Checked
        before any job, with a specific error: the model has an image input, the source is allowed and exists,
        the preprocessing fits the input, a folder lists enough images (names, sizes and times only: nothing is
        opened or decoded here). A finished (or still running) job for the same input, source content and
        preprocessing is reused, so asking again costs nothing; a failed or cancelled one is tried again."""
        request, allowed, path = self._images_request(ref, source, preprocess, roots)
        identity = _images_identity(path, allowed)
        for job in self.jobs.list(kind="images"):  # newest first
            if job.payload.get("request") != request or job.payload.get("identity") != identity:
                continue
            if job.active or (job.status == SUCCEEDED and Path(str(job.result.get("npz", ""))).is_file()):
                return job.id
        label = _stored_name(path.name) if allowed is None else path.name
        return self.jobs.submit(
            "images",
            {
                "model_path": str(ref.path),
                "request": request,
                "identity": identity,
                "roots": None if allowed is None else [str(r) for r in allowed],
                "out_dir": str(self.ws.root / "data"),
                "work_dir": str(self.ws.tmp_dir),
            },
            title=f"Images from '{label}' for input '{request['input'][0]}'",
            model_digest=ref.digest,
            model_name=ref.name,
        )

    def images_job(
        self,
        job_id: str | None,
        ref: ModelRef,
        source: str | os.PathLike[str],
        preprocess: ImagePreprocess,
        roots: Sequence[str | os.PathLike[str]] | None,
    ) -> Job | None:
        """The images job ``job_id`` when it answers this request (same model input, source and preprocessing),
        else None. Checks the request as :meth:`submit_images` does, without listing or reading any file, so a
        page can call it on every rerun and show what is wrong with the request until it is fixed."""
        request, _, _ = self._images_request(ref, source, preprocess, roots)
        if not job_id:
            return None
        try:
            job = self.jobs.get(job_id)
        except JobError:
            return None
        return job if job.kind == "images" and job.payload.get("request") == request else None

    def _images_request(
        self,
        ref: ModelRef,
        source: str | os.PathLike[str],
        preprocess: ImagePreprocess,
        roots: Sequence[str | os.PathLike[str]] | None,
    ) -> tuple[dict[str, Any], list[Path] | None, Path]:
        """(the request as JSON, the allowed roots or None for a stored upload, the source's real path)."""
        from . import calibration_images as ci

        spec = self.image_input(ref)
        if roots is None:
            allowed, path = None, self._stored_archive(source)
        else:
            allowed = [Path(r) for r in roots]
            path = ci.resolve_server_source(source, allowed)
        ci.check_against_input(spec, preprocess)
        request = {
            "input": [spec.name, spec.dtype, list(spec.shape or ())],
            "source": str(path),
            "preprocess": preprocess.to_dict(),
            "max_images": ci.DEFAULT_MAX_IMAGES,
        }
        return json.loads(json.dumps(request)), allowed, path

    def _stored_archive(self, source: str | os.PathLike[str]) -> Path:
        """An image archive kept by :meth:`store_data` in this workspace's data folder (uploads only: anything
        else on the server is read through the allowed roots)."""
        from .archives import is_archive

        folder = (self.ws.root / "data").resolve()
        path = Path(source)
        name = _stored_name(path.name)
        if path.is_symlink() or path.resolve().parent != folder:
            raise DataError(
                f"'{name}' is not an image archive stored in this workspace.",
                "Upload the archive, or choose a folder on the server.",
            )
        if not is_archive(path.name):
            raise DataError(
                f"'{name}' is not an image archive.", "Upload a .zip, .tar or .tar.gz of the images."
            )
        if not path.is_file():
            raise DataError(
                f"The uploaded archive '{name}' is no longer in the workspace.", "Upload it again."
            )
        return path.resolve()

    def jobs_of(self, kind: str, ref: ModelRef | None = None, status: str | None = None) -> list[Job]:
        """Jobs of one kind, newest first, optionally of one model and in one status."""
        return [
            j
            for j in self.jobs.list(kind=kind)
            if (ref is None or j.model_digest == ref.digest) and (status is None or j.status == status)
        ]

    def start_demo(self) -> tuple[ModelRef, str]:
        """Open the digits sample and run the whole flow on it as one demo job: (model, demo job id). While a demo
        runs in this workspace, that one is returned instead of starting another."""
        from .demo import KIND, SAMPLE, submit_demo
        from .samples import get_sample

        ref = self.import_path(get_sample(SAMPLE).path)
        # One demo at a time per workspace: a second start (another click, another session) joins the running one.
        with open(self.ws.jobs_dir / ".demo.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            running = [j for j in self.jobs.list(KIND) if j.active]
            if running:
                return self.model(running[-1].model_digest), running[-1].id
            return ref, submit_demo(self.jobs, ref)

    def rebuild_keeping_float(self, build_job_id: str, nodes: Sequence[str]) -> str:
        """The same build again with ``nodes`` (names or op types) kept in higher precision: out of quantization
        for INT8/FP8 builds, in FP32 for FP16 builds. One click from the accuracy page's culprits to a new
        engine."""
        job = self.finished_build(build_job_id)
        spec = BuildSpec.from_dict(job.payload["spec"])
        calib = spec.calibration
        ops = set(self.summary(self.model(job.model_digest)).op_histogram)
        if spec.precision == "fp16":
            from .model import node_names

            known = set(node_names(self.model(job.model_digest).path))
            unknown = [n for n in nodes if n not in ops and n not in known]
            if unknown:
                raise SpecError(
                    f"The model has no node or op type {', '.join(repr(n) for n in unknown)} to keep in FP32.",
                    "Take the names from the culprit finder.",
                )
            spec = spec.with_(
                keep_fp32_nodes=tuple(dict.fromkeys([*spec.keep_fp32_nodes, *(n for n in nodes if n not in ops)])),
                keep_fp32_op_types=tuple(
                    dict.fromkeys([*spec.keep_fp32_op_types, *(n for n in nodes if n in ops)])
                ),
            )
            return self.submit_build(self.model(job.model_digest), spec)
        if spec.precision in ("int8", "fp8") and calib is None:  # the model's own Q/DQ nodes, built as they are
            raise JobError(
                f"Build {build_job_id} built the model's own Q/DQ nodes: the model is explicitly quantized, so "
                "which layers are quantized is decided by the file, not by a calibration the workbench ran.",
                "Quantize the FP32 model it was made from on the Quantize page, keeping these nodes out, or remove "
                "their Q/DQ nodes from the model.",
            )
        if spec.precision not in ("int8", "fp8") or calib is None:
            raise JobError(
                f"Build {build_job_id} is {spec.precision.upper()}, not a quantized build (nor FP16).",
                "Keeping layers in higher precision applies to FP16, INT8 and FP8 builds.",
            )
        spec = spec.with_(
            calibration=dataclasses.replace(
                calib,
                ranges_path=None,
                exclude_nodes=tuple(
                    dict.fromkeys([*calib.exclude_nodes, *(n for n in nodes if n not in ops)])
                ),
                exclude_op_types=tuple(
                    dict.fromkeys([*calib.exclude_op_types, *(n for n in nodes if n in ops)])
                ),
            )
        )
        return self.submit_build(self.model(job.model_digest), spec)

    def store_data(self, data: IO[bytes] | bytes, filename: str) -> Path:
        return store_data_file(self.ws, data, filename)

    def builds(self) -> list[Job]:
        return self.jobs.list(kind="build")

    def finished_build(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job.kind != "build" or job.status != SUCCEEDED:
            raise JobError(f"Job {job_id} is not a finished build ({job.kind}, {job.status}).")
        return job

    def plan_path(self, job_id: str) -> Path:
        return self.jobs.artifact(self.finished_build(job_id).id, PLAN)

    def bundle_path(self, job_id: str) -> Path:
        """The finished build's zip bundle (plan, spec, layers, log, report, commands, converted network), made on
        first request and kept."""
        from .reports.build_report import BUNDLE, write_bundle

        job_dir = self.jobs.job_dir(self.finished_build(job_id).id)
        out = job_dir / BUNDLE
        return out if out.is_file() else write_bundle(job_dir)

    def build_report_json(self, job_id: str) -> str:
        from .reports.build_report import summary_json

        job = self.finished_build(job_id)
        spec = BuildSpec.from_dict(job.payload["spec"])
        layers = None
        try:
            from .layers import load_layers

            layers = load_layers(self.jobs.artifact(job_id, "layers.json"))
        except (JobError, ImportError):
            layers = None
        return summary_json(job.to_dict(), spec, job.result, layers)


def _input_specs(summary: ModelSummary) -> list[Any]:
    """The model's inputs as calibration_data.InputSpec, from the stored summary: no re-parse of the model (the
    summary lists the same real inputs, initializers left out, with the same dtype and dim conventions)."""
    from .calibration_data import InputSpec

    return [InputSpec(t.name, t.dtype, t.shape) for t in summary.inputs]


def _stored_name(name: str) -> str:
    """An uploaded file's own name, without the content digest :func:`store_data_file` puts in front."""
    return re.sub(r"^[0-9a-f]{24}-", "", name)


def _images_identity(path: Path, allowed: Sequence[Path] | None) -> str:
    """What the images of ``path`` are, cheaply, for reusing a finished job: a folder's listing (names, sizes,
    modification times; refused when it has too few images, links leading outside the roots, ...), or an
    archive's file identity (device, inode, size, modification time; uploads are also named by content)."""
    from . import calibration_images as ci

    if path.is_dir():
        listing = ci.list_images(path, allowed, path.name)
        if len(listing.files) < ci.DEFAULT_MIN_IMAGES:
            other = f" (and {len(listing.skipped)} other file(s), skipped)" if listing.skipped else ""
            raise DataError(
                f"'{path.name}' holds {len(listing.files)} image(s){other}; calibration needs at least "
                f"{ci.DEFAULT_MIN_IMAGES}.",
                f"Add representative images ({', '.join(sorted(ci.IMAGE_SUFFIXES))}); a few hundred are typical.",
            )
        return "folder:" + listing.digest()
    st = path.stat()
    return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def store_data_file(ws: Workspace, data: IO[bytes] | bytes, filename: str, max_bytes: int = 2 << 30) -> Path:
    """Keep an uploaded data file (.npz, or an image archive: .zip/.tar/.tar.gz) in the workspace, named by content
    digest; never executed, unpickled or unpacked here."""
    import hashlib
    import uuid

    from .archives import is_archive
    from .model import safe_filename

    name = safe_filename(filename, "data.npz")
    if not (name.lower().endswith(".npz") or is_archive(name)):
        raise ModelError(
            f"'{filename}' is neither an .npz file nor an image archive.",
            "Save the arrays with numpy.savez (one per input), or pack images into a .zip or .tar.gz.",
        )
    folder = ws.root / "data"
    folder.mkdir(exist_ok=True)
    tmp = ws.tmp_dir / f"data-{uuid.uuid4().hex}.npz"
    h = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            chunks = [data] if isinstance(data, bytes | bytearray) else iter(lambda: data.read(1 << 20), b"")
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ModelError(f"'{filename}' is over the {max_bytes >> 20} MiB limit for data files.")
                h.update(chunk)
                out.write(chunk)
        if size == 0:
            raise ModelError(f"'{filename}' is empty.", "Upload it again.")
        final = folder / f"{h.hexdigest()[:24]}-{name}"
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)
