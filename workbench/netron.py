"""Netron's web viewer, served from the app's own origin, made safe for an offline lab server.

The ``netron`` package ships its whole viewer as static files. :func:`prepare_netron` copies them into the
app's static folder and patches the copy so that it never contacts the internet: no IP lookup and no
cookie-consent dialog, no analytics beacons, no "update to the newest version" lock-out after 180 days, no
GitHub gist downloads, models only from the same origin, and a Content-Security-Policy that lets the browser
itself refuse any other connection. Every patch matches an exact anchor in Netron's source; when an anchor
is missing or no longer unique (Netron changed) the copy is refused with a
:class:`~workbench.errors.BackendUnavailable` naming the Netron version, the file and the anchor, instead of
serving a viewer that half works and half phones home.

The patch also adds ``workbench.js``: after the model has loaded it selects (highlights and scrolls to) the
nodes named in the fragment ``#select=<name>,<name>`` (each name percent-encoded), again on every
``hashchange``, and on ``window.postMessage({type: 'workbench.select', nodes: [...]})`` from the same origin.
It reports what it found as ``data-workbench-selected`` / ``data-workbench-missing`` on ``<body>`` and
posts ``{type: 'workbench.selected', found, missing}`` to the parent frame.

:func:`publish_model` puts a model (and its external-data files) under an unguessable folder of the static
root, because Streamlit's static serving has no access control; publishing the same file again reuses its
folder. Publications are shared by every session of the server: one published or reused in the last
:data:`GRACE_SECONDS` is never removed (a page may still be loading or showing it); older ones are removed,
least recently used first, beyond the few most recent and beyond a cap on the bytes they hold on disk.
:func:`viewer_url` builds the address of the viewer showing a published model.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from .errors import BackendUnavailable, ModelError, WorkbenchError
from .model import safe_filename

log = logging.getLogger(__name__)

KNOWN_VERSION = "9.3.3"  # the Netron release the patches below were written against
NETRON_BASE = "/app/static/netron/index.html"
STATIC_URL_PREFIX = "/app/static"
MAX_STATIC_BYTES = 200 * 1024 * 1024  # Streamlit's static serving answers 404 for bigger files
MARKER = ".workbench-netron.json"
PUBLISH_DIR = "m"
GRACE_SECONDS = 15 * 60  # a model published or reused this recently is never pruned: a page may be showing it
# Streamlit (1.67) stops serving static/ at start-up when the folder passes 1 GiB by apparent size (each path
# counted in full, hard links included): the publications, counted the same way, stay under what is left of it.
STATIC_FOLDER_LIMIT = 2**30
STATIC_MARGIN = 64 * 2**20
MAX_PUBLICATIONS_FACTOR = 4  # never more than keep x this many publications, even within the grace period
_IDENTITY = ".source"  # in each publication: which file it was made from (hashed)
SELECT_SCRIPT = "workbench.js"

_TOKEN_BYTES = 24  # 192 bits; token_urlsafe gives 32 characters
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
_STALE_TMP_SECONDS = 3600
_VERSION_RE = re.compile(r'<meta name="version" content="([^"]*)">')
# Left in a prepared copy, any of these means something still talks to the internet.
_FORBIDDEN = ("ipinfo.io", "analytics.google.com", "google-analytics.com", "googletagmanager", "sendBeacon")


@dataclass(frozen=True)
class _Patch:
    file: str
    anchor: str
    replacement: str
    why: str


_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self' data: blob:; worker-src 'self' blob:; frame-src 'none'; "
    "object-src 'none'; form-action 'none'; base-uri 'self'"
)

_PATCHES: tuple[_Patch, ...] = (
    _Patch(
        "browser.js",
        "        await age();\n        await consent();\n        await telemetry();\n        await capabilities();\n",
        "        // workbench: offline copy: no expiry lock-out, no IP lookup or consent dialog, no telemetry.\n",
        "start-up sequence (expiry check, IP lookup + consent dialog, telemetry)",
    ),
    _Patch(
        "browser.js",
        "if (days > 180) {",
        "if (false) { // workbench: an offline copy never expires",
        "expiry lock-out",
    ),
    _Patch(
        "browser.js",
        "await this._fetch('https://ipinfo.io/json', ",
        "await this._fetch('data:application/json,{}', ",
        "IP lookup",
    ),
    _Patch(
        "browser.js",
        "packaged: this._meta.version && this._meta.version[0] !== '0.0.0',",
        "packaged: false, // workbench: never report errors or usage, never open issue links",
        "telemetry switch",
    ),
    _Patch(
        "browser.js",
        "const gist = params.get('gist');",
        "const gist = null; // workbench: no GitHub gist downloads",
        "gist download",
    ),
    _Patch(
        "browser.js",
        "const hash = window.location.hash ? window.location.hash.replace(/^#/, '') : '';",
        "const hash = window.location.hash && !/^#select=/.test(window.location.hash) ? "
        "window.location.hash.replace(/^#/, '') : ''; // workbench: #select= is not a model URL",
        "fragment read as a model URL",
    ),
    _Patch(
        "browser.js",
        "if (this._view.accept(identifier || location) && location.indexOf('*') === -1) {",
        "if (this._view.accept(identifier || location) && location.indexOf('*') === -1 && "
        "new window.URL(location, window.location.href).origin === window.location.origin) { "
        "// workbench: same-origin models only",
        "model URLs from other origins",
    ),
    _Patch(
        "base.js",
        "const url = `https://analytics.google.com/g/collect?${this._cache}`;",
        "// workbench: analytics beacon removed",
        "analytics endpoint",
    ),
    _Patch(
        "base.js",
        "this._navigator.sendBeacon(url, body);",
        "// workbench: no beacon",
        "analytics beacon",
    ),
    _Patch(
        "index.html",
        """<meta http-equiv="Content-Security-Policy" content="script-src 'self'; frame-src 'none'">""",
        f"""<meta http-equiv="Content-Security-Policy" content="{_CSP}">""",
        "Content-Security-Policy (the browser refuses any other origin)",
    ),
    _Patch(
        "index.html",
        '<script type="text/javascript" src="index.js"></script>',
        '<script type="text/javascript" src="index.js"></script>\n'
        f'<script type="text/javascript" src="{SELECT_SCRIPT}"></script>',
        "node-selection script",
    ),
    # Streamlit gzips every /app/static response on the fly when the browser accepts gzip (a 100 MB model:
    # seconds of server CPU per view, every view), but never a partial (206) response: ask for the model and
    # its external data as the range "bytes=0-" (the whole file, served as it is from disk), and take 206.
    _Patch(
        "browser.js",
        "        return this._request(url, headers, encoding, callback, timeout);",
        "        if (!encoding && !url.startsWith('data:')) { // workbench: whole file, uncompressed\n"
        "            headers = Object.assign({ Range: 'bytes=0-' }, headers || {});\n"
        "        }\n"
        "        return this._request(url, headers, encoding, callback, timeout);",
        "model download without on-the-fly gzip (a whole-file range request)",
    ),
    _Patch(
        "browser.js",
        "if (request.status === 200) {",
        "if (request.status === 200 || request.status === 206) { // workbench: 206 answers bytes=0-",
        "model download without on-the-fly gzip (206 accepted)",
    ),
)

_SELECT_JS = r"""// Added by TensorRT Workbench (workbench/netron.py): select nodes from the app.
// #select=<name>,<name> (each name percent-encoded), on hashchange, and on
// window.postMessage({type: 'workbench.select', nodes: [...]}) from the same origin.
(function () {
    'use strict';
    var wanted = null;
    var timer = null;
    var deadline = 0;
    var report = function (found, missing) {
        document.body.setAttribute('data-workbench-selected', found.join(','));
        document.body.setAttribute('data-workbench-missing', missing.join(','));
        if (window.parent && window.parent !== window) {
            try {
                window.parent.postMessage({ type: 'workbench.selected', found: found, missing: missing }, window.location.origin);
            } catch (e) {
                // the parent is another origin: nothing to tell it
            }
        }
    };
    var fromHash = function () {
        var match = /^#select=(.*)$/.exec(window.location.hash || '');
        if (!match) {
            return null;
        }
        return match[1].split(',').filter(function (s) { return s.length > 0; }).map(function (s) {
            try {
                return decodeURIComponent(s);
            } catch (e) {
                return s;
            }
        });
    };
    var apply = function () {
        var view = window.__view__;
        var target = view ? view.target : null;
        var graph = view ? view.activeTarget : null;
        if (!target || !graph || !document.body.classList.contains('default') ||
            !document.querySelector('#canvas .graph-node')) {
            return false; // the model is not drawn yet
        }
        var names = wanted || [];
        var set = new Set(names);
        var nodes = (graph.nodes || []).filter(function (node) { return node && set.has(node.name); });
        var found = new Set(nodes.map(function (node) { return node.name; }));
        if (nodes.length > 0) {
            var elements = target.select(nodes);
            target.scrollTo(elements);
        } else {
            target.select(null);
        }
        report(Array.from(found), names.filter(function (name) { return !found.has(name); }));
        return true;
    };
    var tick = function () {
        timer = null;
        var done = false;
        try {
            done = apply();
        } catch (e) {
            done = true;
            document.body.setAttribute('data-workbench-error', String(e && e.message ? e.message : e));
        }
        if (!done && Date.now() < deadline) {
            timer = window.setTimeout(tick, 100);
        }
    };
    var request = function (names) {
        wanted = names;
        deadline = Date.now() + 300000;
        if (timer !== null) {
            window.clearTimeout(timer);
        }
        timer = window.setTimeout(tick, 0);
    };
    window.addEventListener('hashchange', function () {
        var names = fromHash();
        if (names !== null) {
            request(names);
        }
    });
    window.addEventListener('message', function (event) {
        var data = event.data;
        if (event.origin === window.location.origin && data && data.type === 'workbench.select' &&
            Array.isArray(data.nodes)) {
            request(data.nodes.map(String));
        }
    });
    var initial = fromHash();
    if (initial !== null) {
        request(initial);
    }
})();
"""


# ---------------------------------------------------------------------------------------------- prepare


def netron_source() -> Path:
    """The installed ``netron`` package folder (its web viewer's static files), without importing it."""
    spec = importlib.util.find_spec("netron")
    if spec is None or not spec.origin:
        raise BackendUnavailable(
            "Netron is not installed, so the graph view is unavailable.", "Install it: pip install netron"
        )
    return Path(spec.origin).resolve().parent


def patch_set_digest() -> str:
    """A digest of every patch and of the injected script; part of the marker of a prepared copy."""
    h = hashlib.sha256()
    for p in _PATCHES:
        for part in (p.file, p.anchor, p.replacement):
            h.update(part.encode())
            h.update(b"\0")
    h.update(_SELECT_JS.encode())
    h.update(repr(_FORBIDDEN).encode())
    return h.hexdigest()


def _marker(source: Path, version: str) -> dict[str, str]:
    return {
        "netron_version": version,
        "patch_set": patch_set_digest(),
        "source": hashlib.sha256(str(source).encode()).hexdigest()[:16],
    }


def _read_marker(dest: Path) -> dict[str, str] | None:
    try:
        return json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _netron_version(source: Path) -> str:
    try:
        text = (source / "index.html").read_text(encoding="utf-8")
    except OSError as err:
        raise BackendUnavailable(
            f"Netron's viewer is incomplete: cannot read {source / 'index.html'} ({err.strerror}).",
            "Reinstall Netron: pip install --force-reinstall netron",
        ) from err
    match = _VERSION_RE.search(text)
    return match.group(1) if match else "unknown"


def _patched_files(source: Path, version: str) -> dict[str, str]:
    """Apply every patch in memory; raise naming each file and anchor that is missing or not unique."""
    texts: dict[str, str] = {}
    problems: list[str] = []
    for patch in _PATCHES:
        if patch.file not in texts:
            try:
                texts[patch.file] = (source / patch.file).read_text(encoding="utf-8")
            except OSError as err:
                problems.append(f"{patch.file}: cannot read it ({err.strerror})")
                texts[patch.file] = ""
                continue
        count = texts[patch.file].count(patch.anchor)
        if count != 1:
            how = "not found" if count == 0 else f"found {count} times (must be unique)"
            problems.append(f"{patch.file}: anchor for the {patch.why} {how}: {patch.anchor!r}")
            continue
        texts[patch.file] = texts[patch.file].replace(patch.anchor, patch.replacement)
    if problems:
        raise BackendUnavailable(
            f"Cannot make Netron {version} (in {source}) safe to serve offline: its code is not what the "
            "workbench patches expect, so the graph view is off:\n- " + "\n- ".join(problems),
            f"A Netron update changed these places. Install the Netron version the workbench knows "
            f"(pip install 'netron=={KNOWN_VERSION}') or update the patches in workbench/netron.py.",
        )
    texts[SELECT_SCRIPT] = _SELECT_JS
    return texts


def _copy_tree(source: Path, target: Path, skip: set[str]) -> None:
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        rel = Path(folder).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.endswith((".py", ".pyc", ".pyo")) or (rel / name).as_posix() in skip:
                continue
            shutil.copyfile(Path(folder) / name, target / rel / name)


def _check_offline(target: Path, version: str) -> None:
    """Post-condition: no script or page of the copy still names an internet endpoint we removed."""
    found = []
    for path in sorted(target.rglob("*")):
        if path.suffix in (".js", ".html", ".css") and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.relative_to(target)}: {token!r}" for token in _FORBIDDEN if token in text]
    if found:
        raise BackendUnavailable(
            f"Netron {version}'s copy would still contact the internet after patching: "
            + "; ".join(found)
            + ".",
            f"A Netron update added these; update the patches in workbench/netron.py or install "
            f"netron=={KNOWN_VERSION}.",
        )


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[bool]:
    """An exclusive advisory lock (POSIX); yields whether it is really held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare_netron(dest: Path, source: Path | None = None) -> Path:
    """Copy Netron's web viewer into ``dest`` (e.g. ``<app>/static/netron``), patched for offline use.

    Idempotent and cheap when ``dest`` already holds a copy of the same Netron version made with the same
    patch set (one small marker file is read). Otherwise the copy is prepared in a temporary sibling folder
    and renamed into place, under a file lock, so concurrent app starts never see a half-written viewer.
    ``source`` is the Netron package folder (default: the installed one). Raises
    :class:`~workbench.errors.BackendUnavailable` naming the Netron version, the file and the anchor when
    Netron's code does not match a patch; an existing copy is then left as it was.
    """
    dest = Path(dest)
    source = Path(source).resolve() if source is not None else netron_source()
    version = _netron_version(source)
    want = _marker(source, version)
    if _read_marker(dest) == want:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest.parent / f".{dest.name}.lock") as exclusive:
        if _read_marker(dest) == want:  # another process finished while we waited for the lock
            return dest
        if exclusive:  # leftovers of crashed runs: nobody else can be writing them now
            for stale in dest.parent.glob(f".{dest.name}.*-*"):
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        texts = _patched_files(source, version)  # raises before anything is copied
        tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex}"
        try:
            _copy_tree(source, tmp, skip=set(texts))
            for name, text in texts.items():
                (tmp / name).write_text(text, encoding="utf-8")
            _check_offline(tmp, version)
            (tmp / MARKER).write_text(json.dumps(want, indent=1))
            if dest.exists() or dest.is_symlink():
                old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex}"
                os.rename(dest, old)
                os.rename(tmp, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("prepared Netron %s in %s (%.2f s)", version, dest, time.monotonic() - started)
    return dest


# ---------------------------------------------------------------------------------------------- publish


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f}".removesuffix(".0")


def _amount(n: int) -> str:
    """Bytes for a message: small amounts are not rounded to "0 MiB"."""
    return f"{_mib(n)} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB".replace(".0 ", " ")


def _external_files(model_path: Path) -> tuple[str, ...]:
    """Relative paths of the external-data files an ONNX model references (validated, never read)."""
    if model_path.suffix.lower() != ".onnx":
        return ()
    from .model import check_external_data, load_proto

    _, files = check_external_data(load_proto(model_path), model_path)
    return files


def _safe_relative(location: str) -> PurePosixPath | None:
    pure = PurePosixPath(location)
    if (
        not location
        or "\\" in location
        or any(not c.isprintable() for c in location)
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in location.split("/"))
    ):
        return None
    return pure


def _linked(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` to ``dst``; False when that is not possible here (another file system, no links)."""
    try:
        os.link(src, dst)
    except OSError:
        return False
    return True


