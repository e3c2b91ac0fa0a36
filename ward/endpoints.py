"""Client endpoints and their transport security, as etcd's Go client (3.4) reads them.

- `http://host:port` and `unix://path` are plaintext; `https://host:port` and `unixs://path`
  use TLS.
- A bare `host:port` uses TLS when the client has any TLS material (a CA, a certificate or a key)
  or was asked for a secure transport, and plaintext otherwise.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from ward.errors import ClientConfigError

__all__ = ["Endpoint", "TLSConfig", "parse_endpoint"]

_PLAIN_SCHEMES = {"http": False, "unix": False, "https": True, "unixs": True}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint: how the user wrote it and where gRPC dials it."""

    raw: str
    target: str
    host: str
    port: int | None
    tls: bool


def parse_endpoint(raw: str, *, tls_by_default: bool) -> Endpoint:
    """Parse `raw`; `tls_by_default` decides for endpoints written without a scheme."""
    if "://" not in raw:
        host, port = _split_host_port(raw, raw)
        return Endpoint(raw, _tcp_target(host, port), host, port, tls_by_default)
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in _PLAIN_SCHEMES:
        raise ClientConfigError(f"unsupported endpoint scheme {parts.scheme!r} in {raw!r}")
    tls = _PLAIN_SCHEMES[scheme]
    if scheme.startswith("unix"):
        path = parts.netloc + parts.path
        if not path:
            raise ClientConfigError(f"endpoint {raw!r} names no socket path")
        return Endpoint(raw, f"unix:{path}", "localhost", None, tls)
    host, port = _split_host_port(parts.netloc, raw)
    return Endpoint(raw, _tcp_target(host, port), host, port, tls)


def _split_host_port(hostport: str, raw: str) -> tuple[str, int]:
    if hostport.startswith("["):
        host, sep, rest = hostport[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ClientConfigError(f"endpoint {raw!r} is not host:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = hostport.rpartition(":")
        if not sep or not host:
            raise ClientConfigError(f"endpoint {raw!r} is not host:port")
    try:
        port = int(port_text)
    except ValueError:
        raise ClientConfigError(f"endpoint {raw!r} has a bad port") from None
    if not 0 < port < 65536:
        raise ClientConfigError(f"endpoint {raw!r} has a bad port")
    return host, port


def _tcp_target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        # Worded as Go's os package words it, which is what etcdctl prints.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno == errno.ENOENT:
            reason = "no such file or directory"
        raise ClientConfigError(
            f"open {os.fspath(path)}: {reason[:1].lower()}{reason[1:]}"
        ) from None


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS material, loaded and checked once so a bad file fails at construction."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    skip_verify: bool

    @classmethod
    def load(
        cls,
        *,
        cacert: str | os.PathLike[str] | None,
        cert: str | os.PathLike[str] | None,
        key: str | os.PathLike[str] | None,
        insecure_skip_verify: bool,
    ) -> TLSConfig:
        """Read and validate the PEM files (paths may be None)."""
        if (cert is None) != (key is None):
            raise ClientConfigError(
                "KeyFile and CertFile must both be present"
                f"[key: {os.fspath(key) if key else ''}, cert: {os.fspath(cert) if cert else ''}]"
            )
        ca_pem = _read(cacert) if cacert is not None else None
        cert_pem = _read(cert) if cert is not None else None
        key_pem = _read(key) if key is not None else None
        _validate(ca_pem, cert_pem, key_pem)
        return cls(ca_pem, cert_pem, key_pem, insecure_skip_verify)

    @property
    def has_material(self) -> bool:
        """Whether any CA, certificate or key was given."""
        return self.ca is not None or self.cert is not None

    def credentials(
        self, endpoint: Endpoint, timeout: float
    ) -> tuple[grpc.ChannelCredentials, str]:
        """Channel credentials for `endpoint`, and the name to check its certificate against."""
        if not self.skip_verify:
            return (
                grpc.ssl_channel_credentials(self.ca, self.key, self.cert),
                "",
            )
        # gRPC Python cannot turn verification off. Trusting exactly the certificate the server
        # presents now gives the same effect for this connection (its expiry is still checked).
        leaf_pem, name = _fetch_server_certificate(endpoint, self, timeout)
        return grpc.ssl_channel_credentials(leaf_pem, self.key, self.cert), name


def _validate(ca: bytes | None, cert: bytes | None, key: bytes | None) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if ca is not None:
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise ClientConfigError("failed to find any PEM data in CA input") from None
    if cert is not None and key is not None:
        try:
            leaf = x509.load_pem_x509_certificates(cert)[0]
        except ValueError:
            raise ClientConfigError(
                "tls: failed to find any PEM data in certificate input"
            ) from None
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError):
            raise ClientConfigError("tls: failed to find any PEM data in key input") from None
        der = serialization.Encoding.DER
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if leaf.public_key().public_bytes(der, spki) != private.public_key().public_bytes(
            der, spki
        ):
            raise ClientConfigError("tls: private key does not match public key")


def _fetch_server_certificate(
    endpoint: Endpoint, tls: TLSConfig, timeout: float
) -> tuple[bytes, str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if tls.cert is not None and tls.key is not None:
        _load_client_chain(context, tls.cert, tls.key)
    if endpoint.port is None:
        raise ClientConfigError("insecure_skip_verify needs a TCP endpoint")
    try:
        with (
            socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=endpoint.host) as conn,
        ):
            der = conn.getpeercert(binary_form=True)
    except OSError as exc:
        raise ClientConfigError(f"cannot fetch the certificate of {endpoint.raw}: {exc}") from None
    if der is None:
        raise ClientConfigError(f"{endpoint.raw} presented no certificate")
    leaf = x509.load_der_x509_certificate(der)
    name = endpoint.host
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = san.get_values_for_type(x509.IPAddress)
        name = dns[0] if dns else (str(ips[0]) if ips else name)
    except x509.ExtensionNotFound:
        common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if common:
            name = str(common[0].value)
    return ssl.DER_cert_to_PEM_cert(der).encode(), name


def _load_client_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl wants files; the material lives only in memory, so use a private temporary directory.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cert_path = Path(tmp, "cert.pem")
        key_path = Path(tmp, "key.pem")
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        os.chmod(key_path, 0o600)
        context.load_cert_chain(cert_path, key_path)
