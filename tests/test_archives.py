"""Uploading a model with its external data as an archive, and the archives that must be refused."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from tests import onnx_models
from workbench.archives import ArchiveLimits, extract_archive
from workbench.errors import ArchiveError, ModelError
from workbench.model import import_model, list_models, summarize


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_model_with_external_data_uploads_as_a_zip(workspace, tmp_path):
    path = onnx_models.with_external_data(tmp_path / "m")
    data = _zip({"model/external.onnx": path.read_bytes(), "model/weights.bin": (tmp_path / "m/weights.bin").read_bytes()})
    ref = import_model(workspace, data, "bundle.zip")
    assert ref.path.name == "external.onnx"
    assert summarize(ref.path).external_files == ("weights.bin",)


def test_model_with_external_data_uploads_as_a_tarball(workspace, tmp_path):
    path = onnx_models.with_external_data(tmp_path / "m")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(path, arcname="external.onnx")
        tf.add(tmp_path / "m/weights.bin", arcname="weights.bin")
    ref = import_model(workspace, buf.getvalue(), "bundle.tar.gz")
    assert summarize(ref.path).external_data_bytes > 0


def test_zip_missing_external_data_says_what_to_do(workspace, tmp_path):
    path = onnx_models.with_external_data(tmp_path / "m")
    with pytest.raises(ModelError, match="weights.bin' is missing"):
        import_model(workspace, _zip({"external.onnx": path.read_bytes()}), "bundle.zip")
    assert list_models(workspace) == []


@pytest.mark.parametrize("name", ["../evil.onnx", "/abs/evil.onnx", "a/../../evil.onnx"])
def test_zip_entries_escaping_the_folder_are_refused(tmp_path, name):
    src = tmp_path / "x.zip"
    src.write_bytes(_zip({name: b"x"}))
    with pytest.raises(ArchiveError, match="outside its folder|absolute path"):
        extract_archive(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.onnx").exists()


def test_symlinks_in_tar_are_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("weights.bin")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    src = tmp_path / "x.tar"
    src.write_bytes(buf.getvalue())
    with pytest.raises(ArchiveError, match="link"):
        extract_archive(src, tmp_path / "out")


def test_symlinks_in_zip_are_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("weights.bin")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    src = tmp_path / "x.zip"
    src.write_bytes(buf.getvalue())
    with pytest.raises(ArchiveError, match="symbolic link"):
        extract_archive(src, tmp_path / "out")


def test_zip_bomb_is_refused_before_unpacking(tmp_path):
    src = tmp_path / "bomb.zip"
    src.write_bytes(_zip({"a.bin": b"\0" * (64 << 20)}))  # 64 MiB of zeros compresses ~1000:1
    with pytest.raises(ArchiveError, match="zip bomb"):
        extract_archive(src, tmp_path / "out")
    with pytest.raises(ArchiveError, match="GiB limit"):
        extract_archive(src, tmp_path / "out2", ArchiveLimits(max_total_bytes=1 << 20))


def test_tar_bomb_is_stopped_while_unpacking(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"\0" * (8 << 20)
        info = tarfile.TarInfo("a.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    src = tmp_path / "bomb.tar.gz"
    src.write_bytes(buf.getvalue())
    with pytest.raises(ArchiveError, match="size limit"):
        extract_archive(src, tmp_path / "out", ArchiveLimits(max_total_bytes=1 << 20))
    assert not (tmp_path / "out").exists()


def test_damaged_archive_is_a_clear_error(workspace):
    with pytest.raises(ArchiveError, match="not a zip archive|damaged"):
        import_model(workspace, b"PK\x03\x04 truncated", "x.zip")
