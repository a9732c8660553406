//! TLS on loopback for tests: a CA made for the test, a server certificate for 127.0.0.1
//! that it signed, and a client that trusts only that CA.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A server and a client side that complete a handshake with each other.
pub(crate) struct LoopbackTls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) connector: TlsConnector,
    /// The CA certificate as PEM, for clients built elsewhere.
    pub(crate) ca_pem: String,
}

/// Generates a fresh CA and server certificate.
pub(crate) fn loopback_tls() -> LoopbackTls {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_der = CertificateDer::from(ca_cert.der().to_vec());
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let certificate = CertificateDer::from(server_cert.der().to_vec());
    let key = PrivateKeyDer::try_from(server_key.serialize_der()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    LoopbackTls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
        ca_pem,
    }
}
