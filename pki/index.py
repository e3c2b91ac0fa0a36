"""The index of certificates a PKI directory has issued and revoked (pure data + JSON form).

The CRL is rebuilt from it, so it is the record of revocations; ``wardctl pki revoke --serial``
looks serials up in it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509

from pki.crl import Revocation
from pki.errors import InvalidInput, StorageError
from pki.serials import format_serial, parse_serial

_FORMAT_VERSION = 1


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def _parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One certificate issued by a CA of this directory.

    ``issuer_key_id`` is the hex subject key identifier of the signing CA: names can repeat when
    a CA is replaced, key identifiers do not.
    """

    serial: int
    name: str
    kind: str
    common_name: str
    issuer_key_id: str
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: x509.ReasonFlags | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": format_serial(self.serial),
            "name": self.name,
            "kind": self.kind,
            "common_name": self.common_name,
            "issuer_key_id": self.issuer_key_id,
            "not_after": _iso(self.not_after),
            "revoked_at": None if self.revoked_at is None else _iso(self.revoked_at),
            "reason": None if self.reason is None else self.reason.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexEntry:
        return cls(
            serial=parse_serial(data["serial"]),
            name=str(data["name"]),
            kind=str(data["kind"]),
            common_name=str(data["common_name"]),
            issuer_key_id=str(data["issuer_key_id"]),
            not_after=_parse_time(data["not_after"]),
            revoked_at=None if data.get("revoked_at") is None else _parse_time(data["revoked_at"]),
            reason=None if data.get("reason") is None else x509.ReasonFlags(data["reason"]),
        )


@dataclass(frozen=True, slots=True)
class Index:
    """Every certificate issued here, and the number of the last CRL published."""

    entries: tuple[IndexEntry, ...] = ()
    crl_number: int = 0

    def find(self, serial: int) -> IndexEntry | None:
        return next((e for e in self.entries if e.serial == serial), None)

    def add(self, entry: IndexEntry) -> Index:
        """This index with ``entry`` (replacing any entry of the same serial)."""
        kept = tuple(e for e in self.entries if e.serial != entry.serial)
        return replace(self, entries=(*kept, entry))

    def revoke(
        self, serial: int, *, at: dt.datetime, reason: x509.ReasonFlags | None = None
    ) -> Index:
        entries = tuple(
            replace(e, revoked_at=at, reason=reason) if e.serial == serial else e
            for e in self.entries
        )
        return replace(self, entries=entries)

    def revocations(self, issuer_key_id: str) -> list[Revocation]:
        """What the CRL of the CA with ``issuer_key_id`` lists."""
        return [
            Revocation(serial=e.serial, revoked_at=e.revoked_at, reason=e.reason)
            for e in self.entries
            if e.revoked_at is not None and e.issuer_key_id == issuer_key_id
        ]

    def to_json(self) -> bytes:
        document = {
            "version": _FORMAT_VERSION,
            "crl_number": self.crl_number,
            "certificates": [e.to_dict() for e in self.entries],
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, source: str = "index") -> Index:
        """Parse :meth:`to_json` output; :class:`StorageError` if it is damaged."""
        try:
            document = json.loads(data)
            if document.get("version") != _FORMAT_VERSION:
                raise ValueError(f"unknown version {document.get('version')!r}")
            return cls(
                entries=tuple(IndexEntry.from_dict(e) for e in document["certificates"]),
                crl_number=int(document["crl_number"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, InvalidInput) as error:
            raise StorageError(f"{source} is damaged ({error}); repair or remove it") from None
