//! `cosmoguard policy ...`: check a policy file, explain a decision, import Azure RBAC.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use cosmoguard_policy::{Context, Effect, Explanation, OperationKind, Policy};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::{write_stderr, write_stdout};
use crate::classify;
use crate::identity::{ClaimMapping, principal_from_claims};

/// The `policy` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Report every error (with its line) and warning of a policy file.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
        /// Exit with status 1 on warnings too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Show the decision for one request, the rule that decided, and why every other
    /// rule did not apply.
    Explain(ExplainArgs),
    /// Print a Cosmoguard policy made from Azure Cosmos DB SQL role definitions and
    /// assignments, as `az cosmosdb sql role definition list` and
    /// `az cosmosdb sql role assignment list` print them.
    ImportAzure {
        /// The role definitions (JSON array).
        #[arg(long)]
        definitions: PathBuf,
        /// The role assignments (JSON array).
        #[arg(long)]
        assignments: PathBuf,
    },
}

/// Arguments of `cosmoguard policy explain`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The policy file (TOML).
    #[arg(long)]
    pub policy: PathBuf,
    /// A JSON file with the caller's token claims as one object (`iss`, `sub`, `groups`, ...).
    #[arg(long)]
    pub claims: PathBuf,
    /// The request line, such as 'GET /dbs/shop/colls/orders/docs/o-1'.
    #[arg(long)]
    pub request: String,
    /// A request header as NAME:VALUE, such as
    /// 'x-ms-documentdb-partitionkey:["tenant-a"]'. Repeat for more.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// A file with the request body, for a batch request.
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// The caller's IP address, for source-address conditions.
    #[arg(long)]
    pub source_address: Option<std::net::IpAddr>,
    /// The decision time as Unix seconds; now by default.
    #[arg(long, conflicts_with = "at")]
    pub unix_time: Option<i64>,
    /// The decision time as an RFC 3339 date-time with an offset, such as
    /// `2027-01-04T09:30:00-05:00`; now by default.
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<i64>,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs one `policy` subcommand.
pub fn run(command: &PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check {
            file,
            deny_warnings,
        } => check(file, *deny_warnings),
        PolicyCommand::Explain(arguments) => explain(arguments),
        PolicyCommand::ImportAzure {
            definitions,
            assignments,
        } => import_azure(definitions, assignments),
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn check(file: &Path, deny_warnings: bool) -> anyhow::Result<()> {
    let text = read(file, "policy file")?;
    let report = cosmoguard_policy::check(&text, &file.display().to_string());
    write_stdout(|out| {
        for error in &report.errors {
            writeln!(out, "{error}")?;
        }
        for warning in &report.warnings {
            writeln!(out, "{warning}")?;
        }
        Ok(())
    })?;
    if !report.errors.is_empty() {
        let count = report.errors.len();
        bail!(
            "{}: {count} {}",
            file.display(),
            if count == 1 { "error" } else { "errors" }
        );
    }
    if deny_warnings && !report.warnings.is_empty() {
        bail!(
            "{}: {}",
            file.display(),
            warning_count(report.warnings.len())
        );
    }
    let rules = report.policy.as_ref().map_or(0, Policy::rule_count);
    write_stdout(|out| {
        writeln!(
            out,
            "{}: OK ({rules} rules, {})",
            file.display(),
            warning_count(report.warnings.len())
        )
    })
}

fn warning_count(count: usize) -> String {
    format!(
        "{count} {}",
        if count == 1 { "warning" } else { "warnings" }
    )
}

fn explain(arguments: &ExplainArgs) -> anyhow::Result<()> {
    let policy = crate::run::load_policy(&arguments.policy)?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&read(&arguments.claims, "claims file")?)
            .context("the claims file must contain a JSON object")?;
    let principal = principal_from_claims(claims, &ClaimMapping::default())
        .map_err(|error| anyhow::anyhow!("the claims do not form a principal: {error}"))?;

    let (method, path) = parse_request_line(&arguments.request)?;
    let headers = parse_headers(&arguments.headers)?;
    let mut classified = classify::classify(&method, &path, &headers).map_err(|error| {
        anyhow::anyhow!("the proxy would reject this request with 400: {error}")
    })?;
    if let Some(body) = &arguments.body {
        let bytes =
            std::fs::read(body).with_context(|| format!("cannot read {}", body.display()))?;
        apply_body(&mut classified, &bytes).map_err(|error| {
            anyhow::anyhow!("the proxy would reject this body with 400: {error}")
        })?;
    } else if classified.request.operation.kind == OperationKind::Batch {
        bail!("a batch request needs --body with the batch operations");
    } else if classified.needs_body() {
        write_stderr(
            "note: without --body the decision is made on the feed; the proxy decides a create or \
             upsert on the id in its body",
        );
    }
    let context = Context {
        source_address: arguments.source_address,
        unix_time: arguments.unix_time.or(arguments.at).unwrap_or_else(now),
    };
    let explanation = policy.explain(&principal, &classified.request, &context);
    if arguments.json {
        let json = serde_json::to_string_pretty(&explanation)?;
        write_stdout(|out| writeln!(out, "{json}"))
    } else {
        write_stdout(|out| write_explanation(out, &explanation))
    }
}

