"""A Cosmos DB upstream double that verifies master-key signatures.

It sits between the proxy and cosmosdb-server (which accepts any Authorization header).
Every request must carry `type=master&ver=1.0&sig=...` signed with the account key over
the verb, resource type, resource link and `x-ms-date`, and that date must be within
15 minutes of now, as the real service requires. A request that fails gets
401 `{"code": "Unauthorized", ...}` and never reaches cosmosdb-server. A request that
passes is forwarded unchanged and the response is streamed back.

Each request is appended to a JSON-lines record (see `RequestRecord`), so tests can prove
that every forwarded request verified and that no caller token reached the account.

Run: `python -m support.cosmos_double --listen 127.0.0.1:PORT --upstream URL ...`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import email.utils
import hashlib
import hmac
import http.client
import json
import re
import ssl
import sys
import threading
import urllib.parse
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# The Cosmos DB emulator's published key, which cosmosdb-server-based tests use as the
# account key.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

# The service accepts a signature for 15 minutes either side of its x-ms-date.
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)

# Headers that describe one connection and are not forwarded (RFC 9110, section 7.6.1).
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# A compact JWS: base64url header and payload that both start with `{"` (`eyJ`).
JWT_PATTERN = re.compile(rb"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

COPY_CHUNK_SIZE = 64 * 1024


class SignatureError(Exception):
    """A request whose Authorization header does not verify."""


def sign(key_base64: str, verb: str, resource_type: str, resource_link: str, date: str) -> str:
    """Compute the base64 HMAC-SHA256 master-key signature that Cosmos DB expects."""
    message = f"{verb.lower()}\n{resource_type.lower()}\n{resource_link}\n{date.lower()}\n\n"
    digest = hmac.new(base64.b64decode(key_base64), message.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def resource_of_path(path: str) -> tuple[str, str]:
    """Return (resource type, resource link) of a request path, as the service signs them.

    The path is percent-decoded once (`+` stays `+`) and split into non-empty segments.
    An even count names one resource: its type is the second-to-last segment and its link
    the whole path. An odd count is a feed: its type is the last segment and its link the
    path without it. No segments is the account read, type and link both empty.
    """
    # Split off the query by hand: urlsplit would read a leading "//x" as a host name.
    decoded = urllib.parse.unquote(path.split("?", 1)[0])
    segments = [segment for segment in decoded.split("/") if segment]
    if not segments:
        return "", ""
    if len(segments) % 2 == 0:
        return segments[-2], "/".join(segments)
    return segments[-1], "/".join(segments[:-1])


def parse_authorization(value: str) -> dict[str, str]:
    """Split a (possibly percent-encoded) `type=...&ver=...&sig=...` header into fields."""
    decoded = urllib.parse.unquote(value)
    fields: dict[str, str] = {}
    for part in decoded.split("&"):
        name, separator, field_value = part.partition("=")
        if separator:
            fields[name.strip().lower()] = field_value
    return fields


def verify_request(
    key_base64: str,
    method: str,
    path: str,
    authorization: str | None,
    date: str | None,
    now: datetime.datetime,
) -> None:
    """Raise SignatureError unless `authorization` is a valid master-key signature."""
    if not authorization:
        raise SignatureError("the Authorization header is missing")
    fields = parse_authorization(authorization)
    auth_type = fields.get("type", "")
    if auth_type != "master":
        raise SignatureError(f"the Authorization type is {auth_type!r}, expected 'master'")
    if fields.get("ver") != "1.0":
        raise SignatureError(f"the Authorization version is {fields.get('ver')!r}, expected '1.0'")
    signature = fields.get("sig", "")
    if not signature:
        raise SignatureError("the Authorization header has no signature")
    if not date:
        raise SignatureError("the x-ms-date header is missing")
    try:
        signed_at = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError) as error:
        raise SignatureError(f"the x-ms-date header {date!r} is not an HTTP date") from error
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=datetime.timezone.utc)
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise SignatureError(f"the x-ms-date {date!r} is more than 15 minutes from now")
    resource_type, resource_link = resource_of_path(path)
    expected = sign(key_base64, method, resource_type, resource_link, date)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise SignatureError(
            f"the signature does not match {method.upper()} type={resource_type!r} "
            f"link={resource_link!r} date={date!r}"
        )


def find_jwts(data: bytes) -> list[str]:
    """Return the SHA-256 hex digests of the JWT-shaped strings in `data`."""
    return [hashlib.sha256(match.group(0)).hexdigest() for match in JWT_PATTERN.finditer(data)]


def token_fingerprint(token: str) -> str:
    """Return the digest under which `find_jwts` records `token`."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass
