"""A stand-in account for throughput: `@vercel/cosmosdb-server` has no offers, so this
serves the offer REST shape over TLS on loopback. It answers the account read, reads and
replaces of `/offers/{rid}`, and reads of the databases and containers those offers
belong to by resource id (`/dbs/{rid}`, `/dbs/{rid}/colls/{rid}`). With `--log` it
appends every request it receives to a file as a JSON line (`method`, `path`)."""

from __future__ import annotations

import argparse
import base64
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


def resource_id(raw: bytes) -> str:
    """Encode a resource id as the service does: base64 with `-` in place of `/`."""
    return base64.b64encode(raw).decode("ascii").replace("/", "-")


# A container's resource id starts with the 4 bytes of its database's.
DATABASE_D = resource_id(bytes([0x9A, 0x1F, 0x3C, 0x00]))
DATABASE_S = resource_id(bytes([0x9A, 0x1F, 0x3D, 0x00]))
CONTAINER_C1 = resource_id(bytes([0x9A, 0x1F, 0x3C, 0x00, 0x11, 0x7E, 0xFA, 0x01]))
CONTAINER_C2 = resource_id(bytes([0x9A, 0x1F, 0x3C, 0x00, 0x22, 0x7E, 0xFA, 0x01]))
CONTAINER_C3 = resource_id(bytes([0x9A, 0x1F, 0x3C, 0x00, 0x33, 0x7E, 0xFA, 0x01]))

DATABASES = {DATABASE_D: "d", DATABASE_S: "s"}
CONTAINERS = {
    CONTAINER_C1: (DATABASE_D, "c1"),
    CONTAINER_C2: (DATABASE_D, "c2"),
    CONTAINER_C3: (DATABASE_D, "c3"),
}

# Offer id -> (database rid, container rid or None for throughput shared by a database).
# `OfFeRX` has a `resource` that is not a database or container link.
OFFER_OWNERS = {
    "OfFeR1": (DATABASE_D, CONTAINER_C1),
    "OfFeR2": (DATABASE_D, CONTAINER_C2),
    "OfFeR3": (DATABASE_D, CONTAINER_C3),
    "OfFeRS": (DATABASE_S, None),
}
BROKEN_OFFER = "OfFeRX"


def database_body(rid: str) -> dict:
    return {
        "id": DATABASES[rid],
        "_rid": rid,
        "_self": f"dbs/{rid}/",
        "_etag": '"00000a00-0000-0000-0000-000000000000"',
        "_colls": "colls/",
        "_users": "users/",
        "_ts": 1764806400,
    }


def container_body(database_rid: str, rid: str) -> dict:
    return {
        "id": CONTAINERS[rid][1],
        "indexingPolicy": {"indexingMode": "consistent", "automatic": True, "includedPaths": [{"path": "/*"}]},
        "partitionKey": {"paths": ["/pk"], "kind": "Hash", "version": 2},
        "_rid": rid,
        "_self": f"dbs/{database_rid}/colls/{rid}/",
        "_etag": '"00000b00-0000-0000-0000-000000000000"',
        "_docs": "docs/",
        "_sprocs": "sprocs/",
        "_triggers": "triggers/",
        "_udfs": "udfs/",
        "_conflicts": "conflicts/",
        "_ts": 1764806400,
    }


def offer_link(offer_id: str) -> tuple[str, str]:
    """Return the `resource` and `offerResourceId` of an offer."""
    if offer_id == BROKEN_OFFER:
        return "accounts/offers-account/", CONTAINER_C1
    database_rid, container_rid = OFFER_OWNERS[offer_id]
    if container_rid is None:
        return f"dbs/{database_rid}/", database_rid
    return f"dbs/{database_rid}/colls/{container_rid}/", container_rid


def initial_offer(offer_id: str) -> dict:
    resource, owner_rid = offer_link(offer_id)
    return {
        "id": offer_id,
        "_rid": offer_id,
        "_self": f"offers/{offer_id}/",
        "resource": resource,
        "offerResourceId": owner_rid,
        "offerType": "Invalid",
        "offerVersion": "V2",
        "content": {"offerThroughput": 400},
    }


class OfferHandler(BaseHTTPRequestHandler):
    offers: dict[str, dict] = {}
    lock = threading.Lock()
    log_file: str | None = None

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class names it
        pass

    def record(self) -> None:
        if self.log_file is None:
            return
        line = json.dumps({"method": self.command, "path": self.path}) + "\n"
        with self.lock, open(self.log_file, "a", encoding="utf-8") as log:
            log.write(line)

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-ms-request-charge", "1")
        self.send_header("x-ms-activity-id", "00000000-0000-0000-0000-0000000000aa")
        self.end_headers()
        self.wfile.write(data)

    def not_found(self) -> None:
        self.reply(404, {"code": "NotFound", "message": "no such resource"})

    def segments(self) -> list[str]:
        return [part for part in self.path.split("/") if part]

    def offer_id(self) -> str | None:
        parts = self.segments()
        if len(parts) == 2 and parts[0] == "offers" and (parts[1] in OFFER_OWNERS or parts[1] == BROKEN_OFFER):
            return parts[1]
        return None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.record()
        parts = self.segments()
        if not parts:
            self.reply(200, ACCOUNT)
        elif len(parts) == 2 and parts[0] == "dbs" and parts[1] in DATABASES:
            self.reply(200, database_body(parts[1]))
        elif (
            len(parts) == 4
            and parts[0] == "dbs"
            and parts[2] == "colls"
            and CONTAINERS.get(parts[3], ("", ""))[0] == parts[1]
        ):
            self.reply(200, container_body(parts[1], parts[3]))
        elif (offer_id := self.offer_id()) is not None:
            with self.lock:
                offer = self.offers.setdefault(offer_id, initial_offer(offer_id))
            self.reply(200, offer)
        else:
            self.not_found()

    def do_PUT(self) -> None:  # noqa: N802
        self.record()
        offer_id = self.offer_id()
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if offer_id is None:
            self.not_found()
            return
        with self.lock:
            self.offers[offer_id] = body
        self.reply(200, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--log", help="append each request to this file as a JSON line")
    arguments = parser.parse_args()
    OfferHandler.log_file = arguments.log
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), OfferHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(arguments.cert, arguments.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