/// Reads a body into the classified request the way the proxy does.
fn apply_body(
    classified: &mut classify::Classified,
    bytes: &[u8],
) -> Result<(), classify::ClassifyError> {
    match classified.request.operation.kind {
        OperationKind::Batch => {
            classified.request.batch = classify::parse_batch(bytes)?;
            Ok(())
        }
        OperationKind::Replace => classify::check_replaced_id(classified, bytes),
        OperationKind::Create | OperationKind::Upsert => {
            classify::apply_created_id(classified, bytes)
        }
        _ => Ok(()),
    }
}

fn parse_request_line(line: &str) -> anyhow::Result<(Method, String)> {
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
        bail!("--request must be 'METHOD PATH', such as 'GET /dbs/shop', got {line:?}");
    };
    // Methods are case-sensitive, as the proxy treats them: `get` is not `GET`.
    let method = Method::from_bytes(method.as_bytes())
        .with_context(|| format!("{method:?} is not an HTTP method"))?;
    Ok((method, path.to_owned()))
}

fn parse_headers(pairs: &[String]) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once(':') else {
            bail!("--header must be NAME:VALUE, got {pair:?}");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("{name:?} is not a valid header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("the value of {name} is not a valid header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn write_explanation(out: &mut impl Write, explanation: &Explanation) -> std::io::Result<()> {
    let decision = &explanation.decision;
    let verdict = match decision.effect {
        Effect::Allow => "ALLOW",
        Effect::Deny => "DENY",
    };
    writeln!(out, "decision: {verdict}")?;
    writeln!(
        out,
        "rule:     {}",
        decision
            .rule_id
            .as_deref()
            .unwrap_or("(none: default deny)")
    )?;
    writeln!(out, "reason:   {}", decision.reason)?;
    for operation in &explanation.operations {
        writeln!(out)?;
        match operation.batch_index {
            Some(index) => writeln!(out, "batch operation {index}: {}", operation.operation),
            None => writeln!(out, "operation: {}", operation.operation),
        }?;
        writeln!(out, "needs:     {}", operation.required_actions.join(", "))?;
        for rule in &operation.rules {
            let mark = if rule.applies { "applies" } else { "skipped" };
            writeln!(
                out,
                "  line {:>4}  {:<7} {:<5} {}: {}",
                rule.line,
                mark,
                format!("{:?}", rule.effect).to_lowercase(),
                rule.rule_id,
                rule.reason
            )?;
        }
    }
    Ok(())
}

fn import_azure(definitions: &Path, assignments: &Path) -> anyhow::Result<()> {
    let imported = cosmoguard_policy::azure_import::import(
        &read(definitions, "role definitions")?,
        &read(assignments, "role assignments")?,
    )?;
    for warning in &imported.warnings {
        write_stderr(format_args!("warning: {warning}"));
    }
    write_stdout(|out| write!(out, "{}", imported.policy))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Parses `--at` into Unix seconds.
fn parse_instant(text: &str) -> Result<i64, String> {
    text.parse::<jiff::Timestamp>()
        .map(|timestamp| timestamp.as_second())
        .map_err(|error| {
            format!(
                "{error}; give an RFC 3339 date-time with an offset, such as 2027-01-04T09:30:00Z"
            )
        })
}
