"""Forged and odd tokens: unsigned and HMAC tokens, keys embedded in the token, nested
JWTs, `exp` of the wrong type, duplicate claims, non-UTF-8 and huge tokens, and valid
tokens for another audience or issuer. None of them may reach the account.

Besides the OIDC provider, the proxy trusts a second issuer whose key this module holds,
so a test can sign any payload bytes (duplicate keys, odd claim types) with a trusted key."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

import pytest

from hostile.conftest import ALLOWED_SUBJECT, AUDIENCE, assert_audited, assert_cosmos_error, start_hostile_proxy
from hostile.forge import KeyServer, RsaKey, b64url, b64url_json, hs256_token, jwk_to_pem, rs256_token
from hostile.wire import build_request, exchange, host_of, parse_responses
from support.proxy_client import cosmos_headers

PATH = "/dbs/a/colls/c"


@pytest.fixture(scope="module")
def trusted_key() -> RsaKey:
    return RsaKey("trusted-1")


@pytest.fixture(scope="module")
def attacker_key() -> RsaKey:
    return RsaKey("attacker-1")


@pytest.fixture(scope="module")
def trusted_keys(trusted_key):
    server = KeyServer([trusted_key.public_jwk()])
    yield server
    server.close()


@pytest.fixture(scope="module")
def attacker_keys(attacker_key):
    """Where `jku` and `x5u` headers point. The proxy must never fetch from it."""
    server = KeyServer([attacker_key.public_jwk()])
    yield server
    server.close()


@pytest.fixture(scope="module")
def trusted_issuer(trusted_keys) -> str:
    return f"{trusted_keys.url}/trusted"


@pytest.fixture(scope="module")
def token_proxy(processes, certs, run_dir, double, oidc, seeded, trusted_keys, trusted_issuer):
    block = (
        f'[[issuers]]\nissuer = "{trusted_issuer}"\naudiences = ["{AUDIENCE}"]\n'
        f'jwks_url = "{trusted_keys.url}/jwks"\n\n[policy]\n'
    )
    return start_hostile_proxy(
        processes,
        certs,
        run_dir,
        "cosmoguard-hostile-tokens",
        double.url,
        oidc.issuer,
        edits=lambda text: text.replace("[policy]\n", block, 1),
    )


@pytest.fixture(scope="module")
def provider_jwks(oidc) -> list[dict]:
    with urllib.request.urlopen(f"{oidc.issuer}/jwks", timeout=10) as response:
        return json.load(response)["keys"]


def claims(issuer: str, **overrides) -> dict:
    now = int(time.time())
    values = {"iss": issuer, "sub": ALLOWED_SUBJECT, "aud": AUDIENCE, "iat": now, "nbf": now - 10, "exp": now + 600}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def send_authorization(proxy, certs, value: bytes | str):
    headers = list(cosmos_headers(None).items()) + [("Authorization", value), ("Connection", "close")]
    data = build_request("GET", PATH, host_of(proxy.url), headers)
    return parse_responses(exchange(proxy.url, certs.ca_file, data))


def assert_rejected(proxy, certs, watch, value, reason: str | None, status: int = 401) -> dict:
    observed = watch(proxy)
    responses = send_authorization(proxy, certs, value)

    assert len(responses) == 1, [response.status for response in responses]
    assert_cosmos_error(responses[0].status, responses[0].body, status)
    if status == 401:
        assert "invalid_token" in responses[0].headers.get("www-authenticate", ""), responses[0].headers
    line = assert_audited(observed, status, "unauthenticated", reason, path=PATH)
    assert line["principal"] is None, line
    observed.assert_nothing_forwarded()
    return line


def test_trusted_issuer_control_case(token_proxy, certs, watch, trusted_key, trusted_issuer):
    """The forged-token tests mean something only if a well-formed token from the second
    issuer passes."""
    observed = watch(token_proxy)
    token = rs256_token(trusted_key, {"alg": "RS256", "kid": trusted_key.kid, "typ": "JWT"}, claims(trusted_issuer))
    responses = send_authorization(token_proxy, certs, f"Bearer {token}")

    assert [response.status for response in responses] == [200], responses
    assert len(observed.wait_forwarded(1)) == 1


# Algorithms


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_unsigned_token_rejected(token_proxy, certs, watch, trusted_issuer, alg):
    token = f"{b64url_json({'alg': alg, 'typ': 'JWT'})}.{b64url_json(claims(trusted_issuer))}."
    reason = "malformed" if alg == "" else "disallowed_algorithm"
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", None if alg == "" else reason)


def test_provider_alg_none_rejected(token_proxy, certs, watch, oidc):
    token = oidc.mint({"sub": ALLOWED_SUBJECT, "aud": AUDIENCE}, defect="alg-none")
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "disallowed_algorithm")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_public_key_as_secret_rejected(token_proxy, certs, watch, oidc, provider_jwks, alg):
    """The classic key-confusion forgery: an HMAC token whose secret is the issuer's
    published RSA public key, named by the issuer's own kid."""
    jwk = next(key for key in provider_jwks if key["kty"] == "RSA")
    header = {"alg": alg, "kid": jwk["kid"], "typ": "JWT"}
    # The digest size does not matter here: the proxy must reject the algorithm itself.
    token = hs256_token(jwk_to_pem(jwk), header, claims(oidc.issuer))
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "disallowed_algorithm")


