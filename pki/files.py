"""The only module of :mod:`pki` that touches the file system.

- Writes are atomic: a temporary file in the same directory, written, fsync'd, then renamed (or
  hard-linked, when an existing file must not be replaced) into place, and the directory fsync'd.
  A crash leaves the old file or the new one, never half of one.
- Private keys are created 0600 by ``os.open`` itself, so no other user can open them between
  creation and a later ``chmod``; directories are created 0700.
- A directory writable by other users, or a key file readable by them, is refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from pki.errors import FileExists, InsecurePermissions, StorageError

DIR_MODE = 0o700
KEY_MODE = 0o600
PUBLIC_MODE = 0o644
_TEMP_SUFFIX = ".tmp"
_LOCK_NAME = ".lock"


def _storage_error(action: str, path: Path, error: OSError) -> StorageError:
    reason = error.strerror or type(error).__name__
    return StorageError(f"cannot {action} {path}: {reason}")


def ensure_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700, or check the existing one.

    An existing directory that others may write to is refused: they could swap a key or a CA.
    """
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as error:
        raise _storage_error("create directory", path, error) from error
    if not stat.S_ISDIR(info.st_mode):
        raise StorageError(f"{path} is not a directory")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecurePermissions(
            f"directory {path} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o});"
            " use chmod 700"
        )


def exists(path: Path) -> bool:
    """True when something (a file, or a dangling symlink) is at ``path``."""
    return os.path.lexists(path)


def read_file(path: Path, *, secret: bool = False) -> bytes | None:
    """The contents of ``path``, or None if there is no such file.

    With ``secret``, the file must not be accessible by group or others (checked on the opened
    file, so it cannot be swapped between the check and the read).
    """
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _storage_error("open", path, error) from error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StorageError(f"{path} is not a regular file")
        if secret and info.st_mode & 0o077:
            raise InsecurePermissions(
                f"key file {path} is accessible by other users"
                f" (mode {stat.S_IMODE(info.st_mode):04o}); use chmod 600"
            )
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as error:
        raise _storage_error("read", path, error) from error
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, *, mode: int, overwrite: bool = False) -> None:
    """Atomically make ``path`` hold ``data``, created with ``mode``.

    Without ``overwrite`` an existing file is never replaced (:class:`FileExists`), even one that
    appears between our check and our write: the final step is a hard link, which fails if the
    name is taken.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}")
    try:
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode
        )
    except OSError as error:
        raise _storage_error("create", temp, error) from error
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, path)
        else:
            _link_new(temp, path)
        _fsync_directory(path.parent)
    except OSError as error:
        raise _storage_error("write", path, error) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _link_new(temp: Path, path: Path) -> None:
    try:
        os.link(temp, path)
    except FileExistsError:
        raise FileExists(f"{path} already exists; pass --force to replace it") from None
    except OSError as error:
        # Some file systems have no hard links; fall back to a check-then-rename.
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if exists(path):
            raise FileExists(f"{path} already exists; pass --force to replace it") from None
        os.replace(temp, path)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_files(directory: Path) -> list[Path]:
    """The regular files in ``directory`` (not hidden ones, not temporary files), sorted."""
    try:
        entries = sorted(directory.iterdir())
    except OSError as error:
        raise _storage_error("list", directory, error) from error
    return [p for p in entries if not p.name.startswith(".") and p.is_file()]


def is_directory(path: Path) -> bool:
    return path.is_dir()


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` so two ``wardctl pki`` runs do not interleave."""
    lock = directory / _LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, KEY_MODE)
    except OSError as error:
        raise _storage_error("lock", directory, error) from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
