"""The PKI directory: permissions, atomic and idempotent writes, force, renew, revoke, CRL."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from pki import (
    BadCSRSignature,
    CAExpired,
    CANotFound,
    CertificateNotFound,
    CertificateRevoked,
    ChainError,
    FileExists,
    InsecurePermissions,
    InvalidInput,
    InvalidSAN,
    KeyMismatch,
    KeyType,
    KeyTypeMismatch,
    NotACA,
    Outcome,
    PKIStore,
    Profile,
    StorageError,
    files,
    generate_key,
    inspect_path,
    parse_serial,
    verify_chain,
)
from pki.keys import encode_private_key

NODE = {"dns": ["node1.example", "localhost"], "ips": ["127.0.0.1"]}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, mode and mtime: equal snapshots mean nothing was written."""
    return {
        p.name: (p.read_bytes(), _mode(p), p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
        if p.name != ".lock"
    }


def _certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 0: any mode we end up with is the one we asked os.open/mkdir for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_init_ca_creates_a_0700_directory_and_0600_key(pki_dir: Path, open_umask: None) -> None:
    result = PKIStore(pki_dir).init_ca(common_name="Acme CA")
    assert result.outcome is Outcome.CREATED
    assert _mode(pki_dir) == 0o700
    assert _mode(pki_dir / "ca.key") == 0o600
    assert _mode(pki_dir / "ca.crt") == 0o644
    assert _certs(pki_dir / "ca.crt")[0].subject.rfc4514_string() == "CN=Acme CA"


def test_issued_keys_are_0600_even_with_an_open_umask(store: PKIStore, open_umask: None) -> None:
    store.issue(Profile.SERVER, "node1", **NODE)
    store.issue(Profile.CLIENT, "alice")
    for name in ("node1.key", "alice.key"):
        assert _mode(store.directory / name) == 0o600
    assert _mode(store.directory / "node1.crt") == 0o644


def test_writes_leave_no_temporary_files(store: PKIStore) -> None:
    store.issue(Profile.PEER, "node1", **NODE)
    store.renew("node1", rekey=True)
    store.revoke(name="node1")
    with pytest.raises(FileExists):
        files.write_file(store.directory / "ca.key", b"x", mode=0o600)
    leftovers = [p.name for p in store.directory.iterdir() if p.name.startswith(".")]
    assert leftovers == [".lock"]


def test_write_file_never_replaces_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "a.key"
    files.write_file(target, b"first", mode=0o600)
    with pytest.raises(FileExists, match="already exists"):
        files.write_file(target, b"second", mode=0o600)
    assert target.read_bytes() == b"first"
    files.write_file(target, b"second", mode=0o600, overwrite=True)
    assert target.read_bytes() == b"second"


def test_issuing_the_same_certificate_twice_leaves_it_unchanged(store: PKIStore) -> None:
    first = store.issue(Profile.SERVER, "node1", **NODE)
    before = _snapshot(store.directory)
    again = store.issue(
        Profile.SERVER, "node1", dns=["LOCALHOST", "node1.example"], ips=["127.0.0.1"]
    )
    assert first.outcome is Outcome.CREATED
    assert again.outcome is Outcome.UNCHANGED
    assert again.serial == first.serial
    assert _snapshot(store.directory) == before


def test_init_ca_twice_is_unchanged_and_a_different_ca_needs_force(store: PKIStore) -> None:
    before = _snapshot(store.directory)
    assert store.init_ca().outcome is Outcome.UNCHANGED
    with pytest.raises(FileExists, match=r"different CA.*--force"):
        store.init_ca(common_name="Another CA")
    assert _snapshot(store.directory) == before
    replaced = store.init_ca(common_name="Another CA", force=True)
    assert replaced.outcome is Outcome.REPLACED
    assert (store.directory / "ca.key").read_bytes() != before["ca.key"][0]


def test_a_different_request_for_an_existing_name_needs_force(store: PKIStore) -> None:
    store.issue(Profile.SERVER, "node1", **NODE)
    before = _snapshot(store.directory)
    with pytest.raises(FileExists, match=r"SANs .*--force"):
        store.issue(Profile.SERVER, "node1", dns=["other.example"])
    with pytest.raises(FileExists, match="profile server"):
        store.issue(Profile.PEER, "node1", **NODE)
    assert _snapshot(store.directory) == before

    replaced = store.issue(Profile.SERVER, "node1", dns=["other.example"], force=True)
    assert replaced.outcome is Outcome.REPLACED
    assert replaced.sans == ("other.example",)
    assert (store.directory / "node1.key").read_bytes() != before["node1.key"][0]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dns": ["bad_name"]}, InvalidSAN),
        ({"ips": ["999.1.1.1"]}, InvalidSAN),
        ({"dns": []}, InvalidInput),
        ({"dns": ["ok.example"], "days": 0}, InvalidInput),
        ({"dns": ["ok.example"], "common_name": ""}, InvalidInput),
    ],
)
def test_bad_input_writes_nothing(
    store: PKIStore, kwargs: dict[str, object], error: type[Exception]
) -> None:
    before = _snapshot(store.directory)
    with pytest.raises(error):
        store.issue(Profile.SERVER, "node1", **kwargs)  # type: ignore[arg-type]
    assert _snapshot(store.directory) == before


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "ca", "crl", "x" * 65])
def test_names_that_are_not_plain_file_names_are_refused(store: PKIStore, name: str) -> None:
    with pytest.raises(InvalidInput):
        store.issue(Profile.CLIENT, name)


