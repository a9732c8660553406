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


@dataclass(frozen=True)
class CollectorCertificateSet:
    """Paths of the files written by `generate_collector`."""

    ca_file: Path
    collector_cert: Path
    collector_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path


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


def _issue_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    ip_addresses: list[str],
    dns_names: list[str],
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Issue a leaf certificate for `usage`, server authentication by default."""
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
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write_issued(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    cert_path: Path,
    key_path: Path,
    common_name: str,
    ip_addresses: list[str],
    dns_names: list[str],
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> None:
    """Issue a leaf certificate with `_issue_cert` and write it and its key."""
    cert, key = _issue_cert(ca_cert, ca_key, common_name, ip_addresses, dns_names, usage)
    _write_cert(cert, cert_path)
    _write_key(key, key_path)


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Create a self-signed CA that may issue leaf certificates only."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
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
    return ca_cert, ca_key


def generate(directory: Path) -> CertificateSet:
    """Write a fresh CA (`ca.pem`), a proxy certificate for 127.0.0.2 and localhost
    (`proxy.pem`, `proxy-key.pem`) and an upstream certificate for 127.0.0.1 and localhost
    (`upstream.pem`, `upstream-key.pem`) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca("Cosmoguard test CA")

    pki = CertificateSet(
        ca_file=directory / "ca.pem",
        proxy_cert=directory / "proxy.pem",
        proxy_key=directory / "proxy-key.pem",
        upstream_cert=directory / "upstream.pem",
        upstream_key=directory / "upstream-key.pem",
    )
    _write_cert(ca_cert, pki.ca_file)

    _write_issued(ca_cert, ca_key, pki.proxy_cert, pki.proxy_key, "cosmoguard proxy", ["127.0.0.2"], ["localhost"])
    _write_issued(
        ca_cert, ca_key, pki.upstream_cert, pki.upstream_key, "cosmoguard test upstream", ["127.0.0.1"], ["localhost"]
    )
    return pki


def generate_collector(directory: Path) -> CollectorCertificateSet:
    """Write the files of a TLS collector into `directory`. A CA (`collector-ca.pem`)
    issues the collector's certificate for 127.0.0.1 (`collector.pem`, `collector-key.pem`)
    and a client certificate for mutual TLS (`client.pem`, `client-key.pem`). A second CA
    (`other-ca.pem`) issues neither."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca("Cosmoguard test collector CA")
    other_ca_cert, _ = _make_ca("Cosmoguard test unrelated CA")
    pki = CollectorCertificateSet(
        ca_file=directory / "collector-ca.pem",
        collector_cert=directory / "collector.pem",
        collector_key=directory / "collector-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
        other_ca_file=directory / "other-ca.pem",
    )
    _write_cert(ca_cert, pki.ca_file)
    _write_cert(other_ca_cert, pki.other_ca_file)

    _write_issued(
        ca_cert, ca_key, pki.collector_cert, pki.collector_key, "cosmoguard test collector", ["127.0.0.1"], []
    )
    _write_issued(
        ca_cert, ca_key, pki.client_cert, pki.client_key, "cosmoguard", [], ["cosmoguard.test"],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
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
