"""An HTTPS front for a fixture index: HTTP/2 (and HTTP/1.1) over TLS, with a test CA.

``tls_index`` serves the seed index at ``https://127.0.0.1:<port>/simple/`` behind a certificate of
a throwaway CA (``TlsIndex.ca_pem``). The front offers ``h2`` and ``http/1.1`` by ALPN: an HTTP/2
connection's requests are answered by forwarding them to the plain fixture index, an HTTP/1.1
connection is piped to it as bytes. ``protocols`` counts the connections by the protocol chosen,
``paths`` lists what HTTP/2 streams asked for. ``mtls_index`` also asks each client for a
certificate (mutual TLS).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
from collections import Counter, deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsIndex", "mtls_index", "tls_index"]

#: Request headers an HTTP/2 stream passes on to the fixture index.
_FORWARDED = ("accept", "if-none-match", "if-modified-since")
#: Response headers passed back.
_RETURNED = ("content-type", "etag", "last-modified", "x-pypi-last-serial", "location")


class _TestCA:
    """A throwaway certificate authority that issues certificates for 127.0.0.1 (PEM text)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mirrorflow test CA")])
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        certificate = (
            self._builder(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = certificate.public_bytes(serialization.Encoding.PEM).decode()

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=2))
        )

    def issue(self, common_name: str, *, server: bool) -> tuple[str, str]:
        """A certificate and its key (PEM text): for the server at 127.0.0.1, or for a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            self._builder(subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if server:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


class TlsIndex:
    """The HTTPS front (see the module doc); ``url`` is the simple root, ``ca_pem`` the CA to trust.

    With ``client_certificates``, the front asks every client for a certificate its CA issued
    (mutual TLS); ``client_cert_pem`` and ``client_key_pem`` are one.
    """

    def __init__(self, upstream: str, directory: Path, *, client_certificates: bool = False) -> None:
        ca = _TestCA()
        self.ca_pem = ca.pem
        cert_pem, key_pem = ca.issue("127.0.0.1", server=True)
        (directory / "server.pem").write_text(cert_pem)
        (directory / "server.key").write_text(key_pem)
        self._upstream = upstream.rstrip("/")
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(directory / "server.pem", directory / "server.key")
        self._context.set_alpn_protocols(["h2", "http/1.1"])
        self.client_cert_pem = self.client_key_pem = ""
        if client_certificates:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(cadata=ca.pem)
            self.client_cert_pem, self.client_key_pem = ca.issue("mirrorflow client", server=False)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}/simple/"
        self.protocols: Counter[str] = Counter()
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._client = httpx.Client(timeout=10)
        self._thread = threading.Thread(target=self._accept, name="tls-index", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            threading.Thread(target=self._connection, args=(raw,), daemon=True).start()

    def _connection(self, raw: socket.socket) -> None:
        self._track(raw)
        try:
            with self._context.wrap_socket(raw, server_side=True) as tls:
                protocol = tls.selected_alpn_protocol() or "http/1.1"
                with self._lock:
                    self.protocols[protocol] += 1
                if protocol == "h2":
                    self._serve_h2(tls)
                else:
                    self._pipe(tls)
        except (OSError, h2.exceptions.ProtocolError):
            pass  # a client that refused the certificate, or hung up
        finally:
            self._untrack(raw)
            raw.close()

    def _serve_h2(self, sock: ssl.SSLSocket) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        requests: deque[tuple[int, dict[str, str]]] = deque()
        while self._receive(sock, conn, requests):
            while requests:
                self._answer(sock, conn, *requests.popleft(), requests)

    @staticmethod
    def _receive(
        sock: ssl.SSLSocket, conn: h2.connection.H2Connection, requests: deque[tuple[int, dict[str, str]]]
    ) -> bool:
        """Read once from the socket; queue the requests it completes. False when the client left."""
        data = sock.recv(65536)
        if not data:
            return False
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                requests.append((event.stream_id, dict(event.headers)))  # type: ignore[arg-type]
            elif isinstance(event, h2.events.ConnectionTerminated):
                return False
        sock.sendall(conn.data_to_send())
        return True

    def _answer(
        self,
        sock: ssl.SSLSocket,
        conn: h2.connection.H2Connection,
        stream_id: int,
        headers: dict[str, str],
        requests: deque[tuple[int, dict[str, str]]],
    ) -> None:
        path = headers[":path"]
        with self._lock:
            self.paths.append(path)
        forwarded = {name: headers[name] for name in _FORWARDED if name in headers}
        answer = self._client.get(self._upstream + path, headers=forwarded)
        body = answer.content
        response = [(":status", str(answer.status_code)), ("content-length", str(len(body)))]
        response += [(name, answer.headers[name]) for name in _RETURNED if name in answer.headers]
        try:
            conn.send_headers(stream_id, response, end_stream=not body)
            while body:  # as much as the flow-control window allows, then wait for it to open
                size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size, len(body))
                if size <= 0:
                    sock.sendall(conn.data_to_send())
                    if not self._receive(sock, conn, requests):
                        return
                    continue
                conn.send_data(stream_id, body[:size], end_stream=size == len(body))
                body = body[size:]
        except h2.exceptions.StreamClosedError:
            pass  # the client reset the stream
        sock.sendall(conn.data_to_send())

    def _pipe(self, tls: ssl.SSLSocket) -> None:
        host, port = httpx.URL(self._upstream).host, httpx.URL(self._upstream).port
        with socket.create_connection((host, port or 80)) as upstream:
            self._track(upstream)
            back = threading.Thread(target=_copy, args=(upstream, tls), daemon=True)
            back.start()
            _copy(tls, upstream)
            back.join()
            self._untrack(upstream)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() that close() would not
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._client.close()


def _copy(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="session")
def tls_index(seed_index, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsIndex]:
    """The seed index behind an HTTPS front offering HTTP/2, for the whole session."""
    front = TlsIndex(seed_index.base_url, tmp_path_factory.mktemp("tls"))
    try:
        yield front
    finally:
        front.stop()


@pytest.fixture(scope="session")
def mtls_index(seed_index, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsIndex]:
    """The same, asking every client for a certificate of its CA (mutual TLS)."""
    front = TlsIndex(seed_index.base_url, tmp_path_factory.mktemp("mtls"), client_certificates=True)
    try:
        yield front
    finally:
        front.stop()
