"""Helpers for the client and GUI tests: the users, a loopback server, a
recording observer and a test case whose clients join a real server."""

from __future__ import annotations

import datetime
import ipaddress
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import endpoints, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase
from Xlib import display as xdisplay

from muca.client.client import ChatClient
from muca.client.observer import ChatObserver, ReceivedMessage
from muca.client.sending import Refusal
from muca.protocol.messages import Peer
from tests.support import start_service

#: Seconds a test waits for something expected before failing.
TIMEOUT = 5.0

TONY = ("Tony", "Tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
PETER = ("Peter", "peter@hku.hk")


async def listen_loopback(testcase: TestCase, factory: Factory) -> int:
    """Listen with ``factory`` on an OS-chosen loopback port until the test
    ends; return the port."""
    listening = await endpoints.TCP4ServerEndpoint(
        reactor, 0, interface="127.0.0.1"
    ).listen(factory)
    testcase.addCleanup(listening.stopListening)
    return listening.getHost().port


async def closed_port() -> int:
    """A loopback port that nobody listens on (it was open a moment ago)."""
    listening = await endpoints.TCP4ServerEndpoint(
        reactor, 0, interface="127.0.0.1"
    ).listen(Factory.forProtocol(Protocol))
    port = listening.getHost().port
    await listening.stopListening()
    return port


async def wait_until(predicate: Any, timeout: float = TIMEOUT, what: str = "") -> None:
    """Let the reactor run until ``predicate()`` is true; fail after ``timeout``."""
    steps = int(timeout / 0.01)
    for _ in range(steps):
        if predicate():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class RecordingObserver(ChatObserver):
    """Records every event as ``(name, value)`` in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def joined(self) -> None:
        self.events.append(("joined", None))

    def refused(self, code: str, reason: str) -> None:
        self.events.append(("refused", (code, reason)))

    def peers_changed(self, peers: tuple[Peer, ...]) -> None:
        self.events.append(("peers", peers))

    def message_received(self, message: ReceivedMessage) -> None:
        self.events.append(("message", message))

    def server_error(self, code: str, reason: str) -> None:
        self.events.append(("error", (code, reason)))

    def send_refused(self, refusal: Refusal) -> None:
        self.events.append(("send_refused", refusal))

    def presence_changed(
        self, joined: tuple[Peer, ...], left: tuple[Peer, ...], first: bool
    ) -> None:
        self.events.append(("presence", (joined, left, first)))

    def connection_lost(self, reason: str, requested: bool) -> None:
        self.events.append(("lost", (reason, requested)))

    def of(self, name: str) -> list[Any]:
        """The values of every event with this name, in order."""
        return [value for kind, value in self.events if kind == name]

    async def next_of(self, name: str, count: int = 1) -> Any:
        """Wait until ``count`` events of this name exist; return the last."""
        await wait_until(lambda: len(self.of(name)) >= count, what=f"{name} event")
        return self.of(name)[count - 1]


class ClientTestMixin:
    """Connects clients to a server and closes them after the test."""

    port: int

    async def client(
        self,
        user: tuple[str, str],
        timeout: float = 2.0,
        join: bool = True,
        observer: RecordingObserver | None = None,
        port: int | None = None,
    ) -> tuple[ChatClient, RecordingObserver]:
        """A client of ``user`` connected to ``port`` (the test's server by
        default) and joined, reporting to ``observer`` (a new one by default)."""
        observer = observer if observer is not None else RecordingObserver()
        client = ChatClient(reactor, user[0], user[1], observer, timeout=timeout)
        self.addCleanup(client.leave)  # type: ignore[attr-defined]
        await client.connect_tcp("127.0.0.1", self.port if port is None else port)
        if join:
            await client.join()
        return client, observer


class ClientTestCase(ClientTestMixin, TestCase):
    """A server from ``twistd muca``'s service on loopback for each test."""

    async def setUp(self) -> None:
        (listening,) = await start_service(
            self, "--listen", "tcp:0:interface=127.0.0.1"
        )
        self.port = listening.getHost().port
        self.server = listening.factory


async def settle(turns: int = 5) -> None:
    """Give the reactor a few turns (for checks that something did NOT happen)."""
    for _ in range(turns):
        await deferLater(reactor, 0.02, lambda: None)


_xvfb: tuple[subprocess.Popen[bytes], str] | None = None
# A connection to the Xvfb above, kept open for the life of the process.
_keeper: Any = None


def start_display(testcase: TestCase) -> str:
    """The X display for GUI tests: ``$DISPLAY``, or an Xvfb shared by the process.

    One Xvfb serves every test of a process: Tk keeps its connection to a
    display until the process ends, and Xlib ends the process when that
    connection breaks, so the server cannot be stopped between tests.
    ``-terminate`` makes Xvfb exit by itself once the test process is gone.
    Skips the test only when Xvfb cannot be started outside CI; under CI
    (``$CI`` set) that is a failure, since scripts/test installs Xvfb.
    """
    global _xvfb
    display = os.environ.get("DISPLAY")
    if display:
        return display
    if _xvfb is not None and _xvfb[0].poll() is None:
        return _xvfb[1]
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        _no_display(testcase, "Xvfb is not installed (scripts/test installs it)")
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [xvfb, "-displayfd", str(write_end), "-screen", "0", "1320x1000x24"]
            + ["-nolisten", "tcp", "-terminate"],
            pass_fds=[write_end],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(write_end)
    number = b""
    deadline = time.monotonic() + 10
    try:
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.1)
            if ready:
                chunk = os.read(read_end, 16)
                if not chunk:
                    break
                number += chunk
    finally:
        os.close(read_end)
    if not number.strip().isdigit():
        _stop_process(process)
        _no_display(testcase, f"Xvfb did not start (exit status {process.poll()})")
    name = f":{number.strip().decode()}"
    # With -terminate, Xvfb exits whenever its last client goes: between two
    # tests whose windows live in other processes (the demo's), the next
    # test could find a display on its way out. This process holds one
    # connection until it ends, so the display lives exactly as long.
    global _keeper
    _keeper = xdisplay.Display(name)
    _xvfb = (process, name)
    return _xvfb[1]


