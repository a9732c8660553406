//! The mapping from a finished request's audit record to span attributes, following the
//! OpenTelemetry database and HTTP semantic conventions where they define a name, and
//! using the `cosmoguard.` prefix for the proxy's own facts.

use std::net::SocketAddr;

use opentelemetry::KeyValue;
use opentelemetry::trace::Status;

use crate::audit::AuditRecord;

/// The `db.system.name` value for Azure Cosmos DB in the semantic conventions.
pub(crate) const DB_SYSTEM: &str = "azure.cosmosdb";

/// Returns the span name: `{db.operation.name} {target}` as the database conventions
/// suggest, with the container (or database) as the target, or the HTTP method alone
/// for a request that could not be classified.
pub(crate) fn span_name(record: &AuditRecord) -> String {
    let Some(operation) = record.operation else {
        return method_text(record).to_owned();
    };
    match (&record.database, &record.container) {
        (Some(database), Some(container)) => format!("{operation} {database}.{container}"),
        (Some(database), None) => format!("{operation} {database}"),
        _ => operation.to_owned(),
    }
}

fn method_text(record: &AuditRecord) -> &str {
    record.method.as_ref().map_or("", http::Method::as_str)
}

/// Returns the attributes known once the response has ended.
pub(crate) fn span_attributes(record: &AuditRecord) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("db.system.name", DB_SYSTEM),
        KeyValue::new("http.request.method", method_text(record).to_owned()),
        KeyValue::new("url.path", record.path.clone()),
        KeyValue::new("http.response.status_code", i64::from(record.status)),
        KeyValue::new("cosmoguard.decision", record.decision),
        KeyValue::new("cosmoguard.completed", record.completed),
    ];
    let mut push_text = |key: &'static str, value: Option<&str>| {
        if let Some(value) = value {
            attributes.push(KeyValue::new(key, value.to_owned()));
        }
    };
    push_text("db.namespace", record.database.as_deref());
    push_text("db.collection.name", record.container.as_deref());
    push_text("db.operation.name", record.operation);
    push_text("cosmoguard.resource", record.resource.as_deref());
    push_text("cosmoguard.rule_id", record.rule.as_deref());
    push_text("cosmoguard.reason", record.reason.as_deref());
    push_text("cosmoguard.partition_key", record.partition_key.as_deref());
    push_text("cosmoguard.activity_id", record.activity_id.as_deref());
    if let Some(principal) = &record.principal {
        push_text("enduser.id", Some(principal.subject()));
        push_text("cosmoguard.subject", Some(principal.subject()));
        push_text("cosmoguard.issuer", Some(principal.issuer()));
    }

    if let Some(charge) = record.request_charge {
        attributes.push(KeyValue::new("cosmoguard.request_charge", charge));
        attributes.push(KeyValue::new("azure.cosmosdb.request.charge", charge));
    }
    if let Some(substatus) = record.substatus {
        attributes.push(KeyValue::new("cosmoguard.substatus", i64::from(substatus)));
    }
    if let Some(upstream_ms) = record.upstream_duration_ms {
        attributes.push(KeyValue::new(
            "cosmoguard.upstream_duration_ms",
            upstream_ms,
        ));
    }
    if let Some(client) = &record.client_address {
        attributes.extend(client_attributes(client));
    }
    if is_server_error(record.status) {
        let error_type = record
            .reason
            .clone()
            .unwrap_or_else(|| record.status.to_string());
        attributes.push(KeyValue::new("error.type", error_type));
    }
    attributes
}

/// Returns the span status: an error for a 5xx response, as the HTTP server conventions
/// say (a 4xx is the caller's problem, not the server's), and unset otherwise.
pub(crate) fn span_status(record: &AuditRecord) -> Status {
    if !is_server_error(record.status) {
        return Status::Unset;
    }
    let description = record
        .reason
        .clone()
        .unwrap_or_else(|| format!("status {}", record.status));
    Status::error(description)
}

fn is_server_error(status: u16) -> bool {
    (500..600).contains(&status)
}

/// Splits the peer `ip:port` into `client.address` and `client.port`.
fn client_attributes(client: &str) -> Vec<KeyValue> {
    match client.parse::<SocketAddr>() {
        Ok(address) => vec![
            KeyValue::new("client.address", address.ip().to_string()),
            KeyValue::new("client.port", i64::from(address.port())),
        ],
        Err(_) => vec![KeyValue::new("client.address", client.to_owned())],
    }
}
