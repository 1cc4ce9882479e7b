"""Safe extraction of uploaded archives (zip, tar, tar.gz): no path escapes, no links, no bombs."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import ArchiveError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    max_total_bytes: int = 8 << 30
    max_members: int = 10_000
    max_ratio: float = 200.0  # uncompressed / compressed, for a whole zip


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def _safe_member_path(archive: str, name: str) -> PurePosixPath:
    if "\x00" in name or any(ord(c) < 32 for c in name):
        raise ArchiveError(f"{archive}: entry {name!r} has control characters in its name.", "Rename it.")
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        raise ArchiveError(
            f"{archive}: entry '{name}' has an absolute path.",
            "Archives must hold relative paths only; re-create it from inside the model's folder.",
        )
    if ".." in pure.parts:
        raise ArchiveError(
            f"{archive}: entry '{name}' would unpack outside its folder ('..' in the path).",
            "Re-create the archive without '..' entries.",
        )
    return pure


def _copy_limited(src: IO[bytes], dst: IO[bytes], budget: list[int], archive: str, name: str) -> None:
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise ArchiveError(
                f"{archive}: unpacking '{name}' exceeds the size limit for uploads.",
                "Upload a smaller model, or place it on the server and open it by path.",
            )
        dst.write(chunk)


def _iter_zip(path: Path, limits: ArchiveLimits) -> Iterator[tuple[PurePosixPath, IO[bytes] | None]]:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise ArchiveError(f"{path.name}: {len(infos)} entries is more than the limit of {limits.max_members}.")
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise ArchiveError(
                f"{path.name}: it would unpack to {declared / 2**30:.1f} GiB, over the "
                f"{limits.max_total_bytes / 2**30:.1f} GiB limit.",
                "Upload a smaller archive.",
            )
        compressed = max(1, sum(i.compress_size for i in infos))
        if declared > 10 << 20 and declared / compressed > limits.max_ratio:
            raise ArchiveError(
                f"{path.name}: compression ratio {declared / compressed:.0f}:1 looks like a zip bomb.",
                "Upload the files uncompressed or less compressed.",
            )
        for info in infos:
            mode = (info.external_attr >> 16) & 0o170000
            if mode and stat.S_ISLNK(mode):
                raise ArchiveError(f"{path.name}: entry '{info.filename}' is a symbolic link; links are not allowed.")
            member = _safe_member_path(path.name, info.filename)
            if info.is_dir():
                yield member, None
                continue
            with zf.open(info) as fh:
                yield member, fh


def _iter_tar(path: Path, limits: ArchiveLimits) -> Iterator[tuple[PurePosixPath, IO[bytes] | None]]:
    try:
        tf = tarfile.open(path, mode="r:*")
    except tarfile.TarError as err:  # its message lists every compression it tried: too long for a user
        raise ArchiveError(
            f"{path.name}: not a readable tar archive (plain, gzip, bzip2 or xz).",
            "Re-create it with tar -czf, or upload a .zip.",
        ) from err
    with tf:
        count = 0
        for info in tf:
            count += 1
            if count > limits.max_members:
                raise ArchiveError(f"{path.name}: more than {limits.max_members} entries.")
            if info.issym() or info.islnk():
                raise ArchiveError(f"{path.name}: entry '{info.name}' is a link; links are not allowed.")
            if not (info.isfile() or info.isdir()):
                raise ArchiveError(f"{path.name}: entry '{info.name}' is a device or special file; not allowed.")
            member = _safe_member_path(path.name, info.name)
            if info.isdir():
                yield member, None
                continue
            fh = tf.extractfile(info)
            yield member, fh


def extract_archive(path: Path, dest: Path, limits: ArchiveLimits | None = None) -> list[Path]:
    """Unpack ``path`` into ``dest`` (created, must be empty). Returns the files written.

    Every entry is checked before it is written; on any error ``dest`` is removed again.
    """
    limits = limits or ArchiveLimits()
    name = path.name.lower()
    try:
        if path.stat().st_size == 0:
            raise ArchiveError(
                f"{path.name}: the archive is empty (0 bytes).", "The upload did not complete; try again."
            )
        if name.endswith(".zip"):
            if not zipfile.is_zipfile(path):
                raise ArchiveError(f"{path.name}: not a zip archive.", "Upload a .zip, .tar or .tar.gz file.")
            entries = _iter_zip(path, limits)
        elif name.endswith((".tar", ".tar.gz", ".tgz")):
            entries = _iter_tar(path, limits)
        else:
            raise ArchiveError(f"{path.name}: unknown archive type.", "Upload a .zip, .tar or .tar.gz file.")
        dest.mkdir(parents=True, exist_ok=False)
        root = dest.resolve()
        budget = [limits.max_total_bytes]
        written: list[Path] = []
        for member, fh in entries:
            target = (root / Path(*member.parts)).resolve() if member.parts else root
            if not target.is_relative_to(root):
                raise ArchiveError(f"{path.name}: entry '{member}' would unpack outside its folder.")
            if fh is None:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            with os.fdopen(fd, "wb") as out:
                _copy_limited(fh, out, budget, path.name, str(member))
            written.append(target)
        return written
    except ArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except FileExistsError as err:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"{path.name}: entry '{err.filename}' appears twice in the archive.") from err
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"{path.name}: the archive is damaged or truncated ({err}).") from err
