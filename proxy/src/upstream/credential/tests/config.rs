//! Validation of `[upstream.credential]` for each mode. The credential table starts on
//! line 8 of the test configuration.

use super::Fixture;

/// Returns every error message for a credential table, with its line.
fn errors(credential: &str) -> Vec<(usize, String)> {
    let fixture = Fixture::new();
    fixture.write("account.key", "a2V5");
    fixture.write("token", "x");
    fixture.write("secret", "x");
    match fixture.parse(credential) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .0
            .into_iter()
            .map(|error| (error.line, error.message))
            .collect(),
    }
}

fn assert_valid(credential: &str) {
    let found = errors(credential);
    assert!(found.is_empty(), "{credential}: {found:?}");
}

fn assert_error(credential: &str, line: usize, needle: &str) {
    let found = errors(credential);
    assert!(
        found
            .iter()
            .any(|(found_line, message)| *found_line == line && message.contains(needle)),
        "expected {needle:?} on line {line}, got {found:?}"
    );
}

#[test]
fn each_mode_accepts_its_own_fields() {
    assert_valid("kind = \"key\"\nkey_file = \"account.key\"\nsecondary_key_env = \"SECONDARY\"");
    assert_valid("kind = \"managed_identity\"");
    assert_valid(
        "kind = \"managed_identity\"\nobject_id = \"oid\"\nrequire_identity_endpoint = true",
    );
    assert_valid(
        "kind = \"managed_identity\"\nresource_id = \"/subscriptions/s/id\"\nscope = \"https://cosmos.azure.us/.default\"",
    );
    assert_valid("kind = \"workload_identity\"");
    assert_valid(
        "kind = \"workload_identity\"\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"c\"\n\
         token_file = \"token\"\nauthority_host = \"https://login.microsoftonline.us\"",
    );
    assert_valid(
        "kind = \"client_secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"SECRET\"",
    );
}

#[test]
fn missing_credential_section_is_rejected() {
    let fixture = Fixture::new();
    let text = super::config_text("kind = \"key\"\nkey_env = \"K\"").replace(
        "[upstream.credential]\nkind = \"key\"\nkey_env = \"K\"\n",
        "",
    );
    let errors = crate::config::Config::parse(&text, &fixture.path("cosmoguard.toml")).unwrap_err();
    assert!(errors.to_string().contains("credential"), "{errors}");
}

#[test]
fn unknown_kind_is_rejected() {
    assert_error("kind = \"default_chain\"", 8, "unknown variant");
}

#[test]
fn fields_of_other_modes_are_rejected_with_their_line() {
    assert_error(
        "kind = \"key\"\nkey_file = \"account.key\"\nclient_id = \"c\"",
        10,
        "client_id does not apply to kind = \"key\"",
    );
    assert_error(
        "kind = \"managed_identity\"\nkey_env = \"K\"",
        9,
        "key_env does not apply",
    );
    assert_error(
        "kind = \"managed_identity\"\ntenant_id = \"t\"",
        9,
        "tenant_id does not apply",
    );
    assert_error(
        "kind = \"client_secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\ntoken_file = \"token\"",
        12,
        "token_file does not apply",
    );
    assert_error(
        "kind = \"workload_identity\"\nrequire_identity_endpoint = true",
        9,
        "require_identity_endpoint does not apply",
    );
    assert_error(
        "kind = \"key\"\nkey_env = \"K\"\nscope = \"s\"",
        10,
        "scope does not apply",
    );
}

#[test]
fn key_mode_needs_exactly_one_source_per_key() {
    assert_error("kind = \"key\"", 8, "needs key_file or key_env");
    assert_error(
        "kind = \"key\"\nkey_file = \"account.key\"\nkey_env = \"K\"",
        9,
        "exclude each other",
    );
    assert_error(
        "kind = \"key\"\nkey_env = \"K\"\nsecondary_key_file = \"account.key\"\nsecondary_key_env = \"S\"",
        10,
        "exclude each other",
    );
    assert_error("kind = \"key\"\nkey_file = \"missing.key\"", 9, "not found");
}

#[test]
fn managed_identity_takes_one_user_assigned_selector() {
    assert_error(
        "kind = \"managed_identity\"\nclient_id = \"c\"\nobject_id = \"o\"",
        10,
        "keep one",
    );
    assert_error(
        "kind = \"managed_identity\"\nclient_id = \"\"",
        9,
        "client_id is empty",
    );
}

#[test]
fn client_secret_needs_tenant_client_and_secret_source() {
    let found = errors("kind = \"client_secret\"");
    let messages: Vec<&str> = found.iter().map(|(_, message)| message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|message| message.contains("needs tenant_id")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|message| message.contains("needs client_id")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|message| message.contains("client_secret_file or client_secret_env")),
        "{messages:?}"
    );
    assert!(found.iter().all(|(line, _)| *line == 8), "{found:?}");
}

#[test]
fn inline_client_secret_is_rejected() {
    assert_error(
        "kind = \"client_secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"hunter2\"",
        11,
        "unknown field",
    );
}

#[test]
fn invalid_entra_values_are_rejected() {
    assert_error(
        "kind = \"client_secret\"\ntenant_id = \"a/b\"\nclient_id = \"c\"\nclient_secret_env = \"S\"",
        9,
        "not a tenant id",
    );
    assert_error(
        "kind = \"managed_identity\"\nscope = \"https://cosmos.azure.com/.default?x\"",
        9,
        "not a valid scope",
    );
    assert_error(
        "kind = \"workload_identity\"\nauthority_host = \"http://127.0.0.1:1\"",
        9,
        "must be an https URL",
    );
    assert_error(
        "kind = \"workload_identity\"\ntoken_file = \"missing\"",
        9,
        "not found",
    );
}
