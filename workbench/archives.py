"""Safe extraction of uploaded archives (zip, tar, tar.gz): no path escapes, no links, no bombs.

What an archive may unpack to is bounded three ways, all checked while its bytes are written (so a bomb is
stopped after at most ``ratio_floor`` bytes, never after the ceiling):

- ``max_total_bytes``: a ceiling for any archive (callers tie it to their upload limit);
- ``max_ratio``: unpacked bytes against the compressed bytes read so far (zip, tar and tar.gz alike), once more
  than ``ratio_floor`` bytes are out: a few MB of gzip'ed zeros never turn into gigabytes on disk;
- ``keep_free_bytes``: unpacking never leaves less free disk space than this where it unpacks.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import ArchiveError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
_CHUNK = 1 << 20
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass(frozen=True)
class ArchiveLimits:
    max_total_bytes: int = 8 << 30  # ceiling; import_model lowers it to a multiple of its upload limit
    max_members: int = 10_000
    max_ratio: float = 200.0  # unpacked / compressed bytes read so far, checked while unpacking
    ratio_floor: int = 16 << 20  # below this many unpacked bytes any ratio is fine (small, very compressible files)
    keep_free_bytes: int = 1 << 30  # free disk space unpacking must leave where it unpacks


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def is_disk_full(err: OSError) -> bool:
    """Whether ``err`` says the disk (or a quota, or a file-size limit) is full."""
    return err.errno in _DISK_FULL


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


class _Counting:
    """A read-only file that counts the bytes read from it (the compressed bytes a tar stream consumed)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.raw.close()


@dataclass
class _Budget:
    """What may still be written, and the compression-ratio check against the compressed bytes read so far."""

    archive: str
    limits: ArchiveLimits
    left: int  # bytes, the smallest of the ceiling and the free disk space (less the reserve)
    by_disk: bool  # the free disk space is what bounds ``left``
    written: int = 0
    consumed: int = 0  # compressed bytes read so far

    def take(self, n: int, name: str) -> None:
        self.written += n
        self.left -= n
        if self.left < 0:
            if self.by_disk:
                raise ArchiveError(
                    f"{self.archive}: unpacking '{name}' would leave less than "
                    f"{self.limits.keep_free_bytes / 2**30:.1f} GiB of free disk space; nothing was kept.",
                    "Free disk space in the workspace (WORKBENCH_HOME), or open the model by path on the server.",
                )
            raise ArchiveError(
                f"{self.archive}: unpacking '{name}' exceeds the size limit for uploads "
                f"({self.limits.max_total_bytes / 2**30:.1f} GiB unpacked).",
                "Upload a smaller model, or place it on the server and open it by path.",
            )
        limits = self.limits
        if self.written > limits.ratio_floor and self.written > max(1, self.consumed) * limits.max_ratio:
            raise ArchiveError(
                f"{self.archive}: '{name}' unpacks to more than {limits.max_ratio:.0f} times its compressed size "
                f"({self.written / 2**20:.0f} MiB from {self.consumed / 2**20:.2f} MiB so far): it looks like an "
                "archive bomb, so it was not unpacked.",
                "Upload the files uncompressed (a plain .tar, or a .zip without compression).",
            )


def _copy_limited(src: IO[bytes], dst: IO[bytes], budget: _Budget, name: str, consumed: _Counting | None) -> None:
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return
        if consumed is not None:
            budget.consumed = consumed.count
        budget.take(len(chunk), name)
        dst.write(chunk)


