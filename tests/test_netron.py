"""Netron served by the app: the offline copy of the installed viewer, models published for it, viewer URLs.

What the patched viewer then does in a real browser (no request leaves the machine, no consent dialog, no
expiry, node selection) is in tests/test_browser.py; here the copy, its failures and the publications.
"""

from __future__ import annotations

import concurrent.futures
import filecmp
import functools
import multiprocessing
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import onnx
import pytest

from tests import onnx_models
from workbench import netron
from workbench.errors import BackendUnavailable, ModelError, WorkbenchError
from workbench.netron import (
    GRACE_SECONDS,
    MARKER,
    MAX_STATIC_BYTES,
    NETRON_BASE,
    prepare_netron,
    publish_model,
    viewer_url,
)

SHIPPED = netron.netron_source()
TOKEN_URL = re.compile(r"^/app/static/m/(?P<token>[A-Za-z0-9_-]{32})/(?P<name>[^/]+)$")


def _text(folder: Path, name: str) -> str:
    return (folder / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return prepare_netron(tmp_path_factory.mktemp("static") / "netron")


@pytest.fixture()
def editable_source(tmp_path) -> Path:
    """A Netron package folder we may change: links to the installed files; edited files become copies."""
    folder = tmp_path / "netron-src"
    folder.mkdir()
    for entry in SHIPPED.iterdir():
        if entry.is_file():
            (folder / entry.name).symlink_to(entry)
    return folder


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    text = _text(folder, name)
    assert old in text, f"the installed {name} no longer has {old!r}; update this test with the patches"
    (folder / name).unlink()
    (folder / name).write_text(text.replace(old, new), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- prepare


@pytest.mark.parametrize("patch", netron._PATCHES, ids=lambda p: f"{p.file}:{p.why}")
def test_every_patch_is_applied_to_the_copy(prepared, patch):
    shipped, copy = _text(SHIPPED, patch.file), _text(prepared, patch.file)
    assert shipped.count(patch.anchor) == 1
    assert patch.replacement in copy
    assert copy.count(patch.anchor) == patch.replacement.count(patch.anchor)


def test_the_copy_no_longer_phones_home_asks_consent_or_expires(prepared):
    shipped_browser, browser = _text(SHIPPED, "browser.js"), _text(prepared, "browser.js")
    shipped_base = _text(SHIPPED, "base.js")
    # What Netron as shipped does at start-up, and what is left of it.
    for call in ("await age();", "await consent();", "await telemetry();"):
        assert call in shipped_browser and call not in browser
    assert "https://ipinfo.io" in shipped_browser
    assert "sendBeacon" in shipped_base and "analytics.google.com" in shipped_base
    for path in prepared.rglob("*.js"):
        text = path.read_text(encoding="utf-8", errors="replace")
        assert "ipinfo.io" not in text and "sendBeacon" not in text and "analytics.google.com" not in text, (
            path
        )
    # The browser itself refuses any other origin; the node-selection script is loaded after Netron.
    index = _text(prepared, "index.html")
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', index)
    assert csp and "default-src 'self'" in csp.group(1) and "connect-src 'self'" in csp.group(1)
    assert index.index('src="index.js"') < index.index(f'src="{netron.SELECT_SCRIPT}"')
    assert "#select=" in _text(prepared, netron.SELECT_SCRIPT)


def test_the_copy_is_the_installed_viewer_apart_from_the_patched_files(prepared):
    patched = {p.file for p in netron._PATCHES}
    shipped = {p.name for p in SHIPPED.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")}
    copied = {p.name for p in prepared.iterdir()}
    assert copied == shipped | {netron.SELECT_SCRIPT, MARKER}
    same = sorted(shipped - patched)
    match, mismatch, errors = filecmp.cmpfiles(SHIPPED, prepared, same, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert not any(p.suffix == ".py" for p in prepared.iterdir()), "no Python of the netron package is served"
    version = re.search(r'<meta name="version" content="([^"]+)">', _text(SHIPPED, "index.html")).group(1)
    assert f'<meta name="version" content="{version}">' in _text(prepared, "index.html")


def test_preparing_again_is_a_no_op_until_the_patch_set_changes(tmp_path):
    dest = prepare_netron(tmp_path / "static" / "netron")
    before = (dest / "browser.js").stat().st_ino
    assert prepare_netron(dest) == dest
    assert (dest / "browser.js").stat().st_ino == before, "an up-to-date copy was rewritten"

    # A copy made by other patches (an older workbench) is replaced, in one rename.
    marker = dest / MARKER
    marker.write_text(marker.read_text().replace(netron.patch_set_digest(), "0" * 64))
    prepare_netron(dest)
    assert (dest / "browser.js").stat().st_ino != before
    assert netron.patch_set_digest() in marker.read_text()
    assert sorted(p.name for p in dest.parent.iterdir() if p.name != ".netron.lock") == ["netron"]


def _prepare_in_child(dest: str) -> str:
    return str(prepare_netron(Path(dest)))


def test_concurrent_sessions_prepare_one_complete_copy(tmp_path):
    dest = tmp_path / "static" / "netron"
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with (
        concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as procs,
        concurrent.futures.ThreadPoolExecutor(3) as threads,
    ):
        futures = [procs.submit(_prepare_in_child, str(dest)) for _ in range(3)]
        futures += [threads.submit(_prepare_in_child, str(dest)) for _ in range(3)]
        assert {f.result(timeout=120) for f in futures} == {str(dest)}
    assert sorted(p.name for p in dest.parent.iterdir()) == [".netron.lock", "netron"], (
        "leftover temp folders"
    )
    assert _text(dest, "browser.js") == _text(prepare_netron(tmp_path / "again" / "netron"), "browser.js")


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # Netron moves its IP lookup elsewhere: the anchor is gone.
        ("browser.js", "https://ipinfo.io/json", "https://ipapi.example/json", "anchor for the IP lookup not found"),
        # A second beacon call: the anchor is no longer unique.
        ("base.js", "this._navigator.sendBeacon(url, body);",
         "this._navigator.sendBeacon(url, body);\n                this._navigator.sendBeacon(url, body);",
         "anchor for the analytics beacon found 2 times"),
        # A new endpoint in a file the patches do not touch.
        ("view.js", "view.View = class {", "const where = 'https://ipinfo.io/json';\nview.View = class {",
         "view.js: 'ipinfo.io'"),
    ],
    ids=["anchor-missing", "anchor-twice", "new-endpoint"],
)  # fmt: skip
def test_a_netron_update_that_changes_what_is_patched_fails_loudly(
    tmp_path, editable_source, file, old, new, expected
):
    _edit(
        editable_source, "index.html", '<meta name="version" content="', '<meta name="version" content="99.'
    )
    _edit(editable_source, file, old, new)
    dest = tmp_path / "static" / "netron"
    good = prepare_netron(dest)  # a copy from the installed Netron is already being served
    served = _text(good, "browser.js")

    with pytest.raises(BackendUnavailable) as caught:
        prepare_netron(dest, editable_source)

    message = caught.value.message
    assert "Netron 99." in message and expected in message, message
    assert f"netron=={netron.KNOWN_VERSION}" in (caught.value.hint or "")
    assert _text(dest, "browser.js") == served, "the working copy was replaced by a broken one"
    assert sorted(p.name for p in dest.parent.iterdir()) == [".netron.lock", "netron"]


def test_a_missing_netron_install_is_reported(tmp_path):
    with pytest.raises(BackendUnavailable, match="cannot read"):
        prepare_netron(tmp_path / "netron", tmp_path / "not-netron")


# ---------------------------------------------------------------------------------------------- publish


@pytest.fixture()
def model(tmp_path) -> Path:
    path = tmp_path / "models" / "tiny_cnn.onnx"
    path.parent.mkdir()
    onnx.save(onnx_models.tiny_cnn(), str(path))
    return path


def _served(static: Path, url: str) -> Path:
    match = TOKEN_URL.match(url)
    assert match, url
    return static / "m" / match["token"] / match["name"]


def test_a_model_is_published_under_an_unguessable_name_without_copying(tmp_path, model):
    static = tmp_path / "static"
    url = publish_model(static, model)
    served = _served(static, url)
    assert served.read_bytes() == model.read_bytes()
    assert os.path.samefile(served, model), "same file system: a hard link, not a copy"
    # The only file next to it that the server would also answer is the (hashed) source identity.
    assert sorted(p.name for p in served.parent.iterdir()) == [".source", served.name]
    assert str(model) not in (served.parent / ".source").read_text()


def test_publishing_the_same_model_again_reuses_it_and_another_gets_its_own(tmp_path, model):
    static = tmp_path / "static"
    first = publish_model(static, model)
    assert publish_model(static, model) == first
    other = tmp_path / "other" / model.name  # same name, another model
    other.parent.mkdir()
    onnx.save(onnx_models.static_mlp(), str(other))
    second = publish_model(static, other)
    assert second != first and second.endswith(f"/{model.name}")
    assert _served(static, second).read_bytes() == other.read_bytes()


def test_only_the_most_recently_used_models_stay_exposed(tmp_path):
    static = tmp_path / "static"
    paths = []
    for i, make in enumerate((onnx_models.tiny_cnn, onnx_models.static_mlp, onnx_models.custom_op)):
        paths.append(tmp_path / f"m{i}.onnx")
        onnx.save(make(), str(paths[-1]))
    publish = functools.partial(publish_model, static, keep=2, grace_seconds=0)  # no grace: LRU alone
    a = publish(paths[0])
    b = publish(paths[1])
    assert publish(paths[0]) == a  # used again: now the most recent
    c = publish(paths[2])
    assert _served(static, a).is_file() and _served(static, c).is_file()
    assert not _served(static, b).parent.exists(), "the least recently used model is still served"
    assert len([p for p in (static / "m").iterdir()]) == 2
    # A pruned model is published again (under a new name) when it is shown again.
    b2 = publish(paths[1])
    assert b2 != b and _served(static, b2).is_file()


def _copies(tmp_path: Path, n: int, prefix: str = "s") -> list[Path]:
    """``n`` files of the same model under different paths: each is a model of its own to publish."""
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"{prefix}{i}" / "tiny_cnn.onnx")
        paths[-1].parent.mkdir()
        onnx.save(onnx_models.tiny_cnn(), str(paths[-1]))
    return paths


def _age(static: Path, seconds: float) -> None:
    """Let ``seconds`` pass for every publication (their order of use stays as it was)."""
    for folder in (static / "m").iterdir():
        st = folder.stat()
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def _exposed(static: Path) -> set[str]:
    return {p.name for p in (static / "m").iterdir()}


def test_a_model_another_session_is_showing_is_not_pruned_within_the_grace_period(tmp_path, model):
    static = tmp_path / "static"
    keep = 2
    mine = publish_model(static, model, keep=keep)  # session A's page is loading it in its iframe
    others = [publish_model(static, p, keep=keep) for p in _copies(tmp_path, keep + 3)]  # a busy server
    assert _served(static, mine).read_bytes() == model.read_bytes(), "pruned while session A shows it"
    assert _exposed(static) == {_served(static, u).parent.name for u in [mine, *others]}

    # A quarter of an hour later nobody has shown session A's model again: the next publication prunes
    # down to the `keep` most recently used, session A's model first.
    _age(static, GRACE_SECONDS + 1)
    (newest,) = [publish_model(static, p, keep=keep) for p in _copies(tmp_path, 1, prefix="late")]
    assert not _served(static, mine).parent.exists()
    assert _exposed(static) == {_served(static, u).parent.name for u in (others[-1], newest)}
    # Session A's next rerun publishes it again, under a new name.
    again = publish_model(static, model, keep=keep)
    assert again != mine and _served(static, again).read_bytes() == model.read_bytes()


def test_showing_a_model_again_restarts_its_grace_period_and_makes_it_the_most_recent(tmp_path, model):
    static = tmp_path / "static"
    mine = publish_model(static, model, keep=1)
    old = [publish_model(static, p, keep=1) for p in _copies(tmp_path, 2)]
    _age(static, GRACE_SECONDS * 0.4)
    assert publish_model(static, model, keep=1) == mine  # session A reruns its page: reused, not copied
    _age(static, GRACE_SECONDS * 0.7)  # 1.1 grace periods after they were published, 0.7 after A's rerun
    (late,) = [publish_model(static, p, keep=1) for p in _copies(tmp_path, 1, prefix="late")]
    # keep=1, yet session A's model stays: it was shown minutes ago. The others had their time.
    assert _exposed(static) == {_served(static, u).parent.name for u in (mine, late)}
    assert not any(_served(static, u).parent.exists() for u in old)
    # Long after, session A reruns once more: its model is shown again, so again it stays.
    _age(static, GRACE_SECONDS + 1)
    assert publish_model(static, model, keep=1) == mine
    (late2,) = [publish_model(static, p, keep=1) for p in _copies(tmp_path, 1, prefix="late2")]
    assert _exposed(static) == {_served(static, u).parent.name for u in (mine, late2)}
    # With a shorter grace, recency alone decides: the model shown last is the one kept.
    publish = functools.partial(publish_model, static, keep=1, grace_seconds=60)
    _age(static, 61)
    assert publish(model) == mine
    (later,) = [publish(p) for p in _copies(tmp_path, 1, prefix="later")]
    _age(static, 61)
    assert publish(model) == mine
    (last,) = [publish(p) for p in _copies(tmp_path, 1, prefix="last")]
    assert _exposed(static) == {_served(static, u).parent.name for u in (mine, last)}
    assert not any(_served(static, u).parent.exists() for u in (late, late2, later))


def _publish_in_child(static: str, paths: list[str]) -> list[str]:
    return [publish_model(Path(static), Path(p), keep=4) for p in paths]  # at most 16 publications in all


def test_sessions_publishing_at_once_in_several_processes_leave_every_recent_model_served(tmp_path, model):
    static = tmp_path / "static"
    mine = publish_model(static, model, keep=4)
    paths = [str(p) for p in _copies(tmp_path, 12)]
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as procs:
        futures = [procs.submit(_publish_in_child, str(static), paths[i::3]) for i in range(3)]
        while not all(f.done() for f in futures):  # session A keeps rerunning its page meanwhile
            assert publish_model(static, model, keep=4) == mine
            assert _served(static, mine).is_file()
        urls = [u for f in futures for u in f.result(timeout=120)]
    assert _exposed(static) == {_served(static, u).parent.name for u in [mine, *urls]}
    assert all(_served(static, u).read_bytes() == model.read_bytes() for u in urls)
    assert not [p for p in (static / "m").iterdir() if p.name.startswith(".")], "leftover temp folders"


def test_a_reuse_never_returns_a_model_that_a_prune_is_removing(tmp_path, model):
    static = tmp_path / "static"
    mine = publish_model(static, model)
    _age(static, GRACE_SECONDS + 1)
    folder = _served(static, mine).parent
    result: list[str] = []
    with netron._locked(netron._lock_path(static / "m")):  # another session's prune is deciding...
        rerun = threading.Thread(target=lambda: result.append(publish_model(static, model)))
        rerun.start()
        rerun.join(0.3)
        assert rerun.is_alive(), "an old publication was reused without waiting for the prune"
        os.rename(folder, folder.with_name(".trash-" + folder.name))  # ...and takes session A's model
    rerun.join(30)
    assert result and result[0] != mine and _served(static, result[0]).read_bytes() == model.read_bytes()


def test_copies_on_disk_are_bounded_but_never_at_the_cost_of_a_model_being_shown(tmp_path):
    first = onnx_models.with_external_data(tmp_path / "first")
    weights = (first.parent / "weights.bin").stat().st_size
    graph = first.stat().st_size + 64  # the published copy of the graph (its locations renamed), its identity file
    cap = weights * 3 // 2 + 2 * graph  # room for two graphs and one copy of the weights, not two
    static = tmp_path / "static"
    publish = functools.partial(publish_model, static, max_total_bytes=cap)
    one = _served(static, publish(first))
    assert (one.parent / "0.bin").is_file()
    # Within the grace period the first model keeps its weights; the second is drawn without them.
    two = _served(static, publish(onnx_models.with_external_data(tmp_path / "second")))
    assert two.is_file() and not (two.parent / "0.bin").exists()
    assert (one.parent / "0.bin").read_bytes() == (first.parent / "weights.bin").read_bytes()
    # Later, the old copies make room for a new one, although `keep` would have kept them.
    _age(static, GRACE_SECONDS + 1)
    three = _served(static, publish(onnx_models.with_external_data(tmp_path / "third"), keep=100))
    assert (three.parent / "0.bin").is_file()
    assert not one.parent.exists(), "the old copy of the weights is still on disk"
    assert two.is_file(), "a publication that holds no copies was pruned for room it does not take"


def test_a_linked_model_counts_by_its_apparent_size_and_one_that_does_not_fit_is_refused(tmp_path, model):
    """Streamlit measures its static folder by apparent size, hard links in full: so does the byte cap."""
    static = tmp_path / "static"
    size = model.stat().st_size
    with pytest.raises(ModelError) as caught:
        publish_model(static, model, max_total_bytes=size - 1)
    assert "tiny_cnn.onnx" in caught.value.message and "1 GiB" in caught.value.message
    assert "few minutes" in (caught.value.hint or "")
    assert _exposed(static) == set(), "a refused model left files"
    linked = _served(static, publish_model(static, model, max_total_bytes=size + 1024))
    assert os.path.samefile(linked, model)  # linked, not copied: still counted in full


def test_external_data_files_are_copied_next_to_the_model_and_the_original_still_loads(tmp_path):
    path = onnx_models.with_external_data(tmp_path / "ext", location="weights.bin")
    weights = onnx.load(str(path)).graph.initializer[0].raw_data
    static = tmp_path / "static"
    served = _served(static, publish_model(static, path))
    assert sorted(p.name for p in served.parent.iterdir()) == [".source", "0.bin", served.name]  # a neutral name
    # Netron resolves the location against the model's URL, exactly as onnx does against its folder.
    assert onnx.load(str(served)).graph.initializer[0].raw_data == weights
    # Copied, not linked: onnx refuses external data with several hard links, which would break the
    # workspace's own model for every later onnx.load (summary, quantization, comparison).
    assert os.stat(path.parent / "weights.bin").st_nlink == 1
    assert onnx.load(str(path)).graph.initializer[0].raw_data == weights


def test_external_data_over_the_budget_is_left_out_and_the_graph_still_published(tmp_path):
    path = onnx_models.with_external_data(tmp_path / "ext", location="weights.bin")
    static = tmp_path / "static"
    budget = (path.parent / "weights.bin").stat().st_size - 1
    served = _served(static, publish_model(static, path, max_external_bytes=budget))
    graph = onnx.load(str(served), load_external_data=False).graph
    assert [n.op_type for n in graph.node] == [n.op_type for n in onnx.load(str(path)).graph.node]
    assert sorted(p.name for p in served.parent.iterdir()) == [".source", served.name]


def test_another_file_system_gets_a_copy_and_still_reuses_it(model):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(model).st_dev:
        pytest.skip("needs /dev/shm on another file system than the test's temp folder to force a copy")
    static = Path(tempfile.mkdtemp(dir=shm, prefix="wb-static-"))
    try:
        url = publish_model(static, model)
        served = _served(static, url)
        assert not os.path.samefile(served, model) and served.read_bytes() == model.read_bytes()
        assert publish_model(static, model) == url
    finally:
        shutil.rmtree(static, ignore_errors=True)


def test_a_model_too_big_for_static_serving_is_refused_with_the_limit(tmp_path):
    big = tmp_path / "huge.onnx"
    with open(big, "wb") as fh:
        fh.truncate(MAX_STATIC_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ModelError) as caught:
        publish_model(tmp_path / "static", big)
    assert "huge.onnx" in caught.value.message and "200 MiB" in caught.value.message
    assert "external data" in (caught.value.hint or "")
    assert not list((tmp_path / "static" / "m").glob("*")), "nothing is exposed"


def test_a_missing_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="gone.onnx"):
        publish_model(tmp_path / "static", tmp_path / "gone.onnx")


