"""Subject alternative names: parsing, validation and the X.509 extension.

Go's TLS stack (etcd, etcdctl) ignores the common name, so a name a client dials must be a SAN.
A malformed SAN is refused with :class:`InvalidSAN` rather than being written into a certificate
that no client will accept.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from cryptography import x509

from pki.errors import InvalidSAN

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAX_DNS_LENGTH = 253


def parse_dns_name(text: str) -> str:
    """``text`` as a normalised (lower-case, no trailing dot) DNS name; :class:`InvalidSAN` if not.

    A wildcard is allowed only as the whole left-most label (``*.example.com``).
    """
    name = text.strip().lower().removesuffix(".")
    if not name:
        raise InvalidSAN(f"invalid DNS name {text!r}: empty")
    if not name.isascii():
        raise InvalidSAN(f"invalid DNS name {text!r}: use the ASCII (punycode) form")
    if len(name) > _MAX_DNS_LENGTH:
        raise InvalidSAN(f"invalid DNS name {text!r}: longer than {_MAX_DNS_LENGTH} characters")
    if _is_ip(name):
        raise InvalidSAN(f"invalid DNS name {text!r}: it is an IP address (pass it as an IP SAN)")
    labels = name.split(".")
    if labels[0] == "*":
        if len(labels) < 3:
            raise InvalidSAN(f"invalid DNS name {text!r}: a wildcard needs at least two labels")
        labels = labels[1:]
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidSAN(
                f"invalid DNS name {text!r}: label {label!r} must be 1-63 letters, digits or"
                " hyphens, not starting or ending with a hyphen"
            )
    if labels[-1].isdigit():
        raise InvalidSAN(f"invalid DNS name {text!r}: the top-level label is all digits")
    return name


def parse_ip_address(text: str) -> IPAddress:
    """``text`` as an IPv4 or IPv6 address; :class:`InvalidSAN` if it is not one."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidSAN(f"invalid IP address {text!r}") from None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ip_order(address: IPAddress) -> tuple[int, int]:
    return address.version, int(address)


@dataclass(frozen=True, slots=True)
class SubjectAltNames:
    """A validated, de-duplicated, sorted set of DNS names and IP addresses.

    Sorted so that two requests naming the same hosts in another order compare equal.
    """

    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()

    @classmethod
    def parse(
        cls, *, dns: Iterable[str] = (), ips: Iterable[str | IPAddress] = ()
    ) -> SubjectAltNames:
        """Validate ``dns`` names and ``ips``; raise :class:`InvalidSAN` on the first bad one."""
        names = {parse_dns_name(name) for name in dns}
        addresses = {ip if not isinstance(ip, str) else parse_ip_address(ip) for ip in ips}
        return cls(tuple(sorted(names)), tuple(sorted(addresses, key=_ip_order)))

    @classmethod
    def from_hosts(cls, hosts: Iterable[str]) -> SubjectAltNames:
        """Sort ``hosts`` into IP addresses and DNS names (each one validated)."""
        hosts = list(hosts)
        return cls.parse(
            dns=[h for h in hosts if not _is_ip(h.strip())],
            ips=[h for h in hosts if _is_ip(h.strip())],
        )

    @classmethod
    def from_extensions(cls, extensions: x509.Extensions) -> SubjectAltNames:
        """The SANs of a certificate or CSR (validated, so a CSR cannot smuggle a bad one)."""
        try:
            ext = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return cls()
        others = [n for n in ext if not isinstance(n, x509.DNSName | x509.IPAddress)]
        if others:
            raise InvalidSAN(f"unsupported subject alternative name {others[0]}")
        ips: list[IPAddress] = []
        for address in ext.get_values_for_type(x509.IPAddress):
            if not isinstance(address, IPAddress):
                raise InvalidSAN(f"IP address SAN {address} is a network, not an address")
            ips.append(address)
        return cls.parse(dns=ext.get_values_for_type(x509.DNSName), ips=ips)

    def union(self, other: SubjectAltNames) -> SubjectAltNames:
        return SubjectAltNames.parse(
            dns=self.dns_names + other.dns_names, ips=self.ip_addresses + other.ip_addresses
        )

    def covers(self, other: SubjectAltNames) -> bool:
        """True when every name of ``other`` is also one of ours."""
        return set(other.dns_names) <= set(self.dns_names) and set(other.ip_addresses) <= set(
            self.ip_addresses
        )

    def __bool__(self) -> bool:
        return bool(self.dns_names or self.ip_addresses)

    def to_extension(self) -> x509.SubjectAlternativeName:
        general: list[x509.GeneralName] = [x509.DNSName(n) for n in self.dns_names]
        general += [x509.IPAddress(ip) for ip in self.ip_addresses]
        return x509.SubjectAlternativeName(general)

    def as_strings(self) -> list[str]:
        return [*self.dns_names, *(str(ip) for ip in self.ip_addresses)]
