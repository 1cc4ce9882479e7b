"""Open files below a trusted folder without ever following a link, and copy from the descriptor opened.

A path checked first and opened later can be swapped in between (a folder or file replaced by a symbolic link
by whoever can write the shared data folder). Here every folder below the trusted anchor is opened with
``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor, the file with ``O_NOFOLLOW``; what is checked
(regular file, size) is the ``fstat`` of that descriptor, and what is copied (or hard-linked, when the link is
checked to be the same inode) is that descriptor's file. A swap in the middle makes the open fail; it never
reads another file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import WorkbenchError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a pipe never blocks the open
_CHUNK = 1 << 20


class NotRegular(WorkbenchError):
    """The name is a link, a device, a pipe or a folder (``kind`` says which)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(f"is {kind}")


class Swapped(WorkbenchError):
    """A folder or file changed (was replaced, or a link put in its place) while it was being opened or copied."""

    def __init__(self) -> None:
        super().__init__("changed while it was being read")


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


@contextlib.contextmanager
def folder(anchor: Path, parts: Sequence[str] = ()) -> Iterator[int]:
    """A descriptor of ``anchor/parts...``: ``anchor`` is opened as given (trusted: a data root, a folder the
    user named on the command line), each of ``parts`` without following links. OSError (ELOOP, ENOTDIR) when a
    part is a link or not a folder; Swapped when it is one now."""
    fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for part in parts:
        fd = _step(fd, part)  # closes the parent, also when it fails
    try:
        yield fd
    finally:
        os.close(fd)


def _step(fd: int, part: str) -> int:
    """Open the sub-folder ``part`` of the folder ``fd`` without following a link; ``fd`` is closed either way."""
    try:
        if part in ("", ".", "..") or "/" in part:
            raise OSError(errno.EINVAL, "not a plain folder name", part)
        try:
            nxt = os.open(part, _DIR, dir_fd=fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise Swapped() from err
            raise
    finally:
        os.close(fd)
    return nxt


def open_regular(dir_fd: int, rel: str) -> tuple[int, os.stat_result]:
    """Open ``rel`` (a relative name, maybe with folders) below the folder ``dir_fd``: no part may be a link,
    the file must be a regular file. Returns the descriptor (the caller closes it) and its ``fstat``.

    FileNotFoundError when it is missing; NotRegular naming what it is otherwise (a pipe or device is refused
    from its ``lstat``, before it is opened); Swapped when it changed between the two."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise OSError(errno.EINVAL, "not a relative name below the folder", rel)
    fd = os.dup(dir_fd)
    for part in parts[:-1]:
        try:
            fd = _step(fd, part)
        except Swapped:
            raise NotRegular("below a symbolic link or a file, not a folder") from None
    try:
        before = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISREG(before.st_mode):
            raise NotRegular(_kind(before.st_mode))
        try:
            file_fd = os.open(parts[-1], _FILE, dir_fd=fd)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise Swapped() from err
            raise
    finally:
        os.close(fd)
    st = os.fstat(file_fd)
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
        os.close(file_fd)
        raise Swapped()
    return file_fd, st


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def copy_from(fd: int, st: os.stat_result, dst: Path, hasher: object = None) -> None:
    """Copy the whole file open as ``fd`` (``st`` its fstat) to the new file ``dst``; Swapped when it changed
    size or was modified while being copied (``dst`` is then removed)."""
    written = 0
    with open(fd, "rb", closefd=False) as src, open(dst, "xb") as out:
        src.seek(0)
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            written += len(chunk)
            if hasher is not None:
                hasher.update(chunk)  # type: ignore[attr-defined]
    after = os.fstat(fd)
    if written != st.st_size or after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns:
        dst.unlink(missing_ok=True)
        raise Swapped()


def link_or_copy(dir_fd: int, rel: str, fd: int, st: os.stat_result, dst: Path, link_at_least: int) -> None:
    """Put the file open as ``fd`` at ``dst``: hard-linked when it is at least ``link_at_least`` bytes and on
    ``dst``'s file system and the new link is that very inode (checked after linking), else copied from ``fd``."""
    if st.st_size >= link_at_least and st.st_dev == os.stat(dst.parent).st_dev:
        try:
            os.link(rel, dst, src_dir_fd=dir_fd, follow_symlinks=False)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
        else:
            if same_file(os.lstat(dst), st):
                return
            dst.unlink()  # the name was swapped between the open and the link: copy what was opened instead
    copy_from(fd, st, dst)


def copy_file(dir_fd: int, rel: str, dst: Path) -> None:
    """Copy ``rel`` below ``dir_fd`` to ``dst`` without following links (see :func:`open_regular`)."""
    fd, st = open_regular(dir_fd, rel)
    try:
        copy_from(fd, st, dst)
    finally:
        os.close(fd)