# ---------------------------------------------------------------------------------------------- URLs


def test_viewer_url_opens_the_model_and_selects_names_of_any_shape():
    names = ["stem/conv", "a,b", "with space", "#hash", "ünï"]
    url = viewer_url("/app/static/m/TOKEN/my model.onnx", select=names)
    parts = urlsplit(url)
    assert parts.path == NETRON_BASE
    assert parse_qs(parts.query)["url"] == ["/app/static/m/TOKEN/my model.onnx"]
    assert parts.fragment.startswith("select=")
    # As workbench.js reads it: split on commas, then percent-decode each name.
    assert [unquote(n) for n in parts.fragment.removeprefix("select=").split(",")] == names


def test_viewer_url_without_selection_has_no_fragment_and_a_string_is_one_name():
    assert "#" not in viewer_url("/app/static/m/T/x.onnx")
    assert viewer_url("/app/static/m/T/x.onnx", select="a,b").endswith("#select=a%2Cb")
    base = "/proxy/app/static/netron/index.html"
    assert viewer_url("/proxy/app/static/m/T/x.onnx", netron_base=base).startswith(base + "?url=")


@pytest.mark.parametrize(
    "bad", ["https://example.com/x.onnx", "//example.com/x.onnx", "x.onnx", "/a\\b.onnx"]
)
def test_viewer_url_opens_models_from_this_server_only(bad):
    with pytest.raises(WorkbenchError, match="same-origin"):
        viewer_url(bad)