class RequestRecord:
    """One request as the double saw it, written as one JSON line."""

    time: str
    method: str
    path: str
    resource_type: str
    resource_link: str
    auth_type: str
    verified: bool
    reason: str
    status: int
    headers: dict[str, str]
    # Where JWT-shaped strings were found ("header:NAME" or "body"), and their SHA-256.
    jwt_locations: list[str] = field(default_factory=list)
    jwt_sha256: list[str] = field(default_factory=list)
    forwarded: bool = False


class RecordWriter:
    """Append-only, thread-safe JSON-lines file of RequestRecords."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    def write(self, record: RequestRecord) -> None:
        if self._path is None:
            return
        line = json.dumps(asdict(record), sort_keys=True) + "\n"
        with self._lock, self._path.open("a", encoding="utf-8") as file:
            file.write(line)


@dataclass(frozen=True)
class DoubleConfig:
    """Settings of one double, from the command line."""

    key_base64: str
    upstream: urllib.parse.SplitResult
    upstream_context: ssl.SSLContext | None
    public_url: str
    advertise_self: bool
    fault: str | None
    upstream_timeout: float


class DoubleHandler(BaseHTTPRequestHandler):
    """Verify, record and forward one request."""

    protocol_version = "HTTP/1.1"
    server_version = "cosmos-double"
    config: DoubleConfig
    records: RecordWriter

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"cosmos_double: {self.address_string()} {format % args}\n")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # Skip trailers up to the blank line that ends the body.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        config = self.config
        body = self._read_body()
        resource_type, resource_link = resource_of_path(self.path)
        authorization = self.headers.get("Authorization")
        auth_type = parse_authorization(authorization).get("type", "") if authorization else ""
        headers = {name.lower(): value for name, value in self.headers.items()}

        jwt_locations: list[str] = []
        jwt_digests: list[str] = []
        for name, value in self.headers.items():
            found = find_jwts(f"{name}: {value}".encode("latin-1", "replace"))
            if found:
                jwt_locations.append(f"header:{name.lower()}")
                jwt_digests += found
        found = find_jwts(body)
        if found:
            jwt_locations.append("body")
            jwt_digests += found

        record = RequestRecord(
            time=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            method=self.command,
            path=self.path,
            resource_type=resource_type,
            resource_link=resource_link,
            auth_type=auth_type,
            verified=False,
            reason="",
            status=0,
            headers={name: value for name, value in headers.items() if name != "authorization"},
            jwt_locations=jwt_locations,
            jwt_sha256=jwt_digests,
        )
        date = self.headers.get("x-ms-date") or self.headers.get("Date")
        try:
            verify_request(
                config.key_base64,
                self.command,
                self.path,
                authorization,
                date,
                datetime.datetime.now(datetime.timezone.utc),
            )
        except SignatureError as error:
            record.reason = str(error)
            record.status = 401
            self.records.write(record)
            self._send_json(401, {"code": "Unauthorized", "message": str(error)})
            return

        record.verified = True
        record.forwarded = True
        try:
            record.status = self._forward(body)
        except (OSError, http.client.HTTPException) as error:
            record.reason = f"upstream request failed: {error}"
            record.status = 502
            self._send_json(502, {"code": "BadGateway", "message": record.reason})
        self.records.write(record)

    def _send_json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _upstream_connection(self) -> http.client.HTTPConnection:
        upstream = self.config.upstream
        port = upstream.port or (443 if upstream.scheme == "https" else 80)
        if upstream.scheme == "https":
            return http.client.HTTPSConnection(
                upstream.hostname,
                port,
                timeout=self.config.upstream_timeout,
                context=self.config.upstream_context,
            )
        return http.client.HTTPConnection(upstream.hostname, port, timeout=self.config.upstream_timeout)

    def _forward(self, body: bytes) -> int:
        """Send the request to the upstream unchanged and stream the response back."""
        is_account_read = self.command == "GET" and resource_of_path(self.path) == ("", "")
        if is_account_read and self.config.fault == "invalid-account-json":
            data = b'{"writableLocations": [{"name": "broken", "databaseAccountEndpoint": '
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return 200

        connection = self._upstream_connection()
        try:
            connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() in HOP_BY_HOP_HEADERS or name.lower() == "content-length":
                    continue
                connection.putheader(name, value)
            if body or self.command in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body if body else None)
            response = connection.getresponse()

            if is_account_read and self.config.advertise_self and response.status == 200:
                self._send_account_with_own_url(response)
                return response.status

            self.send_response_only(response.status, response.reason)
            length = response.getheader("Content-Length")
            for name, value in response.getheaders():
                if name.lower() in HOP_BY_HOP_HEADERS:
                    continue
                self.send_header(name, value)
            if length is None:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := response.read(COPY_CHUNK_SIZE):
                if length is None:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode("ascii") + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
            return response.status
        finally:
            connection.close()

    def _send_account_with_own_url(self, response: http.client.HTTPResponse) -> None:
        """Send the account read with every location pointing at this double, so that an
        SDK that follows endpoint discovery keeps talking to it."""
        account = json.loads(response.read())
        for key in ("writableLocations", "readableLocations"):
            for location in account.get(key, []):
                location["databaseAccountEndpoint"] = self.config.public_url
        data = json.dumps(account).encode("utf-8")
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() in HOP_BY_HOP_HEADERS or name.lower() == "content-length":
                continue
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def read_records(path: Path) -> list[dict]:
    """Read every request record written so far."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def _parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host.startswith("127.") and host not in ("localhost", "[::1]"):
        raise argparse.ArgumentTypeError(f"--listen must be a loopback address, got {host!r}")
    return host.strip("[]"), int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description="Cosmos DB upstream double that verifies signatures")
    parser.add_argument("--listen", type=_parse_listen, required=True, help="loopback HOST:PORT")
    parser.add_argument("--cert", type=Path, help="PEM certificate to serve HTTPS with")
    parser.add_argument("--key", type=Path, help="PEM private key for --cert")
    parser.add_argument("--upstream", required=True, help="cosmosdb-server URL, http:// or https://")
    parser.add_argument("--upstream-ca", type=Path, help="PEM CA file to verify the upstream")
    key_group = parser.add_mutually_exclusive_group()
    key_group.add_argument("--account-key", default=EMULATOR_KEY, help="base64 account key")
    key_group.add_argument("--account-key-file", type=Path, help="file with the base64 account key")
    parser.add_argument("--record", type=Path, help="JSON-lines file to append request records to")
    parser.add_argument(
        "--advertise-self",
        action="store_true",
        help="rewrite the account read's locations to this double's own URL",
    )
    parser.add_argument(
        "--fault",
        choices=["invalid-account-json"],
        help="invalid-account-json: answer GET / with truncated JSON after verifying it",
    )
    parser.add_argument("--upstream-timeout", type=float, default=30.0, help="seconds")
    args = parser.parse_args()

    host, port = args.listen
    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.scheme not in ("http", "https") or not upstream.hostname:
        parser.error(f"--upstream must be an http:// or https:// URL, got {args.upstream!r}")
    if not (upstream.hostname.startswith("127.") or upstream.hostname in ("localhost", "::1")):
        parser.error(f"--upstream must be a loopback URL, got {args.upstream!r}")
    upstream_context = None
    if upstream.scheme == "https":
        upstream_context = ssl.create_default_context(cafile=args.upstream_ca)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    scheme = "https" if args.cert else "http"
    key_base64 = args.account_key
    if args.account_key_file:
        key_base64 = args.account_key_file.read_text(encoding="utf-8").strip()
    try:
        base64.b64decode(key_base64, validate=True)
    except binascii.Error:
        parser.error("the account key is not valid base64")

    server = ThreadingHTTPServer((host, port), DoubleHandler)
    server.daemon_threads = True
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    bound_port = server.server_address[1]
    DoubleHandler.config = DoubleConfig(
        key_base64=key_base64,
        upstream=upstream,
        upstream_context=upstream_context,
        public_url=f"{scheme}://{host}:{bound_port}/",
        advertise_self=args.advertise_self,
        fault=args.fault,
        upstream_timeout=args.upstream_timeout,
    )
    DoubleHandler.records = RecordWriter(args.record)
    print(f"cosmos_double listening on {scheme}://{host}:{bound_port}, upstream {args.upstream}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