def test_es256_header_on_rsa_key_rejected(token_proxy, certs, watch, trusted_key, trusted_issuer):
    header = {"alg": "ES256", "kid": trusted_key.kid}
    token = f"{b64url_json(header)}.{b64url_json(claims(trusted_issuer))}.{b64url(b'0' * 64)}"
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "algorithm_key_mismatch")


# Keys named inside the token


def embedded_key_headers(attacker_key: RsaKey, attacker_keys: KeyServer, kid: str) -> dict[str, dict]:
    certificate = base64.b64encode(attacker_key.certificate_der()).decode("ascii")
    return {
        "jwk": {"alg": "RS256", "kid": kid, "jwk": attacker_key.public_jwk()},
        "jku": {"alg": "RS256", "kid": kid, "jku": f"{attacker_keys.url}/jku"},
        "x5u": {"alg": "RS256", "kid": kid, "x5u": f"{attacker_keys.url}/x5u"},
        "x5c": {"alg": "RS256", "kid": kid, "x5c": [certificate]},
    }


@pytest.mark.parametrize("field", ["jwk", "jku", "x5u", "x5c"])
@pytest.mark.parametrize("kid_source", ["attacker", "trusted"])
def test_token_embedded_key_never_trusted(
    token_proxy, certs, watch, attacker_key, attacker_keys, trusted_key, trusted_issuer, field, kid_source
):
    """Signed by the attacker, carrying the attacker's key (or a URL to it): with the
    attacker's kid the key is unknown, with the trusted kid the signature fails."""
    kid = attacker_key.kid if kid_source == "attacker" else trusted_key.kid
    header = embedded_key_headers(attacker_key, attacker_keys, kid)[field]
    token = rs256_token(attacker_key, header, claims(trusted_issuer))
    reason = "unknown_key_id" if kid_source == "attacker" else "bad_signature"

    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", reason)
    assert attacker_keys.hits == [], attacker_keys.hits


def test_nested_jwt_rejected(token_proxy, certs, watch, oidc, attacker_key, trusted_issuer):
    """An outer token the attacker signed around a valid inner token (`cty: JWT`): the
    payload is not a claims object, and the inner token's signature lends it nothing."""
    inner = oidc.mint({"sub": ALLOWED_SUBJECT, "aud": AUDIENCE})
    header = {"alg": "RS256", "kid": attacker_key.kid, "cty": "JWT"}
    token = rs256_token(attacker_key, header, json.dumps(inner))
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "malformed")


def test_nested_jwt_from_trusted_key_rejected(token_proxy, certs, watch, oidc, trusted_key):
    """Even signed by a trusted key, a payload that is a JWT string is no claims set."""
    inner = oidc.mint({"sub": ALLOWED_SUBJECT, "aud": AUDIENCE})
    header = {"alg": "RS256", "kid": trusted_key.kid, "cty": "JWT"}
    token = rs256_token(trusted_key, header, json.dumps(inner))
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "malformed")


def test_crit_header_rejected(token_proxy, certs, watch, trusted_key, trusted_issuer):
    header = {"alg": "RS256", "kid": trusted_key.kid, "crit": ["exp"]}
    token = rs256_token(trusted_key, header, claims(trusted_issuer))
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "malformed")


@pytest.mark.parametrize("kid", ["../../../../etc/passwd", "trusted-1\u0000", "x" * 5000, ""])
def test_odd_key_id_rejected(token_proxy, certs, watch, trusted_key, trusted_issuer, kid):
    token = rs256_token(trusted_key, {"alg": "RS256", "kid": kid}, claims(trusted_issuer))
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", None)


# Claims, signed with a trusted key


@pytest.mark.parametrize(
    "exp",
    ["9999999999", 1.5, True, None, [9999999999], {"value": 9999999999}, 1e300, -1, "NaN"],
    ids=["string", "past float", "boolean", "null", "array", "object", "huge float", "negative", "NaN string"],
)
def test_odd_exp_rejected(token_proxy, certs, watch, trusted_key, trusted_issuer, exp):
    payload = claims(trusted_issuer)
    payload["exp"] = exp
    token = rs256_token(trusted_key, {"alg": "RS256", "kid": trusted_key.kid}, payload)
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", None)


