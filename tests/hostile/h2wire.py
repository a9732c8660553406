"""A minimal HTTP/2 client on the `h2` package with its header checks turned off, so a
test can send pseudo-headers that no ordinary client would: duplicates, a missing or
relative `:path`, pseudo-headers after regular ones, connection-specific headers."""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions


@dataclass
class H2Outcome:
    """What came back for one stream: a response, a stream reset, or the connection
    closing (GOAWAY or EOF) before either."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset_code: int | None = None
    connection_closed: bool = False

    @property
    def rejected_by_protocol(self) -> bool:
        return self.status is None and (self.reset_code is not None or self.connection_closed)


def _connect(base_url: str, ca_file: Path | None, timeout: float) -> socket.socket:
    parsed = urllib.parse.urlsplit(base_url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
    if parsed.scheme != "https":
        # Plain HTTP/2 with prior knowledge: hyper's auto builder detects the preface.
        return sock
    context = ssl.create_default_context(cafile=str(ca_file))
    context.set_alpn_protocols(["h2"])
    wrapped = context.wrap_socket(sock, server_hostname=parsed.hostname)
    if wrapped.selected_alpn_protocol() != "h2":
        wrapped.close()
        raise AssertionError("the proxy did not negotiate HTTP/2 over ALPN")
    return wrapped


def send_h2(
    base_url: str,
    ca_file: Path | None,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    timeout: float = 10.0,
) -> H2Outcome:
    """Send one request with exactly `headers` (pseudo-headers included, in that order)
    on a new connection, and return what came back for it."""
    config = h2.config.H2Configuration(
        client_side=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        header_encoding="utf-8",
    )
    connection = h2.connection.H2Connection(config=config)
    outcome = H2Outcome()
    with _connect(base_url, ca_file, timeout) as sock:
        connection.initiate_connection()
        sock.sendall(connection.data_to_send())
        stream_id = connection.get_next_available_stream_id()
        connection.send_headers(stream_id, headers, end_stream=not body)
        if body:
            connection.send_data(stream_id, body, end_stream=True)
        sock.sendall(connection.data_to_send())
        _receive(sock, connection, stream_id, outcome)
    return outcome


def _receive(sock: socket.socket, connection: h2.connection.H2Connection, stream_id: int, outcome: H2Outcome) -> None:
    body = bytearray()
    while True:
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError, ConnectionResetError, ssl.SSLError):
            outcome.connection_closed = True
            break
        if not data:
            outcome.connection_closed = True
            break
        try:
            events = connection.receive_data(data)
        except h2.exceptions.ProtocolError:
            outcome.connection_closed = True
            break
        done = False
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                outcome.headers = {str(name): str(value) for name, value in event.headers}
                outcome.status = int(outcome.headers[":status"])
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                body += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                done = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                outcome.reset_code = int(event.error_code)
                done = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                outcome.connection_closed = True
                done = True
        pending = connection.data_to_send()
        if pending:
            sock.sendall(pending)
        if done:
            break
    outcome.body = bytes(body)
