"""Generate a throwaway certificate authority and loopback server certificates for tests.

Run as `python -m support.certs DIR` to write them into DIR. Nothing here is fit for
anything but tests: keys are written unencrypted and the CA is trusted only by the
processes the tests start.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)
# Certificates start one hour in the past so that small clock differences do not matter.
BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class CertificateSet:
    """Paths of the CA and the server certificates written by `generate`."""

    ca_file: Path
    proxy_cert: Path
    proxy_key: Path
    upstream_cert: Path
    upstream_key: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue_server_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    ip_addresses: list[str],
    dns_names: list[str],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def generate(directory: Path) -> CertificateSet:
    """Write a fresh CA (`ca.pem`), a proxy certificate for 127.0.0.2 and localhost
    (`proxy.pem`, `proxy-key.pem`) and an upstream certificate for 127.0.0.1 and localhost
    (`upstream.pem`, `upstream-key.pem`) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Cosmoguard test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pki = CertificateSet(
        ca_file=directory / "ca.pem",
        proxy_cert=directory / "proxy.pem",
        proxy_key=directory / "proxy-key.pem",
        upstream_cert=directory / "upstream.pem",
        upstream_key=directory / "upstream-key.pem",
    )
    _write_cert(ca_cert, pki.ca_file)

    proxy_cert, proxy_key = _issue_server_cert(
        ca_cert, ca_key, "cosmoguard proxy", ["127.0.0.2"], ["localhost"]
    )
    _write_cert(proxy_cert, pki.proxy_cert)
    _write_key(proxy_key, pki.proxy_key)

    upstream_cert, upstream_key = _issue_server_cert(
        ca_cert, ca_key, "cosmoguard test upstream", ["127.0.0.1"], ["localhost"]
    )
    _write_cert(upstream_cert, pki.upstream_cert)
    _write_key(upstream_key, pki.upstream_key)
    return pki


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="directory to write the PEM files into")
    args = parser.parse_args()
    pki = generate(args.directory)
    for path in (pki.ca_file, pki.proxy_cert, pki.proxy_key, pki.upstream_cert, pki.upstream_key):
        print(path)


if __name__ == "__main__":
    main()