# ---------------------------------------------------------------------------------------------- Model page


def _viewer_src(at) -> str:
    """The src of the Model page's embedded Netron frame (AppTest has no iframe type: it is an UnknownElement)."""
    frames = [el for el in at.get("iframe") if "netron" in el.proto.src]
    assert len(frames) == 1, [el.proto for el in at.get("iframe")]
    return frames[0].proto.src


def test_selecting_nodes_on_the_model_page_selects_them_in_the_embedded_viewer(app_ws):
    from tests.conftest import open_page
    from workbench import ui
    from workbench.model import node_names
    from workbench.samples import get_sample

    ref = app_ws.import_path(get_sample("cnn_residual").path)
    at = open_page("model", 60, **{ui.MODEL_DIGEST: ref.digest})
    assert not at.exception, [e.value for e in at.exception]
    picker = at.multiselect(key=ui.NETRON_SELECT)
    assert picker.options == node_names(ref.path)  # node names only, in graph order: no op types
    before = _viewer_src(at)
    assert "#select=" not in before
    picker.select("stem/conv").select("block1/a/bn").run()
    assert not at.exception, [e.value for e in at.exception]
    src = _viewer_src(at)
    assert src == before + "#select=stem%2Fconv,block1%2Fa%2Fbn"  # same model URL: only the selection changes
    assert any(src in c.value for c in at.caption), "the open-in-a-new-tab link selects the same nodes"
    at.multiselect(key=ui.NETRON_SELECT).unselect("stem/conv").unselect("block1/a/bn").run()
    assert _viewer_src(at) == before


