"""Upstream stand-ins that misbehave on purpose, run as threads inside the test process:
they reset connections, stall before or inside a response, return throttling statuses or
serve a certificate from an unknown CA. Each one counts the requests it received, so a
test can show that the proxy did not retry."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# What each mode does once it has read a request's headers.
MODES = ("reset", "slow-headers", "slow-body", "status", "ok")


def untrusted_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 that no test CA signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "untrusted upstream")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "untrusted.pem"
    key_path = directory / "untrusted-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class FaultServer:
    """An HTTP/1.1 listener on 127.0.0.1 that misbehaves as `mode` says.

    - reset: closes the connection with a TCP RST after reading the request.
    - slow-headers: waits `delay` seconds, then answers 200.
    - slow-body: sends headers and half the body, waits `delay` seconds, then closes.
    - status: answers `status` with `headers` and a Cosmos-shaped body.
    - ok: answers 200 at once.
    """

    def __init__(
        self,
        mode: str,
        delay: float = 0.0,
        status: int = 200,
        headers: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self.delay = delay
        self.status = status
        self.headers = headers or {}
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._context = None
        if tls:
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(str(tls[0]), str(tls[1]))
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        try:
            if self._context:
                try:
                    connection = self._context.wrap_socket(connection, server_side=True)
                except (ssl.SSLError, OSError):
                    connection.close()
                    return
            while True:
                head = self._read_head(connection)
                if head is None:
                    return
                with self._lock:
                    self.requests.append(head)
                if not self._respond(connection):
                    return
        except OSError:
            pass
        finally:
            try:
                connection.close()
            except OSError:
                pass

    def _read_head(self, connection: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        return head

    def _respond(self, connection: socket.socket) -> bool:
        """Answer one request; return whether the connection stays open."""
        body = b'{"code": "TestFault", "message": "answered by the fault stand-in"}'
        if self.mode == "reset":
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if self.mode == "slow-headers":
            time.sleep(self.delay)
        status = self.status if self.mode == "status" else 200
        lines = [f"HTTP/1.1 {status} Fault", "Content-Type: application/json", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.mode == "slow-body":
            connection.sendall(head + body[: len(body) // 2])
            time.sleep(self.delay)
            return False
        connection.sendall(head + body)
        return True