def _iter_zip(
    path: Path, limits: ArchiveLimits, budget: _Budget
) -> Iterator[tuple[PurePosixPath, IO[bytes] | None]]:
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
        if declared > limits.ratio_floor and declared / compressed > limits.max_ratio:
            raise ArchiveError(
                f"{path.name}: compression ratio {declared / compressed:.0f}:1 looks like a zip bomb.",
                "Upload the files uncompressed or less compressed.",
            )
        if budget.by_disk and declared > budget.left:
            raise ArchiveError(
                f"{path.name}: it would unpack to {declared / 2**20:.1f} MiB, which would leave less than "
                f"{limits.keep_free_bytes / 2**30:.1f} GiB of free disk space; nothing was unpacked.",
                "Free disk space in the workspace (WORKBENCH_HOME), or open the model by path on the server.",
            )
        for info in infos:
            mode = (info.external_attr >> 16) & 0o170000
            if mode and stat.S_ISLNK(mode):
                raise ArchiveError(f"{path.name}: entry '{info.filename}' is a symbolic link; links are not allowed.")
            member = _safe_member_path(path.name, info.filename)
            if info.is_dir():
                yield member, None
                continue
            budget.consumed += info.compress_size
            with zf.open(info) as fh:
                yield member, fh


def _iter_tar(
    path: Path, limits: ArchiveLimits, counting: _Counting
) -> Iterator[tuple[PurePosixPath, IO[bytes] | None]]:
    # Stream mode ("r|*"): the archive is read once, front to back, so ``counting`` says how many compressed bytes
    # each member's data came from (and a GNU sparse member cannot claim gigabytes out of nothing either).
    try:
        tf = tarfile.open(fileobj=counting, mode="r|*")  # type: ignore[call-overload]
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


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def extract_archive(path: Path, dest: Path, limits: ArchiveLimits | None = None) -> list[Path]:
    """Unpack ``path`` into ``dest`` (created, must be empty). Returns the files written.

    Every entry is checked before it is written, and the size and ratio limits while it is written; on any error
    ``dest`` is removed again.
    """
    limits = limits or ArchiveLimits()
    name = path.name.lower()
    raw: IO[bytes] | None = None
    current = ""  # the entry being unpacked
    try:
        if path.stat().st_size == 0:
            raise ArchiveError(
                f"{path.name}: the archive is empty (0 bytes).", "The upload did not complete; try again."
            )
        free = _free_bytes(dest.parent)
        room = None if free is None else free - limits.keep_free_bytes
        by_disk = room is not None and room < limits.max_total_bytes
        budget = _Budget(path.name, limits, room if by_disk and room is not None else limits.max_total_bytes, by_disk)
        counting: _Counting | None = None
        if name.endswith(".zip"):
            if not zipfile.is_zipfile(path):
                raise ArchiveError(f"{path.name}: not a zip archive.", "Upload a .zip, .tar or .tar.gz file.")
            entries = _iter_zip(path, limits, budget)
        elif name.endswith((".tar", ".tar.gz", ".tgz")):
            raw = open(path, "rb")  # noqa: SIM115 - closed in finally
            counting = _Counting(raw)
            entries = _iter_tar(path, limits, counting)
        else:
            raise ArchiveError(f"{path.name}: unknown archive type.", "Upload a .zip, .tar or .tar.gz file.")
        dest.mkdir(parents=True, exist_ok=False)
        root = dest.resolve()
        written: list[Path] = []
        for member, fh in entries:
            current = str(member)  # errors name the entry as the archive does, never the server's path
            target = (root / Path(*member.parts)).resolve() if member.parts else root
            if not target.is_relative_to(root):
                raise ArchiveError(f"{path.name}: entry '{member}' would unpack outside its folder.")
            if fh is None:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            with os.fdopen(fd, "wb") as out:
                _copy_limited(fh, out, budget, str(member), counting)
            written.append(target)
        return written
    except ArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except FileExistsError as err:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"{path.name}: entry '{current}' appears twice in the archive.",
                           "Pack each file once.") from err
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"{path.name}: the archive is damaged or truncated ({err}).") from err
    except OSError as err:
        shutil.rmtree(dest, ignore_errors=True)
        if is_disk_full(err):
            raise ArchiveError(
                f"{path.name}: the disk is full; unpacking stopped and nothing was kept ({err.strerror}).",
                "Free disk space in the workspace (WORKBENCH_HOME) and upload it again.",
            ) from err
        where = current or path.name
        raise ArchiveError(
            f"{path.name}: could not unpack it: '{where}': {err.strerror or err}.",
            "Check that the workspace (WORKBENCH_HOME) is writable.",
        ) from err
    finally:
        if raw is not None:
            raw.close()
