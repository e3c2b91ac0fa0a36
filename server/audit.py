"""The member's audit log: append-only JSON lines, hash-chained and anchored by a secret key.

Every line is one JSON object: a sequence number, the time, the member, the event and its
fields (who, what, which key range, the result, the revision), ``prev`` (the MAC of the line
before) and ``mac``: HMAC-SHA256, under the member's audit key, of ``prev`` and the line's
other fields in canonical form. The first line's ``prev`` is the MAC of a fixed genesis text, so

- an edited line fails its own MAC (nobody without the key can make a new one);
- a deleted or reordered line breaks the ``prev`` link of the line after it;
- a forged log made from scratch fails without the key.

The key (``audit.key``, 32 random bytes, mode 0600) lives in the member's data directory. Lines
never carry a password or a token: callers pass names, keys and results only.

Every serving process of a member appends to the same file (workers log the requests they deny):
appends take an exclusive `flock`, read the last line's MAC and sequence number under it, and
write the whole line with one `write`. Past `max_size` bytes the file is renamed to ``.1`` (older
ones shift up) and the chain goes on in a new file (its first line links to the old last line).
`verify` checks a file, or several in order.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("ward.audit")

KEY_BYTES = 32
GENESIS = b"ward audit log v1"
DEFAULT_MAX_SIZE = 100 * 1024 * 1024
_KEEP_ROTATED = 10
_TAIL_READ = 64 * 1024


class AuditError(Exception):
    """The audit log does not verify; the message says where and why."""


def load_key(path: Path, *, create: bool = False) -> bytes:
    """The audit key at `path`, made (0600) when missing and `create` is set."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def _genesis(key: bytes) -> str:
    return hmac.new(key, GENESIS, hashlib.sha256).hexdigest()


def _mac(key: bytes, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "mac"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _text(value: Any) -> Any:
    """JSON-safe form of a field: keys are bytes and may be anything."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


class AuditLog:
    """Appends records to one member's audit log (see the module docstring)."""

    def __init__(
        self, path: Path, key: bytes, *, member: str = "", max_size: int = DEFAULT_MAX_SIZE
    ) -> None:
        self.path = path
        self._key = key
        self._member = member
        self._max_size = max_size

    def __repr__(self) -> str:
        return f"AuditLog({self.path})"

    def record(self, event: str, **fields: Any) -> None:
        """Append one line. Never raises: a full disk must not fail the request it records;
        the failure goes to the member's log instead (with the event name only)."""
        try:
            self._append(event, fields)
        except OSError as e:
            log.error("could not write the audit log", extra={"event": event, "error": str(e)})

    __call__ = record

    def _open_locked(self) -> int:
        """The log file, opened and locked; the current one, even if another process rotated
        it while this one waited for the lock (a line in the old file would fork the chain)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                return fd
            os.close(fd)

    def _append(self, event: str, fields: dict[str, Any]) -> None:
        fd = self._open_locked()
        try:
            size = os.fstat(fd).st_size
            if self._max_size and size >= self._max_size:
                fd = self._rotate(fd)
                size = os.fstat(fd).st_size
            # Read under the lock of the file written to: the chain goes on from its last line
            # (or, in a file just rotated, from the last line of the one before).
            seq, prev = self._last(fd, size)
            record: dict[str, Any] = {
                "seq": seq + 1,
                "time": round(time.time(), 6),
                "member": self._member,
                "event": event,
            }
            for k, v in fields.items():
                record[k] = _text(v)
            record["prev"] = prev
            record["mac"] = _mac(self._key, record)
            line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)

    def _last(self, fd: int, size: int) -> tuple[int, str]:
        if size == 0:
            rotated = self.path.with_name(f"{self.path.name}.1")
            try:
                with open(rotated, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    end = f.tell()
                    f.seek(max(0, end - _TAIL_READ))
                    tail = f.read()
            except FileNotFoundError:
                return 0, _genesis(self._key)
        else:
            start = max(0, size - _TAIL_READ)
            tail = os.pread(fd, size - start, start)
        if not tail.strip():
            return 0, _genesis(self._key)
        line = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        last = json.loads(line)
        return int(last["seq"]), str(last["mac"])

    def _rotate(self, fd: int) -> int:
        """Rename the full file away (under its lock) and go on in the current one."""
        for i in range(_KEEP_ROTATED - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        # Other processes may make the new file, fill it and rotate it too before this one gets
        # its lock: lock whichever file is current then, as every append does.
        new = self._open_locked()
        os.close(fd)
        return new


def verify(paths: Sequence[Path], key: bytes, *, continued: bool = False) -> int:
    """Check one audit file, or several in the order written (oldest first); returns the number
    of lines. Raises `AuditError` naming the first file and line that does not verify.

    The chain must start at its anchor (line 1), so removing the first lines is detected too;
    `continued` accepts a chain that starts later (the oldest rotated files were dropped)."""
    prev: str | None = None
    seq: int | None = None
    count = 0
    for path in paths:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                where = f"{path}:{lineno}"
                try:
                    record = json.loads(raw)
                    mac = record["mac"]
                    line_seq = int(record["seq"])
                    line_prev = record["prev"]
                except (ValueError, KeyError, TypeError):
                    raise AuditError(f"{where}: not an audit record") from None
                if not hmac.compare_digest(_mac(key, record), str(mac)):
                    raise AuditError(f"{where}: the line was altered (its MAC does not match)")
                if prev is None:
                    # The first line of the first file: the chain's anchor, unless the caller
                    # says older files were rotated away.
                    anchored = line_seq == 1 and line_prev == _genesis(key)
                    if not anchored and not continued:
                        raise AuditError(
                            f"{where}: the chain does not start at its anchor (lines before it"
                            " were removed; pass --continued for a rotated file)"
                        )
                elif line_prev != prev or line_seq != (seq or 0) + 1:
                    raise AuditError(
                        f"{where}: a line before it was removed or lines were reordered"
                    )
                prev, seq = str(mac), line_seq
                count += 1
    return count


def chain_start(paths: Iterable[Path]) -> int | None:
    """The sequence number the first of `paths` starts at (1 for a log from its beginning)."""
    for path in paths:
        with contextlib.suppress(OSError, ValueError, KeyError), open(path, "rb") as f:
            first = f.readline()
            return int(json.loads(first)["seq"])
    return None
