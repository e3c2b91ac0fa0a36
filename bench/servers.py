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
    """A server started by the bench: one member, or every member of a cluster."""

    kind: str
    endpoint: str
    pid: int
    data_dir: Path
    log_path: Path
    tls: TlsFiles | None = None
    # Every member's client endpoint and root PID (``endpoint``/``pid`` are the first member's).
    endpoints: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()

    @property
    def url(self) -> str:
        """The client URL (of the first member)."""
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    @property
    def members(self) -> int:
        """How many members serve."""
        return max(1, len(self.pids))


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
    name: str,
    data_dir: Path,
    client_port: int,
    peer_port: int,
    *,
    tls: bool = False,
    initial_cluster: str | None = None,
) -> list[str]:
    """etcd flags for one member on loopback ports (Ward accepts the same); ``tls``: https
    clients. ``initial_cluster`` (``name=peer-url,...``) makes it a member of a new cluster;
    without it, the only member of its own."""
    client = f"{'https' if tls else 'http'}://{_HOST}:{client_port}"
    peer = f"http://{_HOST}:{peer_port}"
    flags = [
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", initial_cluster or f"{name}={peer}",
        "--quota-backend-bytes", str(QUOTA_BACKEND_BYTES),
    ]  # fmt: skip
    if initial_cluster:
        flags += ["--initial-cluster-state", "new", "--initial-cluster-token", "ward-bench"]
    return flags


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


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
    stop_groups([proc], grace)


def stop_groups(procs: Sequence[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """``stop_group`` for several servers at once (the members of a cluster): all are told to
    stop together, so none waits out an election while the others are still going down."""
    for proc in procs:
        # start_new_session made each server the leader of its own group
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        # Stragglers (a worker that outlived the leader) go too.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class _Member:
    name: str
    root: Path
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{_HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{_HOST}:{self.peer_port}"


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
    members: int = 1,
) -> Iterator[StartedServer]:
    """Start a fresh server of ``kind`` in a temporary data dir; stop it and remove the dir after.

    ``members`` > 1 starts a new cluster of that many members on loopback (each in its own data
    dir and process group, with the same flags for etcd and Ward) and waits until every member
    answers a linearizable Range (a leader is elected).
    With ``tls`` the server serves mutual TLS with a fresh CA's certificates (the same flags for
    etcd and Ward; peers talk plain http), and ``StartedServer.tls`` holds what clients present.
    Raises ServerStartError (with the tail of the server's log) if it does not come up.
    """
    if members < 1:
        raise ValueError("members must be at least 1")
    command, env = server_command(kind, ward_cmd=ward_cmd, etcd_bin=etcd_bin)
    root = Path(tempfile.mkdtemp(prefix=f"ward-bench-{kind}-", dir=data_root))
    ports = free_ports(2 * members)
    if members == 1:
        group = [_Member("bench", root, ports[0], ports[1])]
    else:
        group = [
            _Member(f"m{i}", root / f"m{i}", ports[2 * i], ports[2 * i + 1]) for i in range(members)
        ]
    initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in group) if members > 1 else None
    files = make_pki(root / "pki") if tls else None
    # Ward signs JWTs by default (with a key of its own); etcd needs a key pair given, the same
    # to every member of a cluster (each verifies the tokens the others sign).
    common = jwt_flags(root / "jwt") if jwt and kind == "etcd" else []
    argvs = []
    try:
        for m in group:
            m.root.mkdir(parents=True, exist_ok=True)
            argv = [
                *command,
                *etcd_flags(
                    m.name,
                    m.root / "data",
                    m.client_port,
                    m.peer_port,
                    tls=tls,
                    initial_cluster=initial_cluster,
                ),
            ]
            if tls:
                argv += tls_flags(root / "pki")
            argv += [*common, *extra_args]
            argvs.append(argv)
            with open(m.root / "server.log", "wb") as log:
                m.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=m.root,
                    start_new_session=True,
                )
        for m, argv in zip(group, argvs, strict=True):
            try:
                wait_ready(m.endpoint, m.proc, ready_timeout, files)
            except ServerStartError as err:
                log_path = m.root / "server.log"
                raise ServerStartError(
                    f"{kind} {m.name} did not start ({err}); command: {shlex.join(argv)}\n"
                    f"--- last lines of {log_path} ---\n{_log_tail(log_path)}"
                ) from None
        first = group[0]
        assert first.proc is not None
        yield StartedServer(
            kind,
            first.endpoint,
            first.proc.pid,
            first.root / "data",
            first.root / "server.log",
            files,
            endpoints=tuple(m.endpoint for m in group),
            pids=tuple(m.proc.pid for m in group if m.proc is not None),
        )
    finally:
        stop_groups([m.proc for m in group if m.proc is not None])
        shutil.rmtree(root, ignore_errors=True)
