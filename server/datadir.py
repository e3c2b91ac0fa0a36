"""The member's data directory: created 0700, refused when others can read it, locked while used."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path


class DataDirError(Exception):
    """The data directory cannot be used; the message says why and what to do."""


class DataDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    @property
    def db_path(self) -> Path:
        return self.path / "member" / "db"

    @property
    def ipc_path(self) -> Path:
        return self.path / "member" / "ward.sock"

    def open(self) -> None:
        """Create or check the directory, then take the exclusive lock."""
        if self.path.exists():
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077:
                raise DataDirError(
                    f"data directory {self.path} has permissions {mode:04o}; Ward requires 0700 "
                    f"(run: chmod 700 {self.path})"
                )
        else:
            self.path.mkdir(mode=0o700, parents=True)
            os.chmod(self.path, 0o700)  # mkdir's mode is masked by the umask
        member = self.path / "member"
        member.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(member / "ward.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise DataDirError(
                    f"data directory {self.path} is in use by another ward process"
                ) from None
            raise
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