def test_issuing_without_a_ca_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CANotFound, match="init-ca"):
        PKIStore(tmp_path / "none").issue(Profile.CLIENT, "alice")
    assert not (tmp_path / "none").exists()


def test_an_expired_ca_is_refused_and_nothing_is_written(pki_dir: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    PKIStore(pki_dir, clock=lambda: past).init_ca(days=10)
    before = _snapshot(pki_dir)
    with pytest.raises(CAExpired, match="expired"):
        PKIStore(pki_dir).issue(Profile.SERVER, "node1", **NODE)
    assert _snapshot(pki_dir) == before


def test_a_key_left_without_a_certificate_is_reused(store: PKIStore) -> None:
    key = generate_key()
    files.write_file(store.key_path("alice"), encode_private_key(key), mode=0o600)
    store.issue(Profile.CLIENT, "alice")
    cert = _certs(store.cert_path("alice"))[0]
    assert cert.public_key() == key.public_key()


def test_a_wrong_key_type_is_refused(store: PKIStore) -> None:
    store.issue(Profile.CLIENT, "alice", key_type=KeyType.ED25519)
    with pytest.raises(KeyTypeMismatch, match="ed25519, not ecdsa-p256"):
        store.issue(Profile.CLIENT, "alice", key_type=KeyType.ECDSA_P256)
    with pytest.raises(KeyTypeMismatch, match="ed25519, not ecdsa-p256"):
        store.renew("alice", key_type=KeyType.ECDSA_P256)
    store.cert_path("alice").unlink()  # an interrupted run left only the key
    with pytest.raises(KeyTypeMismatch):
        store.issue(Profile.CLIENT, "alice", key_type=KeyType.ECDSA_P256)


def test_a_directory_writable_by_others_is_refused(store: PKIStore) -> None:
    store.directory.chmod(0o777)
    with pytest.raises(InsecurePermissions, match="chmod 700"):
        store.issue(Profile.CLIENT, "alice")


def test_a_key_readable_by_others_is_refused(store: PKIStore) -> None:
    (store.directory / "ca.key").chmod(0o644)
    with pytest.raises(InsecurePermissions, match="chmod 600"):
        store.issue(Profile.CLIENT, "alice")
    assert not store.cert_path("alice").exists()


def test_renew_keeps_subject_sans_profile_and_key_with_a_new_validity(pki_dir: Path) -> None:
    early = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)
    past = PKIStore(pki_dir, clock=lambda: early)
    past.init_ca()
    past.issue(Profile.PEER, "node1", days=200, **NODE)
    store = PKIStore(pki_dir)
    old = _certs(store.cert_path("node1"))[0]
    key_before = store.key_path("node1").read_bytes()

    result = store.renew("node1", days=400)
    new = _certs(store.cert_path("node1"))[0]
    assert result.outcome is Outcome.RENEWED
    assert new.serial_number != old.serial_number
    assert new.subject == old.subject
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName) == (
        old.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    )
    assert Profile.of_certificate(new) is Profile.PEER
    assert new.not_valid_after_utc > old.not_valid_after_utc + dt.timedelta(days=250)
    assert new.public_key() == old.public_key()
    assert store.key_path("node1").read_bytes() == key_before


