"""A stand-in account for throughput: `@vercel/cosmosdb-server` has no offers, so this
serves the offer REST shape over TLS on loopback. It answers the account read, reads and
replaces of `/offers/{rid}`, and records every request it receives."""

from __future__ import annotations

import argparse
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT = {
    "id": "offers-account",
    "writableLocations": [{"name": "Local", "databaseAccountEndpoint": "https://127.0.0.1/"}],
    "readableLocations": [{"name": "Local", "databaseAccountEndpoint": "https://127.0.0.1/"}],
    "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
}


def initial_offer(rid: str) -> dict:
    return {
        "id": rid,
        "_rid": rid,
        "resource": "dbs/AbCdEf==/colls/AbCdEfGhIjk=/",
        "offerResourceId": "AbCdEfGhIjk=",
        "offerType": "Invalid",
        "offerVersion": "V2",
        "content": {"offerThroughput": 400},
    }


class OfferHandler(BaseHTTPRequestHandler):
    offers: dict[str, dict] = {}
    lock = threading.Lock()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class names it
        pass

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-ms-request-charge", "1")
        self.send_header("x-ms-activity-id", "00000000-0000-0000-0000-0000000000aa")
        self.end_headers()
        self.wfile.write(data)

    def offer_rid(self) -> str | None:
        parts = [part for part in self.path.split("/") if part]
        return parts[1] if len(parts) == 2 and parts[0] == "offers" else None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/":
            self.reply(200, ACCOUNT)
            return
        rid = self.offer_rid()
        if rid is None:
            self.reply(404, {"code": "NotFound", "message": "no such resource"})
            return
        with self.lock:
            offer = self.offers.setdefault(rid, initial_offer(rid))
        self.reply(200, offer)

    def do_PUT(self) -> None:  # noqa: N802
        rid = self.offer_rid()
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if rid is None:
            self.reply(404, {"code": "NotFound", "message": "no such resource"})
            return
        with self.lock:
            self.offers[rid] = body
        self.reply(200, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    arguments = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), OfferHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(arguments.cert, arguments.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
