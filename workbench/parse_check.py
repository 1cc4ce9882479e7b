"""Does the backend's ONNX parser accept this model? Found out by really parsing it (in a worker process)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .build import select_backend


@dataclass(frozen=True)
class ParserIssue:
    node: str
    op: str
    message: str


@dataclass(frozen=True)
class ParseResult:
    backend: str
    backend_version: str
    ok: bool
    network_layers: int
    issues: tuple[ParserIssue, ...] = field(default_factory=tuple)
    log: tuple[str, ...] = ()  # what the backend logged while parsing ("[E] …", "[W] …"): for the job log

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParseResult:
        data = dict(data)
        data["issues"] = tuple(ParserIssue(**i) for i in data.get("issues", ()))
        data["log"] = tuple(data.get("log", ()))
        return cls(**data)


def parse_model(model_path: Path, backend: str) -> ParseResult:
    """Parse with the backend's OnnxParser; collect every parser error with its node. Worker-process only (or a
    one-shot CLI process, which captures the output). The backend's log goes to Polygraphy's logger (the job log)
    and its errors and warnings also come back in ``log``."""
    select_backend(backend)
    from polygraphy.backend.trt import util as trt_util
    from polygraphy.mod.trt_importer import lazy_import_trt

    from .backend_log import records, without_harmless

    trt = lazy_import_trt()
    rec = records(trt)
    start = len(rec.lines)
    logger = trt_util.get_trt_logger()  # TensorRT's process-wide logger anyway (see workbench.backend_log)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = bool(parser.parse_from_file(str(model_path)))
    issues = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        issues.append(ParserIssue(err.node_name() or f"node #{err.node()}", err.node_operator(),
                                  without_harmless(err.desc())))
    return ParseResult(backend, trt.__version__, ok and not issues, int(network.num_layers), tuple(issues),
                       tuple(rec.lines[start:]))


def write_cache(path: Path, result: ParseResult) -> None:
    """Write ``result`` to ``path`` atomically: a reader sees the whole result or none (a worker killed mid-write
    leaves at most a stray ``.part`` file, never a half cache)."""
    part = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
    try:
        part.write_text(json.dumps(result.to_dict()))
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def read_cache(path: Path) -> ParseResult | None:
    """The cached result at ``path``; None when there is none, or it is unreadable or not a result (then it is
    treated as missing and the check runs again)."""
    try:
        return ParseResult.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def run_parse_task(job: Any, job_dir: Path, reporter: Any) -> dict[str, Any]:
    result = parse_model(Path(job.payload["model_path"]), job.payload["backend"])
    cache = job.payload.get("cache_path")
    if cache:
        write_cache(Path(cache), result)
    for issue in result.issues:
        reporter.log(f"Parser rejects node '{issue.node}' ({issue.op}): {issue.message}")
    return result.to_dict()