def test_renew_with_rekey_replaces_the_key_keeping_it_0600(store: PKIStore) -> None:
    store.issue(Profile.SERVER, "node1", **NODE)
    key_before = store.key_path("node1").read_bytes()
    store.renew("node1", rekey=True, key_type=KeyType.ED25519)
    key_pem = store.key_path("node1").read_bytes()
    assert key_pem != key_before
    assert _mode(store.key_path("node1")) == 0o600
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert _certs(store.cert_path("node1"))[0].public_key() == key.public_key()


def test_renew_refuses_a_key_that_does_not_match(store: PKIStore) -> None:
    store.issue(Profile.CLIENT, "alice")
    files.write_file(
        store.key_path("alice"), encode_private_key(generate_key()), mode=0o600, overwrite=True
    )
    with pytest.raises(KeyMismatch):
        store.renew("alice")


def test_renewing_an_unknown_name_is_an_error(store: PKIStore) -> None:
    with pytest.raises(CertificateNotFound, match="nobody"):
        store.renew("nobody")


def test_revoke_publishes_a_crl_that_lists_the_serial(store: PKIStore) -> None:
    store.issue(Profile.CLIENT, "alice")
    store.issue(Profile.CLIENT, "bob")
    alice = _certs(store.cert_path("alice"))[0]
    result = store.revoke(name="alice", reason=x509.ReasonFlags.key_compromise)
    assert result.outcome is Outcome.REVOKED
    crl = x509.load_pem_x509_crl(store.crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(alice.serial_number) is not None
    assert len(list(crl)) == 1
    ca_cert = _certs(store.ca_cert_path)[0]
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]

    report = inspect_path(store.directory)
    by_name = {Path(c.source or "").name: c for c in report.certificates}
    assert by_name["alice.crt"].revoked is True
    assert by_name["bob.crt"].revoked is False


def test_revoking_twice_is_unchanged_and_by_serial_finds_the_same(store: PKIStore) -> None:
    issued = store.issue(Profile.CLIENT, "alice")
    store.revoke(serial=parse_serial(issued.serial))
    crl_before = store.crl_path.read_bytes()
    again = store.revoke(name="alice")
    assert again.outcome is Outcome.UNCHANGED
    assert store.crl_path.read_bytes() == crl_before


def test_revoking_an_unknown_serial_is_an_error(store: PKIStore) -> None:
    with pytest.raises(CertificateNotFound, match="was not issued"):
        store.revoke(serial=0xABCDEF)


def test_a_revoked_certificate_is_renewed_only_with_a_new_key(store: PKIStore) -> None:
    store.issue(Profile.CLIENT, "alice")
    store.revoke(name="alice")
    with pytest.raises(CertificateRevoked, match="--rekey"):
        store.renew("alice")
    assert store.renew("alice", rekey=True).outcome is Outcome.RENEWED


def test_each_crl_has_a_higher_number(store: PKIStore) -> None:
    first = store.publish_crl()
    second = store.publish_crl(days=3)
    assert second.number == first.number + 1
    crl = x509.load_pem_x509_crl(store.crl_path.read_bytes())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == second.number


def test_a_damaged_index_is_a_clear_error(store: PKIStore) -> None:
    store.index_path.write_text("{not json")
    with pytest.raises(StorageError, match="damaged"):
        store.issue(Profile.CLIENT, "alice")


def test_an_intermediate_signs_leaves_and_ships_in_their_chain(store: PKIStore) -> None:
    assert store.init_intermediate().outcome is Outcome.CREATED
    assert store.init_intermediate().outcome is Outcome.UNCHANGED
    store.issue(Profile.SERVER, "node1", **NODE)
    leaf, *chain = _certs(store.cert_path("node1"))
    intermediate = _certs(store.intermediate_cert_path)[0]
    assert chain == [intermediate]
    root = _certs(store.ca_cert_path)[0]
    assert verify_chain(leaf, roots=[root], intermediates=chain)[-1] == root
    assert inspect_path(store.directory).ok


