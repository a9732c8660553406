//! Checks of `[upstream.credential]`: the fields each mode requires, fields that exclude
//! each other, and no field that belongs to another mode.

use std::ops::Range;

use toml::Spanned;

use super::Checker;
use crate::config::{CredentialConfig, CredentialKind};

use CredentialKind::{ClientSecret, Key, ManagedIdentity, WorkloadIdentity};

/// The modes that get a token from Microsoft Entra ID.
const ENTRA: &[CredentialKind] = &[ManagedIdentity, WorkloadIdentity, ClientSecret];

/// The modes that talk to a token authority (`authority_host`) themselves.
const AUTHORITY: &[CredentialKind] = &[WorkloadIdentity, ClientSecret];

pub(super) fn check(checker: &mut Checker<'_>) {
    let credential = &checker.config.upstream.credential;
    let kind = *credential.kind.get_ref();
    let kind_span = credential.kind.span();
    reject_foreign_fields(checker, credential, kind);
    match kind {
        Key => check_key(checker, credential, kind_span),
        ManagedIdentity => check_managed_identity(checker, credential),
        WorkloadIdentity => check_workload_identity(checker, credential),
        ClientSecret => check_client_secret(checker, credential, kind_span),
    }
    if let Some(scope) = &credential.scope {
        check_scope(checker, scope);
    }
    if let Some(host) = &credential.authority_host
        && host.get_ref().scheme() != "https"
    {
        checker.error_at(
            Some(host.span()),
            format!(
                "upstream.credential.authority_host: {} must be an https URL; token authorities \
                 accept only https",
                host.get_ref()
            ),
        );
    }
}

/// Lists every optional field that is set, with its span and the modes that accept it.
fn present_fields(
    credential: &CredentialConfig,
) -> Vec<(&'static str, Range<usize>, &'static [CredentialKind])> {
    let candidates = [
        ("key_file", span(&credential.key_file), &[Key][..]),
        ("key_env", span(&credential.key_env), &[Key][..]),
        (
            "secondary_key_file",
            span(&credential.secondary_key_file),
            &[Key][..],
        ),
        (
            "secondary_key_env",
            span(&credential.secondary_key_env),
            &[Key][..],
        ),
        ("client_id", span(&credential.client_id), ENTRA),
        (
            "object_id",
            span(&credential.object_id),
            &[ManagedIdentity][..],
        ),
        (
            "resource_id",
            span(&credential.resource_id),
            &[ManagedIdentity][..],
        ),
        (
            "require_identity_endpoint",
            span(&credential.require_identity_endpoint),
            &[ManagedIdentity][..],
        ),
        ("tenant_id", span(&credential.tenant_id), AUTHORITY),
        (
            "token_file",
            span(&credential.token_file),
            &[WorkloadIdentity][..],
        ),
        (
            "client_secret_file",
            span(&credential.client_secret_file),
            &[ClientSecret][..],
        ),
        (
            "client_secret_env",
            span(&credential.client_secret_env),
            &[ClientSecret][..],
        ),
        (
            "authority_host",
            span(&credential.authority_host),
            AUTHORITY,
        ),
        ("scope", span(&credential.scope), ENTRA),
    ];
    candidates
        .into_iter()
        .filter_map(|(name, span, kinds)| span.map(|span| (name, span, kinds)))
        .collect()
}

fn span<T>(field: &Option<Spanned<T>>) -> Option<Range<usize>> {
    field.as_ref().map(Spanned::span)
}

fn reject_foreign_fields(
    checker: &mut Checker<'_>,
    credential: &CredentialConfig,
    kind: CredentialKind,
) {
    for (name, span, kinds) in present_fields(credential) {
        if kinds.contains(&kind) {
            continue;
        }
        let owners: Vec<String> = kinds
            .iter()
            .map(|owner| format!("\"{}\"", owner.name()))
            .collect();
        checker.error_at(
            Some(span),
            format!(
                "upstream.credential.{name} does not apply to kind = \"{}\" (only to {}); remove it",
                kind.name(),
                owners.join(", ")
            ),
        );
    }
}

fn check_key(checker: &mut Checker<'_>, credential: &CredentialConfig, kind_span: Range<usize>) {
    match (&credential.key_file, &credential.key_env) {
        (Some(file), None) => require_key_file(checker, "upstream.credential.key_file", file),
        (None, Some(name)) => require_variable_name(checker, "upstream.credential.key_env", name),
        (Some(file), Some(_)) => checker.error_at(
            Some(file.span()),
            "upstream.credential: key_file and key_env exclude each other; keep one".to_owned(),
        ),
        (None, None) => checker.error_at(
            Some(kind_span),
            "upstream.credential: kind = \"key\" needs key_file or key_env".to_owned(),
        ),
    }
    match (
        &credential.secondary_key_file,
        &credential.secondary_key_env,
    ) {
        (Some(file), None) => {
            require_key_file(checker, "upstream.credential.secondary_key_file", file);
        }
        (None, Some(name)) => {
            require_variable_name(checker, "upstream.credential.secondary_key_env", name);
        }
        (Some(file), Some(_)) => checker.error_at(
            Some(file.span()),
            "upstream.credential: secondary_key_file and secondary_key_env exclude each other; \
             keep one"
                .to_owned(),
        ),
        (None, None) => {}
    }
}

