"""Uploading a model with its external data as an archive, and the archives that must be refused."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
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


def _gzip_tar_of_zeros(name: str, gib: int) -> bytes:
    """A valid .tar.gz holding one member of ``gib`` GiB of zeros, in about 1 MB, built without compressing
    gigabytes: after a full flush, deflate encodes each further 16 MiB of zeros as the same bytes."""
    import struct
    import zlib

    block = 16 << 20
    count = (gib << 30) // block
    info = tarfile.TarInfo(name)
    info.size = count * block - 1024  # the last 1024 zeros are the tar end-of-archive marker
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    zeros = b"\0" * block
    segment = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH) == segment
    crc = zlib.crc32(header)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty final block
    size = (len(header) + count * block) & 0xFFFFFFFF
    return head + segment * count + tail + struct.pack("<II", crc, size)


def test_a_small_tar_gz_bomb_is_refused_with_the_default_limits_after_little_is_written(tmp_path):
    src = tmp_path / "bomb.tar.gz"
    src.write_bytes(_gzip_tar_of_zeros("weights.bin", 1))  # 1 GiB of zeros in about 1 MB
    assert src.stat().st_size < 2 << 20
    with tarfile.open(src, "r|gz") as tf:  # a real archive, as tarfile reads it (its first header only)
        first = next(iter(tf))
        assert first.name == "weights.bin" and first.size > 1 << 29
    with pytest.raises(ArchiveError) as err:
        extract_archive(src, tmp_path / "out")
    assert "bomb.tar.gz" in err.value.message and "archive bomb" in err.value.message
    written_mib = float(err.value.message.split(" MiB from ")[0].rsplit("(", 1)[1])
    assert written_mib <= 2 * ArchiveLimits().ratio_floor / 2**20, err.value.message
    assert not (tmp_path / "out").exists()


def test_a_tar_gz_bomb_upload_is_refused_and_nothing_is_left(workspace):
    with pytest.raises(ArchiveError, match="archive bomb"):
        import_model(workspace, _gzip_tar_of_zeros("model.onnx", 1), "model.tar.gz")
    assert list_models(workspace) == [] and not any(workspace.tmp_dir.iterdir())


def test_the_default_ceiling_follows_the_upload_limit(workspace, tmp_path):
    """An upload may unpack to a multiple of the upload limit, not to the archive module's 8 GiB ceiling."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:  # 2 MiB in a few KiB: under the ratio check's floor
        data = np.random.default_rng(0).bytes(4096) * 512
        info = tarfile.TarInfo("weights.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert len(buf.getvalue()) < 64 << 10
    with pytest.raises(ArchiveError, match="size limit"):
        import_model(workspace, buf.getvalue(), "bundle.tar.gz", max_bytes=64 << 10)
    assert not any(workspace.tmp_dir.iterdir())


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_unpacking_never_eats_the_last_free_disk_space(tmp_path, kind):
    path = onnx_models.with_external_data(tmp_path / "m")
    files = {"external.onnx": path.read_bytes(), "weights.bin": (tmp_path / "m/weights.bin").read_bytes()}
    src = tmp_path / f"bundle.{kind}"
    if kind == "zip":
        src.write_bytes(_zip(files))
    else:
        with tarfile.open(src, "w") as tf:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    import shutil

    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(ArchiveError, match="free disk space"):
        extract_archive(src, tmp_path / "out", ArchiveLimits(keep_free_bytes=free + 1024))
    assert not (tmp_path / "out").exists()
    assert extract_archive(src, tmp_path / "ok", ArchiveLimits(keep_free_bytes=0))  # the same with room


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize("entry", ["model.onnx", "sub/dir/weights.bin"])
def test_a_duplicate_entry_is_named_as_in_the_archive_never_by_a_server_path(workspace, tmp_path, kind, entry):
    """An archive holding one name twice: the error names the entry as the archive does; the workspace's path
    (and the staging folder's) never appears in what the user sees."""
    import warnings

    model = onnx_models.static_mlp().SerializeToString()
    buf = io.BytesIO()
    if kind == "zip":
        with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
            warnings.simplefilter("ignore")  # "Duplicate name": exactly what this archive is about
            for data in (model, model) if entry == "model.onnx" else (model, b"1", b"2"):
                zf.writestr(entry if data is not model or entry == "model.onnx" else "model.onnx", data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            items = [("model.onnx", model)] + [(entry, b"12")] * 2 if entry != "model.onnx" else [(entry, model)] * 2
            for name, data in items:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    with pytest.raises(ArchiveError) as err:
        import_model(workspace, buf.getvalue(), f"bundle.{kind}")
    text = str(err.value)
    assert f"entry '{entry}' appears twice" in text, text
    assert str(workspace.root) not in text and "upload-" not in text and "/tmp" not in text, text
    assert not any(workspace.tmp_dir.iterdir())
