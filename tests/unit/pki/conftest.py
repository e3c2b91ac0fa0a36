"""Shared fixtures of the PKI tests: real ECDSA keys and certificates, in tmp_path only."""

from __future__ import annotations

from pathlib import Path

import pytest

from pki import CertificateAuthority, KeyType, PKIStore, generate_key


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    return tmp_path / "pki"


@pytest.fixture
def store(pki_dir: Path) -> PKIStore:
    """A PKI directory holding a fresh root CA."""
    pki = PKIStore(pki_dir)
    pki.init_ca()
    return pki


@pytest.fixture(scope="session")
def root_ca() -> CertificateAuthority:
    return CertificateAuthority.create_root(
        common_name="Test Root", key=generate_key(KeyType.ECDSA_P256)
    )


@pytest.fixture(scope="session")
def other_ca() -> CertificateAuthority:
    """A CA unrelated to :func:`root_ca`, for everything that must be refused."""
    return CertificateAuthority.create_root(
        common_name="Other Root", key=generate_key(KeyType.ECDSA_P256)
    )