def test_future_float_exp_accepted(token_proxy, certs, watch, trusted_key, trusted_issuer):
    """RFC 7519 NumericDate may have a fraction, so a float `exp` in the future is valid."""
    payload = claims(trusted_issuer)
    payload["exp"] = time.time() + 600.5
    token = rs256_token(trusted_key, {"alg": "RS256", "kid": trusted_key.kid}, payload)
    observed = watch(token_proxy)
    responses = send_authorization(token_proxy, certs, f"Bearer {token}")

    assert [response.status for response in responses] in ([200], [401]), responses
    if responses[0].status == 200:
        assert len(observed.wait_forwarded(1)) == 1
    if responses[0].status == 401:
        assert_audited(observed, 401, "unauthenticated", "invalid_claim", path=PATH)


def test_exp_as_string_from_provider_rejected(token_proxy, certs, watch, oidc):
    """The OIDC provider itself signs a token whose `exp` is a string."""
    token = oidc.mint({"sub": ALLOWED_SUBJECT, "aud": AUDIENCE, "exp": str(int(time.time()) + 600)})
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", None)


def duplicate_claim_payload(issuer: str, name: str, first, last) -> str:
    base = claims(issuer)
    base.pop(name, None)
    text = json.dumps(base)[:-1]
    return f'{text}, "{name}": {json.dumps(first)}, "{name}": {json.dumps(last)}}}'


@pytest.mark.parametrize(
    "name, first, last",
    [
        ("sub", "someone-else", ALLOWED_SUBJECT),
        ("sub", ALLOWED_SUBJECT, "someone-else"),
        ("aud", AUDIENCE, "api://other"),
        ("exp", 9999999999, 1),
    ],
)
def test_duplicate_claim_not_read_two_ways(token_proxy, certs, watch, trusted_key, trusted_issuer, name, first, last):
    """RFC 7519 lets a parser reject duplicate claim names or use the last one. Either
    way the proxy must decide on one reading: if it accepts the token, the last value
    is what it decided and audited on."""
    token = rs256_token(trusted_key, {"alg": "RS256", "kid": trusted_key.kid}, duplicate_claim_payload(trusted_issuer, name, first, last))
    observed = watch(token_proxy)
    responses = send_authorization(token_proxy, certs, f"Bearer {token}")
    assert len(responses) == 1
    status = responses[0].status

    if status == 401:
        observed.assert_nothing_forwarded()
        return
    if status == 200:
        observed.wait_forwarded(1)
    lines = observed.audit(lambda line: line.get("path") == PATH)
    assert lines, "no audit line"
    if name == "sub":
        assert lines[-1]["principal"]["subject"] == last, lines[-1]
        assert status == (200 if last == ALLOWED_SUBJECT else 403), (status, lines[-1])
    else:
        pytest.fail(f"a token whose last {name} is invalid was accepted with status {status}")


# Encoding and size


@pytest.mark.parametrize(
    "value",
    [b"Bearer \xff\xfe\xfd", b"type=aad&ver=1.0&sig=\xc3\x28", "Bearer eyJ\u00e9.eyJ.x".encode("utf-8")],
    ids=["latin-1 bytes", "invalid UTF-8", "UTF-8 letters"],
)
def test_non_ascii_token_rejected(token_proxy, certs, watch, value):
    assert_rejected(token_proxy, certs, watch, value, "malformed")


@pytest.mark.parametrize("size", [17 * 1024, 40 * 1024])
def test_huge_token_rejected(token_proxy, certs, watch, trusted_key, trusted_issuer, size):
    payload = claims(trusted_issuer, padding="p" * size)
    token = rs256_token(trusted_key, {"alg": "RS256", "kid": trusted_key.kid}, payload)
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "token_too_large")


@pytest.mark.parametrize(
    "token",
    ["a.b", "a.b.c.d", "a.b.c.d.e", "..", "eyJ.eyJ.", "Bearer", "\t"],
)
def test_malformed_compact_form_rejected(token_proxy, certs, watch, token):
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", None)


def test_other_audience_rejected(token_proxy, certs, watch, oidc):
    token = oidc.mint({"sub": ALLOWED_SUBJECT, "aud": "api://another-service"})
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "wrong_audience")


def test_other_issuer_rejected(token_proxy, certs, watch, trusted_keys, trusted_key):
    """Signed by a key the proxy trusts, but naming an issuer it does not: keys are bound
    to their issuer."""
    token = rs256_token(trusted_key, {"alg": "RS256", "kid": trusted_key.kid}, claims(f"{trusted_keys.url}/elsewhere"))
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", "unknown_issuer")


def test_provider_token_claiming_trusted_issuer_rejected(token_proxy, certs, watch, oidc, trusted_issuer):
    """A token signed by the provider's key that names the second issuer in `iss`: each
    issuer's tokens verify only against that issuer's keys."""
    token = oidc.mint({"sub": ALLOWED_SUBJECT, "aud": AUDIENCE, "iss": trusted_issuer})
    assert_rejected(token_proxy, certs, watch, f"Bearer {token}", None)
