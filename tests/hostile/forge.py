"""Hand-made JWTs for forgery tests, and a loopback JWKS server that a test controls.

Tokens are assembled byte by byte, so a test can put anything in the header or payload
(duplicate keys, `jwk`, `jku`, `x5c`, odd `exp` types) and sign with a key it generated."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def b64url_uint(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


class RsaKey:
    """An RSA key generated for one test session, with its JWK and a self-signed cert."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_jwk(self) -> dict:
        numbers = self.private.public_key().public_numbers()
        return {"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}

    def certificate_der(self) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.private, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.DER)

    def sign_rs256(self, signing_input: bytes) -> bytes:
        return self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def compact(header_part: str, payload_part: str, signature: bytes) -> str:
    return f"{header_part}.{payload_part}.{b64url(signature)}"


def rs256_token(key: RsaKey, header: dict, payload: dict | str) -> str:
    """Sign `payload` (a dict, or raw JSON text for duplicate keys) with `key`."""
    header_part = b64url_json(header)
    payload_part = b64url(payload.encode("utf-8")) if isinstance(payload, str) else b64url_json(payload)
    return compact(header_part, payload_part, key.sign_rs256(f"{header_part}.{payload_part}".encode("ascii")))


def hs256_token(secret: bytes, header: dict, payload: dict) -> str:
    header_part = b64url_json(header)
    payload_part = b64url_json(payload)
    signature = hmac.new(secret, f"{header_part}.{payload_part}".encode("ascii"), hashlib.sha256).digest()
    return compact(header_part, payload_part, signature)


def jwk_to_pem(jwk: dict) -> bytes:
    """The PEM of an RSA public JWK: what an attacker would use as an HMAC secret."""

    def decode(value: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")

    public = rsa.RSAPublicNumbers(decode(jwk["e"]), decode(jwk["n"])).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class KeyServer:
    """A loopback HTTP server that serves a JWKS and counts every request it gets, so a
    test can show that a URL inside a token (`jku`, `x5u`) was never fetched."""

    def __init__(self, keys: list[dict]) -> None:
        self.keys = keys
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                data = json.dumps({"keys": server.keys}).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
