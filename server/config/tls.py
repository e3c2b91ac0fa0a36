"""TLS versions and cipher-suite names as etcd's flags spell them (Go's ``crypto/tls`` names).

Ward keeps only forward-secret AEAD suites (SECURITY 18): a weak suite named in
``--cipher-suites`` is dropped with a warning rather than enabled, and an unknown name is an
error, as in etcd. ``OPENSSL_NAMES`` translates the kept names for Python's ``ssl`` module.
"""

from __future__ import annotations

TLS_VERSIONS = ("TLS1.2", "TLS1.3")
"""Versions ``--tls-min-version``/``--tls-max-version`` accept, oldest first."""

REFUSED_TLS_VERSIONS = frozenset({"TLS1.0", "TLS1.1"})
"""Versions etcd accepts and Ward refuses: both are deprecated (RFC 8996)."""

OPENSSL_NAMES: dict[str, str] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    # TLS 1.3 suites: Go lists them too, though only TLS 1.2 suites are configurable.
    "TLS_AES_128_GCM_SHA256": "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384": "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256": "TLS_CHACHA20_POLY1305_SHA256",
}
"""Cipher suites Ward enables when asked, by Go name, with their OpenSSL names."""

_ALIASES = {
    # Go's older names for the ChaCha20 suites.
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

WEAK_CIPHER_SUITES = frozenset(
    {
        # No forward secrecy (static RSA key exchange).
        "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        # Broken ciphers, or CBC mode (padding-oracle history).
        "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    }
)
"""Suites Go (and so etcd) knows and Ward will not enable."""


def sort_cipher_suites(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split ``--cipher-suites`` into (kept, dropped-as-weak); raise ValueError on unknown names.

    Kept names are canonical Go names, in the order given (etcd prioritises by order).
    """
    kept: list[str] = []
    weak: list[str] = []
    for name in names:
        canonical = _ALIASES.get(name, name)
        if canonical in OPENSSL_NAMES:
            if canonical not in kept:
                kept.append(canonical)
        elif canonical in WEAK_CIPHER_SUITES:
            weak.append(canonical)
        else:
            raise ValueError(f"unexpected TLS cipher suite {name!r}")
    return tuple(kept), tuple(weak)


def tls_version_rank(version: str) -> int:
    """Order of a supported version name (for min <= max checks)."""
    return TLS_VERSIONS.index(version)