def _external_data(model_path: Path) -> tuple[list[tuple[Path, str, str]], int]:
    """(source, location in the model, published name) of each external-data file to publish next to the
    model, and their total size.

    Published under neutral names only (``0.bin``, ``1.bin``, ...), whatever the model calls them: static
    serving picks the content type from the suffix, so a file named ``pwn.html`` or ``x.svg`` would be a page
    running script on the app's origin. The published copy of the model points at the neutral names.
    Never hard-linked: onnx refuses to read external data that has more than one link ("potential hardlink
    attack"), so a link would break the workspace's own model. Netron reads these files only to show a
    tensor's values and draws the graph without them.
    """
    chosen: list[tuple[Path, str, str]] = []
    total = 0
    for location in _external_files(model_path):
        if _safe_relative(location) is None:
            log.warning("not publishing external data %r of %s: unsafe name", location, model_path.name)
            continue
        src = model_path.parent / location
        total += src.stat().st_size
        chosen.append((src, location, f"{len(chosen)}.bin"))
    return chosen, total


def _write_renamed(model_path: Path, renames: dict[str, str], dst: Path) -> None:
    """Write ``model_path`` to ``dst`` with its external-data locations renamed (``renames``; a location not
    in it, left out of the publication, becomes a name that is not there)."""
    from onnx import TensorProto

    from .model import _iter_graphs, load_proto

    proto = load_proto(model_path)
    for graph in _iter_graphs(proto.graph):
        tensors = list(graph.initializer) + [a.t for n in graph.node for a in n.attribute if a.HasField("t")]
        for t in tensors:
            if t.data_location == TensorProto.EXTERNAL:
                for entry in t.external_data:
                    if entry.key == "location":
                        entry.value = renames.get(entry.value, "unpublished.bin")
    dst.write_bytes(proto.SerializeToString())


