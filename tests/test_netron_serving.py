"""The embedded Netron downloads a published model as it is on disk: no on-the-fly gzip by the app's server
(issue 16: a 100 MB model took 3.5 s of server CPU per view to compress, against 0.3 s to send).

Streamlit compresses every ``/app/static`` response when the browser accepts gzip, but never a partial (206)
response; the patched viewer asks for models as the whole-file range ``bytes=0-``. Checked against the real app
server started as the README does."""

from __future__ import annotations

import gzip
import shutil
import urllib.request

import onnx
import pytest

from tests import onnx_models
from tests.browser_support import running_app
from workbench.netron import prepare_netron, publish_model


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app")) as running:
        yield running


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip", **headers})
    with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - our own local server
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def test_the_viewer_asks_for_models_whole_and_uncompressed(tmp_path):
    browser_js = (prepare_netron(tmp_path / "netron") / "browser.js").read_text(encoding="utf-8")
    assert "Range: 'bytes=0-'" in browser_js and "request.status === 206" in browser_js


def test_a_published_model_is_served_as_it_is_on_disk_to_the_viewer(app, tmp_path):
    model = tmp_path / "tiny_cnn.onnx"
    onnx.save(onnx_models.tiny_cnn(), str(model))
    url = publish_model(app.static_dir, model)
    try:
        # what the browser gets without the viewer's range request: gzip computed by the server per request
        status, headers, body = _get(app.url + url, {})
        assert status == 200 and headers.get("content-encoding") == "gzip", headers
        assert gzip.decompress(body) == model.read_bytes()
        # what the patched viewer asks for: the file's bytes, not compressed
        status, headers, body = _get(app.url + url, {"Range": "bytes=0-"})
        assert status == 206 and "content-encoding" not in headers, headers
        assert body == model.read_bytes()
    finally:
        shutil.rmtree(app.static_dir / "m" / url.split("/")[-2], ignore_errors=True)