/// Requires a non-empty environment variable name: an empty one can never be set, and
/// `serve` would report a variable without a name.
fn require_variable_name(checker: &mut Checker<'_>, key: &str, name: &Spanned<String>) {
    if name.get_ref().trim().is_empty() {
        checker.error_at(
            Some(name.span()),
            format!(
                "{key}: the variable name is empty; set it to the name of the environment \
                 variable that holds the secret"
            ),
        );
    }
}

/// Requires a key file that contains a base64 account key, as `serve` decodes it.
fn require_key_file(checker: &mut Checker<'_>, key: &str, file: &Spanned<std::path::PathBuf>) {
    checker.require_file(key, file);
    if !checker.options.require_files {
        return;
    }
    let resolved = checker.config.resolve(file.get_ref());
    let Ok(text) = std::fs::read_to_string(&resolved) else {
        return;
    };
    if let Err(error) = crate::upstream::signing::MasterKey::from_base64(&text) {
        checker.error_at(
            Some(file.span()),
            format!("{key}: {}: {error}", resolved.display()),
        );
    }
}

fn check_managed_identity(checker: &mut Checker<'_>, credential: &CredentialConfig) {
    let selectors = [
        &credential.client_id,
        &credential.object_id,
        &credential.resource_id,
    ];
    let mut set = selectors.iter().filter_map(|field| field.as_ref());
    if let (Some(_), Some(second)) = (set.next(), set.next()) {
        checker.error_at(
            Some(second.span()),
            "upstream.credential: client_id, object_id and resource_id each select one \
             user-assigned identity; keep one, or none for the system-assigned identity"
                .to_owned(),
        );
    }
    for (name, field) in [
        ("client_id", &credential.client_id),
        ("object_id", &credential.object_id),
        ("resource_id", &credential.resource_id),
    ] {
        require_non_empty(checker, name, field);
    }
}

fn check_workload_identity(checker: &mut Checker<'_>, credential: &CredentialConfig) {
    // Tenant, client and token file may come from the environment the AKS webhook sets,
    // so only the values given here are checked; startup reports what is still missing.
    if let Some(tenant) = &credential.tenant_id {
        check_tenant_id(checker, tenant);
    }
    require_non_empty(checker, "client_id", &credential.client_id);
    if let Some(file) = &credential.token_file {
        checker.require_file("upstream.credential.token_file", file);
    }
}

fn check_client_secret(
    checker: &mut Checker<'_>,
    credential: &CredentialConfig,
    kind_span: Range<usize>,
) {
    match &credential.tenant_id {
        Some(tenant) => check_tenant_id(checker, tenant),
        None => checker.error_at(
            Some(kind_span.clone()),
            "upstream.credential: kind = \"client_secret\" needs tenant_id".to_owned(),
        ),
    }
    match &credential.client_id {
        Some(_) => require_non_empty(checker, "client_id", &credential.client_id),
        None => checker.error_at(
            Some(kind_span.clone()),
            "upstream.credential: kind = \"client_secret\" needs client_id, the application id"
                .to_owned(),
        ),
    }
    match (
        &credential.client_secret_file,
        &credential.client_secret_env,
    ) {
        (Some(file), None) => checker.require_file("upstream.credential.client_secret_file", file),
        (None, Some(name)) => {
            require_variable_name(checker, "upstream.credential.client_secret_env", name);
        }
        (Some(file), Some(_)) => checker.error_at(
            Some(file.span()),
            "upstream.credential: client_secret_file and client_secret_env exclude each other; \
             keep one"
                .to_owned(),
        ),
        (None, None) => checker.error_at(
            Some(kind_span),
            "upstream.credential: kind = \"client_secret\" needs client_secret_file or \
             client_secret_env; the secret itself never goes in the configuration file"
                .to_owned(),
        ),
    }
}

/// Tenant ids are GUIDs or domain names, the characters the token endpoint path accepts.
fn check_tenant_id(checker: &mut Checker<'_>, tenant: &Spanned<String>) {
    let value = tenant.get_ref();
    let valid = !value.is_empty()
        && value
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || matches!(character, '.' | '-'));
    if !valid {
        checker.error_at(
            Some(tenant.span()),
            format!(
                "upstream.credential.tenant_id: {value:?} is not a tenant id; use the directory \
                 (tenant) GUID or a domain such as contoso.onmicrosoft.com"
            ),
        );
    }
}

/// Scopes are URLs with `/.default`; azure_identity rejects other characters.
fn check_scope(checker: &mut Checker<'_>, scope: &Spanned<String>) {
    let value = scope.get_ref();
    let valid = !value.is_empty()
        && value.chars().all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '.' | '-' | '_' | ':' | '/')
        });
    if !valid {
        checker.error_at(
            Some(scope.span()),
            format!(
                "upstream.credential.scope: {value:?} is not a valid scope; use a URL such as \
                 \"https://cosmos.azure.com/.default\""
            ),
        );
    }
}

fn require_non_empty(checker: &mut Checker<'_>, name: &str, field: &Option<Spanned<String>>) {
    if let Some(value) = field
        && value.get_ref().trim().is_empty()
    {
        checker.error_at(
            Some(value.span()),
            format!("upstream.credential.{name} is empty; set it or remove it"),
        );
    }
}
