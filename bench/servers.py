"""Starting a fresh etcd or Ward for one run, and always stopping it.

Both servers take etcd's flags, so they share one code path: only the command differs. The
server runs in its own process group (Ward serves from several processes) and the whole group is
killed on the way out.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench import wire
from bench.config import TlsFiles

SERVER_KINDS = ("etcd", "ward")
_HOST = "127.0.0.1"
QUOTA_BACKEND_BYTES = 8 * 1024**3
# Codes that mean "nobody is serving yet"; any other answer, even an error, means it is up.
_NOT_READY = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
}
_REPO = Path(__file__).resolve().parent.parent


class ServerStartError(RuntimeError):
    """The server exited or never answered."""


@dataclass(frozen=True)
class StartedServer:
    """A server started by the bench."""

    kind: str
    endpoint: str
    pid: int
    data_dir: Path
    log_path: Path
    tls: TlsFiles | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"


def free_port() -> int:
    """A loopback TCP port nobody is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


def make_pki(directory: Path) -> TlsFiles:
    """A fresh CA, a server certificate for the loopback address and a client certificate (CN
    root), made with Ward's ``pki`` package; what a ``--tls`` run serves and presents."""
    from pki import PKIStore, Profile

    store = PKIStore(directory)
    store.init_ca(common_name="ward-bench CA")
    store.issue(Profile.SERVER, "server", dns=["localhost"], ips=[_HOST])
    store.issue(Profile.CLIENT, "client", common_name="root")
    return TlsFiles(
        cacert=str(store.ca_cert_path),
        cert=str(store.cert_path("client")),
        key=str(store.key_path("client")),
    )


def tls_flags(directory: Path) -> list[str]:
    """etcd's flags for mutual TLS with the files ``make_pki`` wrote (Ward takes the same)."""
    return [
        f"--cert-file={directory / 'server.crt'}",
        f"--key-file={directory / 'server.key'}",
        f"--trusted-ca-file={directory / 'ca.crt'}",
        "--client-cert-auth",
    ]


def jwt_flags(directory: Path) -> list[str]:
    """etcd's `--auth-token` for ES256 JWTs with a fresh key pair written to `directory`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = directory / "jwt.key", directory / "jwt.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return ["--auth-token", f"jwt,pub-key={pub},priv-key={priv},sign-method=ES256"]


def etcd_flags(
    name: str, data_dir: Path, client_port: int, peer_port: int, *, tls: bool = False
) -> list[str]:
    """One-member etcd flags on loopback ports (Ward accepts the same); ``tls``: https."""
    client = f"{'https' if tls else 'http'}://{_HOST}:{client_port}"
    peer = f"http://{_HOST}:{peer_port}"
    return [
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{name}={peer}",
        "--quota-backend-bytes", str(QUOTA_BACKEND_BYTES),
    ]  # fmt: skip


def _checkout_env() -> dict[str, str]:
    """The environment with this checkout (and its generated stubs) first on PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(_REPO), str(_REPO / "proto")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def ward_command() -> tuple[list[str], dict[str, str]]:
    """How to run Ward: from this checkout if it has one, else the installed ``ward`` script.

    The checkout wins so a stale installed script never stands in for the code being measured.
    """
    if (_REPO / "server" / "main.py").exists():
        return [sys.executable, "-m", "server.main"], _checkout_env()
    installed = shutil.which("ward")
    if installed:
        return [installed], dict(os.environ)
    raise ServerStartError("no Ward to start: neither server/main.py here nor `ward` on PATH")


def server_command(
    kind: str, *, ward_cmd: str | None = None, etcd_bin: str = "etcd"
) -> tuple[list[str], dict[str, str]]:
    """The command (without flags) and environment that start a server of ``kind``."""
    if kind == "etcd":
        return [etcd_bin], dict(os.environ)
    if kind == "ward":
        if ward_cmd:
            return shlex.split(ward_cmd), _checkout_env()
        return ward_command()
    raise ValueError(f"unknown server kind {kind!r}; expected one of {SERVER_KINDS}")


def _channel(endpoint: str, tls: TlsFiles | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(endpoint)
    files = [Path(p).read_bytes() if p else None for p in (tls.cacert, tls.key, tls.cert)]
    return grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(*files))


def wait_ready(
    endpoint: str,
    proc: subprocess.Popen[bytes] | None,
    timeout: float,
    tls: TlsFiles | None = None,
) -> None:
    """Poll a linearizable Range until the server answers (a leader exists) or time runs out."""
    deadline = time.monotonic() + timeout
    request = wire.range_template(serializable=False).render(wire.key_bytes(0))
    with _channel(endpoint, tls) as channel:
        call = channel.unary_unary(wire.KV_RANGE)
        while True:
            if proc is not None and proc.poll() is not None:
                raise ServerStartError(f"server exited with status {proc.returncode}")
            try:
                call(request, timeout=1.0)
                return
            except grpc.RpcError as err:
                if err.code() not in _NOT_READY:  # type: ignore[attr-defined]
                    return
            if time.monotonic() >= deadline:
                raise ServerStartError(f"server at {endpoint} not ready after {timeout} s")
            time.sleep(0.1)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, wait ``grace`` for the leader, then SIGKILL whatever is left."""
    pgid = proc.pid  # start_new_session made the server the leader of its own group
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    # Stragglers (a worker that outlived the leader) go too.
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def started_server(
    kind: str,
    *,
    extra_args: Sequence[str] = (),
    ward_cmd: str | None = None,
    etcd_bin: str = "etcd",
    data_root: str | None = None,
    ready_timeout: float = 60.0,
    tls: bool = False,
    jwt: bool = False,
) -> Iterator[StartedServer]:
    """Start a fresh server of ``kind`` in a temporary data dir; stop it and remove the dir after.

    With ``tls`` the server serves mutual TLS with a fresh CA's certificates (the same flags for
    etcd and Ward), and ``StartedServer.tls`` holds what clients present.
    Raises ServerStartError (with the tail of the server's log) if it does not come up.
    """
    command, env = server_command(kind, ward_cmd=ward_cmd, etcd_bin=etcd_bin)
    root = Path(tempfile.mkdtemp(prefix=f"ward-bench-{kind}-", dir=data_root))
    data_dir, log_path = root / "data", root / "server.log"
    client_port, peer_port = free_port(), free_port()
    while peer_port == client_port:
        peer_port = free_port()
    files = make_pki(root / "pki") if tls else None
    argv = [*command, *etcd_flags("bench", data_dir, client_port, peer_port, tls=tls)]
    if tls:
        argv += tls_flags(root / "pki")
    if jwt and kind == "etcd":
        # Ward signs JWTs by default (with a key of its own); etcd needs a key pair given.
        argv += jwt_flags(root / "jwt")
    argv += extra_args
    proc: subprocess.Popen[bytes] | None = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,
                start_new_session=True,
            )
        endpoint = f"{_HOST}:{client_port}"
        try:
            wait_ready(endpoint, proc, ready_timeout, files)
        except ServerStartError as err:
            raise ServerStartError(
                f"{kind} did not start ({err}); command: {shlex.join(argv)}\n"
                f"--- last lines of {log_path} ---\n{_log_tail(log_path)}"
            ) from None
        yield StartedServer(kind, endpoint, proc.pid, data_dir, log_path, files)
    finally:
        if proc is not None:
            stop_group(proc)
        shutil.rmtree(root, ignore_errors=True)
