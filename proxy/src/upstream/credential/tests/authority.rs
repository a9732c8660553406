//! Client secret and workload identity against an https token authority on loopback,
//! trusted through a CA generated for each test.

use std::time::Duration;

use super::stand_in::{Behaviour, StandIn, transport_trusting};
use super::{CredentialOptions, Fixture, aad_header, quick_refresh, sign, start};

const TENANT: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
const CLIENT: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";

fn options(stand_in: &StandIn) -> CredentialOptions {
    CredentialOptions {
        refresh: quick_refresh(),
        transport: Some(transport_trusting(stand_in.ca_pem.as_deref().unwrap())),
        ..CredentialOptions::default()
    }
}

/// Waits until the stand-in has received `count` requests.
async fn wait_for_requests(stand_in: &StandIn, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stand_in.request_count() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the authority got {} requests",
            stand_in.request_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn client_secret_gets_a_token_over_https() {
    let stand_in = StandIn::authority(Behaviour::new(3600)).await;
    let fixture = Fixture::new();
    fixture.write("client.secret", "first-secret\n");
    let config = fixture.config(&format!(
        "kind = \"client_secret\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret_file = \"client.secret\"\nauthority_host = \"{}\"",
        stand_in.authority_host()
    ));
    let (credential, _registry) = start(&config, options(&stand_in));

    assert_eq!(
        sign(&credential).await.unwrap(),
        aad_header("stand-in-token-1")
    );
    let request = &stand_in.received()[0];
    assert_eq!(request.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(request.form["grant_type"], "client_credentials");
    assert_eq!(request.form["client_id"], CLIENT);
    assert_eq!(request.form["client_secret"], "first-secret");
    assert_eq!(request.form["scope"], "https://cosmos.azure.com/.default");
}

#[tokio::test]
async fn rotated_client_secret_is_used_at_next_refresh() {
    let stand_in = StandIn::authority(Behaviour::new(3600)).await;
    let fixture = Fixture::new();
    fixture.write("client.secret", "first-secret");
    let config = fixture.config(&format!(
        "kind = \"client_secret\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret_file = \"client.secret\"\nauthority_host = \"{}\"",
        stand_in.authority_host()
    ));
    let (credential, _registry) = start(&config, options(&stand_in));
    let signed = credential
        .authorization("GET", "", "", "date")
        .await
        .unwrap();

    fixture.write("client.secret", "second-secret");
    credential.rejected(signed.generation);
    wait_for_requests(&stand_in, 2).await;
    assert_eq!(
        stand_in.received()[1].form["client_secret"],
        "second-secret"
    );
}

#[tokio::test]
async fn workload_identity_exchanges_the_token_file() {
    let stand_in = StandIn::authority(Behaviour::new(3600)).await;
    let fixture = Fixture::new();
    fixture.write("federated-token", "kubernetes-service-account-token-1");
    let config = fixture.config(&format!(
        "kind = \"workload_identity\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         token_file = \"federated-token\"\nauthority_host = \"{}\"\n\
         scope = \"https://cosmos.azure.us/.default\"",
        stand_in.authority_host()
    ));
    let (credential, _registry) = start(&config, options(&stand_in));

    let signed = credential
        .authorization("GET", "", "", "date")
        .await
        .unwrap();
    assert_eq!(signed.header, aad_header("stand-in-token-1"));
    let request = &stand_in.received()[0];
    assert_eq!(request.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(
        request.form["client_assertion"],
        "kubernetes-service-account-token-1"
    );
    assert_eq!(
        request.form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(request.form["scope"], "https://cosmos.azure.us/.default");

    // The kubelet rotates the projected token; the next refresh reads the new one.
    fixture.write("federated-token", "kubernetes-service-account-token-2");
    credential.rejected(signed.generation);
    wait_for_requests(&stand_in, 2).await;
    assert_eq!(
        stand_in.received()[1].form["client_assertion"],
        "kubernetes-service-account-token-2"
    );
}

#[tokio::test]
async fn untrusted_authority_certificate_is_an_error() {
    let stand_in = StandIn::authority(Behaviour::new(3600)).await;
    let other_ca = StandIn::authority(Behaviour::new(3600)).await;
    let fixture = Fixture::new();
    fixture.write("client.secret", "secret");
    let config = fixture.config(&format!(
        "kind = \"client_secret\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret_file = \"client.secret\"\nauthority_host = \"{}\"",
        stand_in.authority_host()
    ));
    let (credential, _registry) = start(&config, options(&other_ca));

    let error = sign(&credential).await.unwrap_err().to_string();
    assert!(error.contains("client secret"), "{error}");
    assert_eq!(
        stand_in.request_count(),
        0,
        "no request passed the TLS handshake"
    );
}

#[tokio::test]
async fn missing_workload_identity_settings_are_named() {
    let fixture = Fixture::new();
    let config = fixture.config("kind = \"workload_identity\"");
    let http = super::super::entra::EntraHttp::default();
    let error =
        super::super::workload_identity::WorkloadIdentitySource::new(&config, http, |_| None)
            .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("tenant_id (or AZURE_TENANT_ID)"),
        "{message}"
    );
    assert!(
        message.contains("client_id (or AZURE_CLIENT_ID)"),
        "{message}"
    );
    assert!(
        message.contains("token_file (or AZURE_FEDERATED_TOKEN_FILE)"),
        "{message}"
    );
}

#[tokio::test]
async fn workload_identity_settings_fall_back_to_webhook_variables() {
    let fixture = Fixture::new();
    let config = fixture.config("kind = \"workload_identity\"");
    let http = super::super::entra::EntraHttp::default();
    let environment = |name: &str| Some(format!("value-of-{name}"));
    let source =
        super::super::workload_identity::WorkloadIdentitySource::new(&config, http, environment);
    assert!(source.is_ok(), "{source:?}");
}