def _published_name(model_path: Path) -> str:
    """The model's published file name: safe, and always ``.onnx`` (never a suffix served as a page)."""
    name = safe_filename(model_path.name)
    return name if name.lower().endswith(".onnx") else f"{Path(name).stem or 'model'}.onnx"


def _identity(model_path: Path, st: os.stat_result) -> str:
    """Which file a publication was made from: path, inode, size and modification time, hashed.

    Kept in the publication folder (only someone who knows the token can read it), hashed so it does not
    reveal the server's paths.
    """
    key = f"{model_path.resolve()}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()


def _lock_path(root: Path) -> Path:
    """The lock under which publications are pruned, next to (not inside) the served folder."""
    return root.parent / f".{root.name}.lock"


def _publications(root: Path) -> list[tuple[int, str, Path]]:
    """(mtime, token, folder) of every publication, oldest first; the folder's mtime is its last use."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in root.iterdir():
            if _TOKEN_RE.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    found.append((entry.stat().st_mtime_ns, entry.name, entry))
    return sorted(found)


def _touch_newest(folder: Path, newest: int) -> None:
    """Mark ``folder`` as the most recently used publication, even within the file system's clock tick."""
    stamp = max(time.time_ns(), newest + 1)
    os.utime(folder, ns=(stamp, stamp))


