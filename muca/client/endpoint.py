"""Where the client connects: a TCP endpoint to the server, or TLS over it
whose certificate must name the host asked for (:class:`NamedServerTLS`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL.crypto import X509
from service_identity.hazmat import (
    DNS_ID,
    IPAddress_ID,
    ServiceID,
    verify_service_identity,
)
from service_identity.pyopenssl import extract_patterns
from twisted.internet import endpoints, ssl
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IStreamClientEndpoint,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from muca.client.errors import CertificateRefused, ClientError

DEFAULT_TIMEOUT = 2.0


def client_endpoint(
    reactor: Any,
    host: str,
    port: int,
    tls: bool = False,
    ca_file: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> IStreamClientEndpoint:
    """An endpoint to a server; with ``tls`` the server's certificate is verified
    against ``ca_file`` (a PEM CA certificate) or the platform's trust store.

    Raises :class:`ClientError` when ``ca_file`` cannot be read or used."""
    tcp = endpoints.HostnameEndpoint(reactor, host, port, timeout=timeout)
    if not tls:
        return tcp
    trust = None
    if ca_file is not None:
        try:
            with open(ca_file, "rb") as pem:
                trust = ssl.Certificate.loadPEM(pem.read())
        except OSError as problem:
            raise ClientError(
                f"cannot read CA file {ca_file}: {problem.strerror}"
            ) from None
        except Exception:
            raise ClientError(f"CA file {ca_file} is not a PEM certificate") from None
    return endpoints.wrapClientTLS(NamedServerTLS(host, trust), tcp)


@implementer(IOpenSSLClientConnectionCreator)
class NamedServerTLS:
    """TLS toward ``host`` that refuses any certificate not naming ``host``.

    ``optionsForClientTLS`` alone lets a certificate with no subjectAltName
    through: ``service_identity`` raises ``CertificateError`` there, which
    Twisted's check logs as a traceback and then ignores. Here every failure
    of the name check refuses the server, with a readable
    :class:`CertificateRefused` as the connection's reason.
    """

    def __init__(self, host: str, trust: ssl.Certificate | None) -> None:
        self.host = host
        self._options = ssl.optionsForClientTLS(host, trustRoot=trust)

    def clientConnectionForTLS(self, tls: TLSMemoryBIOProtocol) -> SSL.Connection:
        """The connection from ``optionsForClientTLS``, with our name check."""
        connection = self._options.clientConnectionForTLS(tls)
        connection.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._checker(tls)
        )
        return connection

    def _checker(
        self, tls: TLSMemoryBIOProtocol
    ) -> Callable[[SSL.Connection, X509, int, int, int], bool]:
        def check(
            connection: SSL.Connection, cert: X509, errno: int, depth: int, ok: int
        ) -> bool:
            if not ok or depth != 0:
                return bool(ok)  # OpenSSL's chain check decides, and says why
            try:
                verify_service_identity(extract_patterns(cert), [self._wanted()], [])
            except Exception:
                # VerificationError (a wrong name), CertificateError (no
                # subjectAltName at all) or anything else: never go on.
                tls.failVerification(Failure(CertificateRefused(self._refusal(cert))))
                return False
            return True

        return check

    def _wanted(self) -> ServiceID:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return DNS_ID(self.host)
        return IPAddress_ID(self.host)

    def _refusal(self, cert: X509) -> str:
        """One line saying whom the certificate names instead."""
        certificate = cert.to_cryptography()
        try:
            names = certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value
        except x509.ExtensionNotFound:
            common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = f"CN={common[0].value}" if common else "no name at all"
            return (
                f"TLS failed: the server's certificate is not for {self.host}"
                f" (it has no subjectAltName, only {cn})"
            )
        named = [str(n) for n in names.get_values_for_type(x509.DNSName)]
        named += [str(n) for n in names.get_values_for_type(x509.IPAddress)]
        return (
            f"TLS failed: the server's certificate is not for {self.host}"
            f" (it names {', '.join(named) or 'no host'})"
        )