def _no_display(testcase: TestCase, reason: str) -> None:
    if os.environ.get("CI"):
        testcase.fail(f"GUI tests need a display under CI: {reason}")
    raise SkipTest(f"no X display: {reason}")


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def make_certificates(
    folder: Path,
    host: str = "127.0.0.1",
    names: list[str] | None = None,
    subject: str | None = None,
) -> dict[str, str]:
    """Write a throwaway CA and a server certificate signed by it.

    The server certificate's subjectAltName holds ``names`` (IP addresses
    or DNS names; by default ``host`` and ``localhost``); with ``names=[]``
    it has no extensions at all, as a hand-made certificate often has. Its
    subject is ``CN=subject`` (default: ``host``). Returns the paths of
    ``ca`` (the CA certificate, PEM), ``key`` and ``cert`` (the server's
    private key and certificate, PEM).
    """
    if names is None:
        names = [host, "localhost"]
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        issuer_key: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if ca or names:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=ca, path_length=None), critical=True
            )
        if not ca and names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("MUCA test CA", ca_key, "MUCA test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(subject or host, key, "MUCA test CA", ca_key, ca=False)
    paths = {name: str(folder / f"{name}.pem") for name in ("ca", "key", "cert")}
    pem = serialization.Encoding.PEM
    Path(paths["ca"]).write_bytes(ca_cert.public_bytes(pem))
    Path(paths["cert"]).write_bytes(cert.public_bytes(pem))
    Path(paths["key"]).write_bytes(
        key.private_bytes(
            pem,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def tls_listen(paths: dict[str, str]) -> str:
    """The ``ssl:`` endpoint description of a loopback server with these files."""
    return (
        f"ssl:0:interface=127.0.0.1:privateKey={paths['key']}:certKey={paths['cert']}"
    )


def temp_folder(testcase: TestCase) -> Path:
    """A fresh folder removed at cleanup (``mktemp`` under pytest writes into
    the working tree)."""
    folder = Path(tempfile.mkdtemp(prefix="muca-test-"))
    testcase.addCleanup(shutil.rmtree, folder, True)
    return folder
