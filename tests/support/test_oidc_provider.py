"""Tests that the OIDC provider launcher mints real tokens, and broken ones on request."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def verify_jwt(token: str, jwks: dict) -> dict:
    """Verify `token` against the provider's JWKS and return its payload; raise
    InvalidSignature when the signature does not match."""
    header_part, payload_part, signature_part = token.split(".")
    header = json.loads(b64url_decode(header_part))
    key = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    signed = f"{header_part}.{payload_part}".encode("ascii")
    signature = b64url_decode(signature_part)
    if header["alg"] == "RS256":
        public_key = rsa.RSAPublicNumbers(b64url_int(key["e"]), b64url_int(key["n"])).public_key()
        public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    elif header["alg"] == "ES256":
        public_key = ec.EllipticCurvePublicNumbers(b64url_int(key["x"]), b64url_int(key["y"]), ec.SECP256R1()).public_key()
        half = len(signature) // 2
        der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
        public_key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    else:
        raise AssertionError(f"unexpected alg {header['alg']}")
    return json.loads(b64url_decode(payload_part))


def test_discovery_names_own_issuer(oidc):
    configuration = fetch_json(f"{oidc.issuer}/.well-known/openid-configuration")
    assert configuration["issuer"] == oidc.issuer
    assert configuration["jwks_uri"] == f"{oidc.issuer}/jwks"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_minted_token_verifies(oidc, alg):
    jwks = fetch_json(f"{oidc.issuer}/jwks")
    token = oidc.mint({"sub": "orders-app", "aud": "api://cosmoguard", "tid": "t1", "groups": ["a", "b"]}, alg=alg)
    header = json.loads(b64url_decode(token.split(".")[0]))
    payload = verify_jwt(token, jwks)
    assert header["alg"] == alg
    assert payload["iss"] == oidc.issuer
    assert payload["sub"] == "orders-app"
    assert payload["aud"] == "api://cosmoguard"
    assert payload["tid"] == "t1"
    assert payload["groups"] == ["a", "b"]


def test_time_offsets_and_removed_claims(oidc):
    jwks = fetch_json(f"{oidc.issuer}/jwks")
    now = int(time.time())
    payload = verify_jwt(oidc.mint({"sub": "x", "aud": None}, expires_in=-600, not_before=300), jwks)
    assert "aud" not in payload
    assert abs(payload["exp"] - (now - 600)) <= 5
    assert abs(payload["nbf"] - (now + 300)) <= 5


def test_bad_signature_fails_verification(oidc):
    jwks = fetch_json(f"{oidc.issuer}/jwks")
    for alg in ("RS256", "ES256"):
        token = oidc.mint({"sub": "orders-app", "aud": "api://cosmoguard"}, alg=alg, defect="bad-signature")
        with pytest.raises(InvalidSignature):
            verify_jwt(token, jwks)


def test_alg_none_has_no_signature(oidc):
    token = oidc.mint({"sub": "orders-app"}, defect="alg-none")
    header_part, _, signature_part = token.split(".")
    assert json.loads(b64url_decode(header_part))["alg"] == "none"
    assert signature_part == ""