def test_a_selection_left_from_another_model_is_dropped_not_an_error(app_ws):
    from tests.conftest import open_page
    from workbench import ui
    from workbench.samples import get_sample

    ref = app_ws.import_path(get_sample("cnn_residual").path)
    at = open_page("model", 60, **{ui.MODEL_DIGEST: ref.digest, ui.NETRON_SELECT: ["not/in/this/model", "stem/relu"]})
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert at.multiselect(key=ui.NETRON_SELECT).value == ["stem/relu"]
    assert _viewer_src(at).endswith("#select=stem%2Frelu")


@pytest.mark.parametrize("name", ["graph.html", "graph.svg", "graph"])
def test_a_model_file_named_like_a_page_is_published_as_onnx(tmp_path, model, name):
    """A model stored under another suffix (opened by path from the command line) is published as ``.onnx``:
    static serving never serves it with the content type of a page."""
    renamed = tmp_path / name
    shutil.copyfile(model, renamed)
    url = publish_model(tmp_path / "static", renamed)
    assert url.endswith("/graph.onnx") and _served(tmp_path / "static", url).read_bytes() == model.read_bytes()


def test_publications_are_capped_even_within_the_grace_period(tmp_path):
    """A busy server: at most `keep` publications beyond the grace period, and never more than 4 x `keep` even
    within it (the oldest go first); the most recent ones are all served."""
    static = tmp_path / "static"
    urls = [publish_model(static, p, keep=2) for p in _copies(tmp_path, 12)]  # all within the grace period
    assert len(_exposed(static)) == 8
    assert _exposed(static) == {_served(static, u).parent.name for u in urls[-8:]}
    _age(static, GRACE_SECONDS + 1)
    (last,) = [publish_model(static, p, keep=2) for p in _copies(tmp_path, 1, prefix="late")]
    assert _exposed(static) == {_served(static, u).parent.name for u in (urls[-1], last)}