def test_an_intermediate_can_be_signed_by_an_offline_root(tmp_path: Path) -> None:
    root = PKIStore(tmp_path / "root")
    root.init_ca()
    online = PKIStore(tmp_path / "online")
    online.init_intermediate(parent=root.directory)
    assert not online.ca_key_path.exists()
    assert online.ca_cert_path.read_bytes() == root.ca_cert_path.read_bytes()
    online.issue(Profile.CLIENT, "alice")
    assert inspect_path(online.directory).ok


def test_replacing_the_root_strands_the_old_intermediate(store: PKIStore) -> None:
    store.init_intermediate()
    store.init_ca(common_name="New Root", force=True)
    with pytest.raises(ChainError):
        store.issue(Profile.CLIENT, "alice")


def _csr_pem(cn: str = "carol", dns: tuple[str, ...] = ()) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    return builder.sign(generate_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_sign_csr_writes_the_certificate_and_is_idempotent(store: PKIStore, tmp_path: Path) -> None:
    csr = _csr_pem()
    out = tmp_path / "carol.crt"
    first = store.sign_csr(csr, profile=Profile.CLIENT, out=out)
    assert first.outcome is Outcome.CREATED and first.key_path is None
    content = out.read_bytes()
    assert store.sign_csr(csr, profile=Profile.CLIENT, out=out).outcome is Outcome.UNCHANGED
    assert out.read_bytes() == content
    with pytest.raises(FileExists):
        store.sign_csr(_csr_pem(), profile=Profile.CLIENT, out=out)


def test_sign_csr_with_a_bad_signature_writes_nothing(store: PKIStore, tmp_path: Path) -> None:
    der = x509.load_pem_x509_csr(_csr_pem("carol")).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"carol", b"carom")
    before = _snapshot(store.directory)
    with pytest.raises(BadCSRSignature):
        store.sign_csr(tampered, profile=Profile.CLIENT, out=tmp_path / "x.crt")
    assert not (tmp_path / "x.crt").exists()
    assert _snapshot(store.directory) == before


def test_a_bad_path_length_creates_no_directory(pki_dir: Path) -> None:
    with pytest.raises(InvalidInput, match="path length"):
        PKIStore(pki_dir).init_ca(path_length=-1)
    assert not pki_dir.exists()


def test_a_root_with_path_length_zero_refuses_an_intermediate_writing_nothing(
    pki_dir: Path,
) -> None:
    store = PKIStore(pki_dir)
    store.init_ca(path_length=0)
    before = _snapshot(pki_dir)
    with pytest.raises(NotACA, match="path length 0"):
        store.init_intermediate()
    assert _snapshot(pki_dir) == before


def test_an_expired_intermediate_is_refused(pki_dir: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    old = PKIStore(pki_dir, clock=lambda: past)
    old.init_ca()
    old.init_intermediate(days=10)
    with pytest.raises(CAExpired, match="Ward Intermediate CA"):
        PKIStore(pki_dir).issue(Profile.CLIENT, "alice")


def test_sign_csr_cannot_overwrite_the_pki_own_files(store: PKIStore) -> None:
    for target in (store.ca_cert_path, store.crl_path, store.directory / "alice.key"):
        with pytest.raises(InvalidInput, match="PKI's own files"):
            store.sign_csr(_csr_pem(), profile=Profile.CLIENT, out=target, force=True)


def test_show_reports_a_key_readable_by_others(store: PKIStore) -> None:
    store.issue(Profile.CLIENT, "alice")
    assert inspect_path(store.directory).ok
    store.key_path("alice").chmod(0o644)
    report = inspect_path(store.directory)
    assert not report.ok
    assert any("alice.key" in problem and "chmod 600" in problem for problem in report.problems)


def test_show_skips_pem_files_that_hold_no_certificate(store: PKIStore) -> None:
    files.write_file(
        store.directory / "extra-key.pem", encode_private_key(generate_key()), mode=0o600
    )
    store.publish_crl()
    report = inspect_path(store.directory)
    assert report.ok, report.problems
    assert [Path(c.source or "").name for c in report.certificates] == ["ca.crt"]


def test_the_ca_cannot_revoke_itself(store: PKIStore) -> None:
    ca = _certs(store.ca_cert_path)[0]
    with pytest.raises(InvalidInput, match="is a CA certificate"):
        store.revoke(serial=ca.serial_number)
