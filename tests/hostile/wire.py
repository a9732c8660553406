"""Raw HTTP/1.1 over a TCP or TLS socket, so the bytes the proxy receives are exactly the
bytes a test wrote: no client library normalizes the path, the headers or the framing."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

# How long a read waits for more bytes before it decides the peer has sent everything.
IDLE_TIMEOUT_SECONDS = 2.0


@dataclass
class WireResponse:
    """One parsed HTTP/1.1 response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def open_socket(base_url: str, ca_file: Path | None, timeout: float = 10.0) -> socket.socket:
    """Connect to the host and port of `base_url`, over TLS (trusting only `ca_file`) when
    its scheme is https."""
    parsed = urllib.parse.urlsplit(base_url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
    if parsed.scheme != "https":
        return sock
    context = ssl.create_default_context(cafile=str(ca_file))
    context.set_alpn_protocols(["http/1.1"])
    return context.wrap_socket(sock, server_hostname=parsed.hostname)


def read_all(sock: socket.socket, idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> bytes:
    """Read until the peer closes the connection or sends nothing for `idle_timeout`."""
    sock.settimeout(idle_timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(base_url: str, ca_file: Path | None, data: bytes, idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> bytes:
    """Send `data` on a new connection and return every byte received in reply."""
    with open_socket(base_url, ca_file) as sock:
        sock.sendall(data)
        return read_all(sock, idle_timeout)


def parse_responses(data: bytes) -> list[WireResponse]:
    """Split a byte stream into the HTTP/1.1 responses it contains (Content-Length or
    chunked bodies). Stops at the first incomplete response."""
    responses = []
    rest = data
    while rest:
        head, separator, rest = rest.partition(b"\r\n\r\n")
        if not separator:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, rest = _read_chunked(rest)
        else:
            length = int(headers.get("content-length", "0"))
            body, rest = rest[:length], rest[length:]
        responses.append(WireResponse(status=status, headers=headers, body=body))
    return responses


def _read_chunked(data: bytes) -> tuple[bytes, bytes]:
    chunks = []
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            _, _, data = data.partition(b"\r\n")
            return b"".join(chunks), data
        chunks.append(data[:size])
        data = data[size + 2 :]


def build_request(
    method: str,
    target: bytes | str,
    host: str,
    headers: list[tuple[str, str]] | list[tuple[bytes, bytes]],
    body: bytes = b"",
    content_length: bool = True,
) -> bytes:
    """Build one request exactly as given. Header names and values may be bytes, so a
    test can put CR, LF or NUL where no client library would."""
    target_bytes = target.encode("latin-1") if isinstance(target, str) else target
    lines = [method.encode("ascii") + b" " + target_bytes + b" HTTP/1.1", b"Host: " + host.encode("ascii")]
    for name, value in headers:
        name_bytes = name.encode("latin-1") if isinstance(name, str) else name
        value_bytes = value.encode("latin-1") if isinstance(value, str) else value
        lines.append(name_bytes + b": " + value_bytes)
    if content_length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def host_of(base_url: str) -> str:
    parsed = urllib.parse.urlsplit(base_url)
    return f"{parsed.hostname}:{parsed.port}"