def _sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)  # apparent size only: costs no disk
    return path


def test_the_static_folder_stays_under_streamlits_1_gib_by_apparent_size(tmp_path):
    """Streamlit stops serving static/ at start-up past 1 GiB, measured by apparent size (hard links in full):
    publications of linked models keep the whole folder under it, as Streamlit's own function measures it."""
    from streamlit.file_util import get_directory_size

    from workbench.netron import STATIC_FOLDER_LIMIT, default_max_total_bytes

    static = tmp_path / "static"
    _sparse(static / "netron" / "viewer.bin", 600 * 2**20)  # the rest of the static folder
    assert default_max_total_bytes(static) < STATIC_FOLDER_LIMIT - 600 * 2**20
    models = [_sparse(tmp_path / "ws" / f"m{i}" / f"big{i}.bin", 150 * 2**20) for i in range(5)]
    for m in models[:2]:  # within the grace period: they fit
        assert os.path.samefile(_served(static, publish_model(static, m)), m)  # linked: no disk, still counted
    with pytest.raises(ModelError, match="static folder may hold"):
        publish_model(static, models[2])  # would pass 1 GiB: refused while the others are being shown
    assert get_directory_size(str(static)) < STATIC_FOLDER_LIMIT
    for m in models[2:]:  # later, older ones make room
        _served(static, publish_model(static, m, grace_seconds=0))
        assert get_directory_size(str(static)) < STATIC_FOLDER_LIMIT


def test_publications_are_removed_at_start_up(tmp_path, model):
    from workbench.netron import prune_published

    static = tmp_path / "static"
    urls = [publish_model(static, p) for p in _copies(tmp_path, 3)]
    assert prune_published(static) == 3
    assert _exposed(static) == set() and not any((static / "m").iterdir())
    assert all(not _served(static, u).exists() for u in urls)
    assert prune_published(tmp_path / "nothing-yet") == 0