def _apparent_bytes(folder: Path) -> int:
    """The size of ``folder`` as Streamlit measures its static folder: every file's size, a hard link in full."""
    total = 0
    for parent, _, files in os.walk(folder):
        for file in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, file)).st_size
    return total


def default_max_total_bytes(static_root: Path) -> int:
    """What the publications may hold: Streamlit's 1 GiB static-folder limit, less the rest of the static
    folder (the Netron viewer, ~29 MiB) and a margin."""
    rest = 0
    with contextlib.suppress(OSError):
        for entry in Path(static_root).iterdir():
            if entry.name != PUBLISH_DIR:
                rest += _apparent_bytes(entry) if entry.is_dir() else entry.lstat().st_size
    return max(0, STATIC_FOLDER_LIMIT - STATIC_MARGIN - rest)


class _DiskUse:
    """What publication folders weigh, as Streamlit counts its static folder: apparent sizes, hard links in
    full (a model linked from the workspace costs no disk, but it counts against the 1 GiB all the same)."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self._sizes = {folder: _apparent_bytes(folder) for folder in folders}
        self.bytes = sum(self._sizes.values())

    def drop(self, folder: Path) -> None:
        self.bytes -= self._sizes.pop(folder, 0)


def prune_published(static_root: Path) -> int:
    """Remove every publication (at server start-up: no page shows one yet, and a browser still open reruns its
    page, which publishes its model again). Run before Streamlit measures the static folder. Returns how many."""
    root = Path(static_root) / PUBLISH_DIR
    removed: list[Path] = []
    with contextlib.suppress(FileNotFoundError), _locked(_lock_path(root)):
        for entry in root.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                trash = root / f".trash-{uuid.uuid4().hex}"
                with contextlib.suppress(OSError):
                    os.rename(entry, trash)
                    removed.append(trash)
    for trash in removed:
        shutil.rmtree(trash, ignore_errors=True)
    return len(removed)


def _prune(root: Path, keep: int, grace_seconds: float, max_bytes: int, incoming: int = 0,
           hard_cap: int | None = None, making: Path | None = None) -> int:
    """Stop serving old publications; return the bytes that the remaining ones (and those being made) hold.

    A publication published or reused in the last ``grace_seconds`` is never removed: a page of some
    session may be loading it, or may make Netron fetch it again. Of the older ones, oldest first, those
    beyond the ``keep`` most recent publications are removed, then more while all would hold over
    ``max_bytes`` with ``incoming`` bytes added. The choice is made, and the chosen folders renamed away,
    under a lock that :func:`_reuse` also takes for an old publication, so a reuse never returns a folder
    that is being removed; the deleting happens after the lock is released.
    """
    removed: list[Path] = []
    with _locked(_lock_path(root)):
        now = time.time_ns()
        pubs = _publications(root)
        disk = _DiskUse([folder for *_, folder in pubs]  # and other publications being made (not ours: incoming)
                        + [p for p in root.glob(".tmp-*") if p.is_dir() and p != making])
        surplus = len(pubs) - keep
        over_cap = len(pubs) - (hard_cap if hard_cap is not None else len(pubs))
        for mtime, token, folder in pubs:  # oldest first
            if over_cap <= 0 and (now - mtime < grace_seconds * 1e9
                                  or (surplus <= 0 and disk.bytes + incoming <= max_bytes)):
                break
            trash = root / f".trash-{token}"
            try:
                os.rename(folder, trash)
            except OSError:  # removed by a process that holds no lock (not POSIX)
                continue
            removed.append(trash)
            disk.drop(folder)
            surplus -= 1
            over_cap -= 1
        held = disk.bytes
    for trash in removed:
        shutil.rmtree(trash, ignore_errors=True)
    if removed:
        log.info("stopped serving %d published models for the graph view", len(removed))
    now_s = time.time()
    for tmp in [*root.glob(".tmp-*"), *root.glob(".trash-*")]:  # left by crashed processes
        with contextlib.suppress(OSError):
            if tmp.name.startswith(".trash-") or now_s - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
    return held


def _reuse(root: Path, name: str, identity: str, grace_seconds: float) -> Path | None:
    """The publication of the same file under the same name, if one is still there; marked as just used.

    Cheap: a listing, one small read per publication until the match, one ``utime``. The lock of
    :func:`_prune` is taken only for a publication more than half the grace period old, which a prune
    might be removing right now; a fresher one cannot be pruned for minutes yet.
    """
    pubs = _publications(root)
    newest = pubs[-1][0] if pubs else 0
    now = time.time_ns()
    for mtime, _, folder in reversed(pubs):
        try:
            if (folder / _IDENTITY).read_text() != identity or not (folder / name).is_file():
                continue
            if now - mtime < grace_seconds * 1e9 / 2:
                _touch_newest(folder, newest)
            else:
                with _locked(_lock_path(root)):
                    _touch_newest(folder, newest)  # fails if a prune renamed it away
        except OSError:  # pruned meanwhile
            continue
        return folder
    return None


def publish_model(
    static_root: Path,
    model_path: Path,
    keep: int = 8,
    *,
    url_prefix: str = STATIC_URL_PREFIX,
    max_external_bytes: int = MAX_STATIC_BYTES,
    grace_seconds: float = GRACE_SECONDS,
    max_total_bytes: int | None = None,
) -> str:
    """Serve ``model_path`` as ``static_root/m/<token>/<safe name>``; return its same-origin URL path.

    The token is ``secrets.token_urlsafe`` (192 bits): static serving has no access control, so the URL is
    the only key. The model file is hard-linked (copied across file systems). Its external-data files are
    copied next to it under their relative names when together they fit in ``max_external_bytes`` and in
    the room left under ``max_total_bytes``; Netron reads them only to show a tensor's values, so otherwise
    they are left out (with a log warning) and the graph is drawn all the same.

    Publishing the same file again (same path, inode, size and modification time) returns the same URL
    without copying anything, so it is cheap to call on every page rerun. Publications are shared by every
    session of the server. One published or reused in the last ``grace_seconds`` (default 15 minutes) is
    never removed (unless more than ``keep`` x 4 publications exist: the oldest go first), so a page still
    showing it keeps working; older ones are removed, least recently used first, beyond the ``keep`` most
    recent, and while all publications together would weigh more than ``max_total_bytes`` by apparent size
    (hard links counted in full, as Streamlit measures its static folder; default: what is left of its 1 GiB
    after the Netron viewer, less a margin). A model that does not fit in that room is refused with a
    :class:`~workbench.errors.ModelError`, as is one over Streamlit's 200 MiB static limit. ``url_prefix``
    is where Streamlit serves ``static_root`` (``/app/static``, behind ``server.baseUrlPath`` if one is set).
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    if max_total_bytes is None:
        max_total_bytes = default_max_total_bytes(Path(static_root))
    if grace_seconds < 0 or max_total_bytes < 0:
        raise ValueError(
            f"grace_seconds and max_total_bytes cannot be negative, got {grace_seconds} and {max_total_bytes}"
        )
    model_path = Path(model_path)
    try:
        st = model_path.stat()
    except OSError as err:
        raise ModelError(
            f"Cannot show '{model_path.name}' in the graph view: {err.strerror}.", "Open the model again."
        ) from err
    if not model_path.is_file():
        raise ModelError(
            f"Cannot show '{model_path.name}' in the graph view: it is not a regular file.",
            "Open a model file.",
        )
    if st.st_size > MAX_STATIC_BYTES:
        raise ModelError(
            f"'{model_path.name}' is too large for the in-app graph view ({_mib(st.st_size)} MiB; the app "
            f"serves files up to {_mib(MAX_STATIC_BYTES)} MiB).",
            "Save the model with its weights as external data (onnx.save(..., save_as_external_data=True)) so "
            "the graph file is small, or open it in Netron on your own machine (pip install netron; "
            "netron model.onnx).",
        )
    name = _published_name(model_path)
    root = Path(static_root) / PUBLISH_DIR
    root.mkdir(parents=True, exist_ok=True)
    prefix = f"{url_prefix.rstrip('/')}/{PUBLISH_DIR}"
    identity = _identity(model_path, st)
    existing = _reuse(root, name, identity, grace_seconds)
    if existing is not None:
        return f"{prefix}/{existing.name}/{name}"

    extras, extra_bytes = _external_data(model_path)
    renamed = bool(_external_files(model_path))  # then the model is published as a copy pointing at neutral names
    if extra_bytes > max_external_bytes:
        log.warning(
            "not publishing the external data of %s (%s MiB > %s MiB): the graph view cannot show weight values",
            model_path.name, _mib(extra_bytes), _mib(max_external_bytes),
        )  # fmt: skip
        extras, extra_bytes = [], 0
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    tmp = root / f".tmp-{token}"
    final = root / token
    try:
        tmp.mkdir()
        copy_bytes = st.st_size if renamed or not _linked(model_path, tmp / name) else 0
        # The new publication will be the most recent: room for it among the `keep`, and for its bytes (linked
        # or copied: Streamlit counts both against its static-folder limit).
        held = _prune(root, keep - 1, grace_seconds, max_total_bytes, incoming=st.st_size + extra_bytes,
                      hard_cap=keep * MAX_PUBLICATIONS_FACTOR - 1, making=tmp)
        room = max_total_bytes - held
        if st.st_size > room:
            raise ModelError(
                f"Cannot show '{model_path.name}' in the graph view right now ({_amount(st.st_size)}): the models "
                f"opened in the last {grace_seconds / 60:g} minutes already take {_amount(held)} of the "
                f"{_amount(max_total_bytes)} the app's static folder may hold (Streamlit stops serving it past "
                "1 GiB).",
                "Try again in a few minutes, when older models are released, or open it in Netron on your own "
                "machine (pip install netron; netron model.onnx).",
            )
        if extra_bytes > room - st.st_size:
            extras = []  # (warned below)
        if renamed:
            _write_renamed(model_path, {location: rel for _, location, rel in extras}, tmp / name)
        elif copy_bytes:
            shutil.copy2(model_path, tmp / name)
        if extras == [] and extra_bytes:
            log.warning(
                "not publishing the external data of %s (%s): models published in the last %g minutes "
                "already hold %s of the %s allowed; the graph view cannot show weight values",
                model_path.name, _amount(extra_bytes), grace_seconds / 60, _amount(held),
                _amount(max_total_bytes),
            )  # fmt: skip
        for src, _, rel in extras:
            shutil.copy2(src, tmp / rel)
        (tmp / _IDENTITY).write_text(identity)
        pubs = _publications(root)
        os.rename(tmp, final)
        _touch_newest(final, pubs[-1][0] if pubs else 0)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    url = f"{prefix}/{token}/{name}"
    log.info("published %s for the graph view (%d external-data files)", model_path.name, len(extras))
    return url


# ---------------------------------------------------------------------------------------------- url


def viewer_url(model_url: str, select: Sequence[str] = (), netron_base: str = NETRON_BASE) -> str:
    """The Netron page that opens ``model_url`` (a same-origin path) and selects the ``select`` nodes."""
    if not model_url.startswith("/") or model_url.startswith("//") or "\\" in model_url:
        raise WorkbenchError(
            f"The viewer opens models from this server only; '{model_url}' is not a same-origin path.",
            "Publish the model with publish_model() and pass the path it returns.",
        )
    if isinstance(select, str):
        select = (select,)
    url = f"{netron_base}?url={quote(model_url, safe='/')}"
    names = [n for n in select if n]
    if names:
        url += "#select=" + ",".join(quote(n, safe="") for n in names)
    return url
