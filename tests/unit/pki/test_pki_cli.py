"""``wardctl pki`` driven through run_pki: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from pki import generate_key
from ward.cli.pki import add_pki_parser, run_pki


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="wardctl")
    add_pki_parser(parser.add_subparsers(dest="command", required=True))
    code = run_pki(parser.parse_args(["pki", *argv]))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_init_ca_then_again_exits_zero_and_says_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "pki")
    assert _json(capsys, "init-ca", "--dir", d, "--cn", "Acme CA")["outcome"] == "created"
    code, out, err = _run(capsys, "init-ca", "--dir", d, "--cn", "Acme CA")
    assert (code, err) == (0, "")
    assert "unchanged" in out


def test_issue_show_revoke_crl_round_trip_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "pki")
    _json(capsys, "init-ca", "--dir", d)
    issued = _json(
        capsys, "issue", "peer", "node1", "--dir", d, "--dns", "node1.example,localhost",
        "--ip", "127.0.0.1", "--ip", "::1",
    )  # fmt: skip
    assert issued["outcome"] == "created"
    assert issued["sans"] == ["localhost", "node1.example", "127.0.0.1", "::1"]
    assert stat.S_IMODE(Path(str(issued["key"])).stat().st_mode) == 0o600

    shown = _json(capsys, "show", str(issued["cert"]))
    (cert,) = shown["certificates"]  # type: ignore[misc]
    assert cert["profile"] == "peer" and cert["chain"]["ok"] is True and cert["key_matches"]

    revoked = _json(capsys, "revoke", "node1", "--dir", d, "--reason", "keyCompromise")
    assert revoked["outcome"] == "revoked" and revoked["serial"] == issued["serial"]
    crl = _json(capsys, "crl", "--dir", d, "--days", "3")
    assert crl["revoked"] == 1

    code, out, err = _run(capsys, "show", "--dir", d, "--json")
    assert code == 1  # a revoked certificate is a problem worth a non-zero exit
    assert json.loads(out)["ok"] is False
    assert err.startswith("Error: ") and err.count("\n") == 1 and "revoked" in err


def test_errors_are_one_line_on_stderr_with_a_non_zero_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "pki")
    code, out, err = _run(capsys, "issue", "server", "n", "--dir", d, "--dns", "n.example")
    assert code == 1 and out == ""
    assert err.startswith("Error: no PKI directory") and "init-ca" in err and err.count("\n") == 1
    _run(capsys, "init-ca", "--dir", d)
    code, out, err = _run(capsys, "issue", "server", "n", "--dir", d, "--dns", "bad_name")
    assert code == 1 and out == ""
    assert err == (
        "Error: invalid DNS name 'bad_name': label 'bad_name' must be 1-63 letters, digits or"
        " hyphens, not starting or ending with a hyphen\n"
    )
    assert sorted(p.name for p in Path(d).iterdir()) == [".lock", "ca.crt", "ca.key", "index.json"]


def test_issue_again_differently_fails_until_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "pki")
    _run(capsys, "init-ca", "--dir", d)
    assert _run(capsys, "issue", "client", "alice", "--dir", d)[0] == 0
    assert "unchanged" in _run(capsys, "issue", "client", "alice", "--dir", d)[1]
    code, _, err = _run(capsys, "issue", "client", "alice", "--dir", d, "--cn", "mallory")
    assert code == 1 and "--force" in err
    forced = _json(capsys, "issue", "client", "alice", "--dir", d, "--cn", "mallory", "--force")
    assert forced["outcome"] == "replaced" and forced["common_name"] == "mallory"


def test_renew_and_rekey(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "pki")
    _run(capsys, "init-ca", "--dir", d)
    first = _json(capsys, "issue", "server", "n", "--dir", d, "--ip", "127.0.0.1")
    key = Path(str(first["key"])).read_bytes()
    renewed = _json(capsys, "renew", "n", "--dir", d)
    assert renewed["outcome"] == "renewed" and renewed["serial"] != first["serial"]
    assert Path(str(first["key"])).read_bytes() == key
    _json(capsys, "renew", "n", "--dir", d, "--rekey")
    assert Path(str(first["key"])).read_bytes() != key


def test_sign_csr_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "pki")
    _run(capsys, "init-ca", "--dir", d)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc")]))
        .sign(generate_key(), hashes.SHA256())
    )
    csr_path = tmp_path / "svc.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "svc.crt"
    result = _json(
        capsys, "sign-csr", str(csr_path), "--profile", "server", "--out", str(out),
        "--dir", d, "--dns", "svc.example",
    )  # fmt: skip
    assert result["outcome"] == "created" and result["sans"] == ["svc.example"]
    assert x509.load_pem_x509_certificates(out.read_bytes())[0].public_key() == csr.public_key()


def test_revoke_by_unknown_serial_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "pki")
    _run(capsys, "init-ca", "--dir", d)
    code, _, err = _run(capsys, "revoke", "--serial", "AB:CD", "--dir", d)
    assert code == 1 and "ABCD was not issued" in err
    code, _, err = _run(capsys, "revoke", "--serial", "xyz", "--dir", d)
    assert code == 1 and "not a hexadecimal number" in err


def test_intermediate_and_show_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "pki")
    _run(capsys, "init-ca", "--dir", d)
    assert _json(capsys, "intermediate", "--dir", d)["kind"] == "intermediate CA"
    _run(capsys, "issue", "client", "alice", "--dir", d)
    code, out, err = _run(capsys, "show", d)
    assert (code, err) == (0, "")
    assert "OK: alice -> Ward Intermediate CA -> Ward CA" in out


def test_the_directory_can_come_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARD_PKI_DIR", str(tmp_path / "env-pki"))
    assert _run(capsys, "init-ca")[0] == 0
    assert (tmp_path / "env-pki" / "ca.crt").exists()
