"""What the operations of :class:`pki.store.PKIStore` report back: value types with text and JSON.

Every result says whether anything changed, so scripts (and the server's secure-by-default start)
can run an operation again and see ``unchanged``.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Outcome(enum.StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    REPLACED = "replaced"
    RENEWED = "renewed"
    REVOKED = "revoked"
    PUBLISHED = "published"

    @property
    def changed(self) -> bool:
        return self is not Outcome.UNCHANGED


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class CAResult:
    """The outcome of creating (or finding) a root or intermediate CA."""

    outcome: Outcome
    kind: str
    common_name: str
    cert_path: Path
    key_path: Path
    serial: str
    not_after: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "kind": self.kind,
            "common_name": self.common_name,
            "cert": str(self.cert_path),
            "key": str(self.key_path),
            "serial": self.serial,
            "not_after": _iso(self.not_after),
        }

    def to_text(self) -> str:
        if self.outcome is Outcome.UNCHANGED:
            return f"{self.kind} {self.common_name!r} already exists, unchanged: {self.cert_path}"
        return (
            f"{self.outcome.value} {self.kind} {self.common_name!r} (serial {self.serial},"
            f" expires {_iso(self.not_after)}): {self.cert_path}"
        )


@dataclass(frozen=True, slots=True)
class IssueResult:
    """The outcome of issuing, signing or renewing a leaf certificate."""

    outcome: Outcome
    name: str
    profile: str
    common_name: str
    sans: tuple[str, ...]
    cert_path: Path
    key_path: Path | None
    serial: str
    not_after: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "name": self.name,
            "profile": self.profile,
            "common_name": self.common_name,
            "sans": list(self.sans),
            "cert": str(self.cert_path),
            "key": None if self.key_path is None else str(self.key_path),
            "serial": self.serial,
            "not_after": _iso(self.not_after),
        }

    def to_text(self) -> str:
        if self.outcome is Outcome.UNCHANGED:
            return (
                f"{self.profile} certificate {self.name!r} already exists, unchanged:"
                f" {self.cert_path}"
            )
        return (
            f"{self.outcome.value} {self.profile} certificate {self.name!r} (CN={self.common_name},"
            f" serial {self.serial}, expires {_iso(self.not_after)}): {self.cert_path}"
        )


@dataclass(frozen=True, slots=True)
class RevokeResult:
    """The outcome of revoking a certificate, and the CRL published with it."""

    outcome: Outcome
    serial: str
    name: str | None
    crl_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "serial": self.serial,
            "name": self.name,
            "crl": str(self.crl_path),
        }

    def to_text(self) -> str:
        what = f"serial {self.serial}" + (f" ({self.name})" if self.name else "")
        if self.outcome is Outcome.UNCHANGED:
            return f"{what} is already revoked, unchanged; CRL: {self.crl_path}"
        return f"revoked {what}; CRL published: {self.crl_path}"


@dataclass(frozen=True, slots=True)
class CRLResult:
    """A newly published CRL."""

    crl_path: Path
    number: int
    revoked: int
    next_update: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": Outcome.PUBLISHED.value,
            "crl": str(self.crl_path),
            "number": self.number,
            "revoked": self.revoked,
            "next_update": _iso(self.next_update),
        }

    def to_text(self) -> str:
        return (
            f"published CRL #{self.number} ({self.revoked} revoked, next update"
            f" {_iso(self.next_update)}): {self.crl_path}"
        )
