//! Checks that serde cannot express: files that must exist, URL schemes, settings that
//! exclude each other. Every problem is collected, with the line it sits on.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{CheckOptions, Config, TelemetryConfig};

mod credential;

/// One configuration problem, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, or 0 when the problem has no single place (a missing section).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in one configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub(super) fn unreadable(path: &Path, error: &std::io::Error) -> ConfigErrors {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read the configuration file: {error}"),
        }])
    }

    /// Converts a TOML syntax or type error. A type error is prefixed with the dotted key
    /// it sits under (`upstream.connect_timeout: invalid type: ...`), because serde's own
    /// message names only the value and the expected type.
    pub(super) fn syntax(path: &Path, text: &str, error: &toml::de::Error) -> ConfigErrors {
        let (line, column) = error
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((0, 0));
        let message = match error_key(error) {
            Some(key) => format!("{key}: {}", error.message()),
            None => error.message().to_owned(),
        };
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            message,
        }])
    }
}

/// Returns the dotted key that a TOML type error sits under, such as
/// `upstream.connect_timeout`, or `None` for a syntax error or an error on the whole
/// document.
///
/// NOTE: toml 0.9 keeps the key private. Its `Display` prints the key as a last line
/// ``in `KEY` `` only when the error has no input text, so this renders a copy without the
/// input and reads that line. The config tests check the result.
fn error_key(error: &toml::de::Error) -> Option<String> {
    let mut without_input = error.clone();
    without_input.set_input(None);
    let rendered = without_input.to_string();
    let key = rendered
        .lines()
        .last()?
        .strip_prefix("in `")?
        .strip_suffix('`')?;
    Some(key.to_owned())
}

/// Converts a byte offset into a 1-based line and column.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
    (line, column)
}

pub(super) struct Checker<'a> {
    config: &'a Config,
    text: &'a str,
    path: &'a Path,
    options: CheckOptions,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error_at(&mut self, span: Option<Range<usize>>, message: String) {
        let (line, column) = span.map_or((0, 0), |span| line_column(self.text, span.start));
        self.errors.push(ConfigError {
            file: self.path.to_path_buf(),
            line,
            column,
            message,
        });
    }

    /// Reports an empty or blank path and returns whether it was one. An empty path
    /// resolves to the configuration's own directory, so any later message would name a
    /// directory the operator never wrote.
    fn reject_empty_path(&mut self, key: &str, path: &Spanned<PathBuf>) -> bool {
        let empty = path.get_ref().to_string_lossy().trim().is_empty();
        if empty {
            self.error_at(
                Some(path.span()),
                format!(
                    "{key}: the path is empty; set it to the path of a file, or remove {key} \
                     if it is optional"
                ),
            );
        }
        empty
    }

    fn require_file(&mut self, key: &str, path: &Spanned<PathBuf>) {
        if self.reject_empty_path(key, path) {
            return;
        }
        if !self.options.require_files {
            return;
        }
        let resolved = self.config.resolve(path.get_ref());
        if !resolved.is_file() {
            self.error_at(
                Some(path.span()),
                format!(
                    "{key}: file {} not found; set it to an existing file",
                    resolved.display()
                ),
            );
        }
    }
}

/// Checks a parsed configuration; returns every problem found.
pub(super) fn check(
    config: &Config,
    text: &str,
    path: &Path,
    options: CheckOptions,
) -> Result<(), ConfigErrors> {
    let mut checker = Checker {
        config,
        text,
        path,
        options,
        errors: Vec::new(),
    };
    check_listener(&mut checker);
    check_upstream(&mut checker);
    check_rest(&mut checker);
    check_observability(&mut checker);
    if checker.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(checker.errors))
    }
}

/// The smallest `limits.max_header_bytes`: a 16 KiB bearer token and 4 KiB for the rest.
const MIN_HEADER_BYTES: usize = 20 * 1024;

/// The maximum number of connection workers a configuration may set.
const MAX_WORKERS: usize = 1024;

/// Returns the error message for an invalid `listener.workers`, without the key: the value,
/// what is wrong with it (`problem`, such as "is out of range") and the accepted values.
pub(super) fn invalid_workers(value: impl fmt::Display, problem: &str) -> String {
    format!(
        "{value} {problem}; use an integer from 1 to {MAX_WORKERS}, or remove the key for \
         one worker per CPU"
    )
}

fn check_listener(checker: &mut Checker<'_>) {
    let listener = &checker.config.listener;
    let plain = checker.config.dangerous.plain_http_listener;
    match (&listener.tls, plain) {
        (None, false) => checker.error_at(
            None,
            "listener.tls is missing; configure a certificate and key, or set \
             dangerous.plain_http_listener = true for local use"
                .to_owned(),
        ),
        (Some(tls), true) => checker.error_at(
            Some(tls.certificate.span()),
            "listener.tls and dangerous.plain_http_listener exclude each other; remove one"
                .to_owned(),
        ),
        (Some(tls), false) => {
            checker.require_file("listener.tls.certificate", &tls.certificate);
            checker.require_file("listener.tls.private_key", &tls.private_key);
        }
        (None, true) => {}
    }
    if let Some(workers) = &listener.workers
        && !(1..=MAX_WORKERS).contains(workers.get_ref())
    {
        checker.error_at(
            Some(workers.span()),
            format!(
                "listener.workers: {}",
                invalid_workers(workers.get_ref(), "is out of range")
            ),
        );
    }
    let admin = checker.config.admin.address;
    if admin.port() == listener.address.port()
        && (admin.ip() == listener.address.ip()
            || admin.ip().is_unspecified()
            || listener.address.ip().is_unspecified())
    {
        checker.error_at(
            None,
            format!(
                "admin.address {admin} uses the port of listener.address {}; give the admin \
                 listener another port",
                listener.address
            ),
        );
    }
    if let Some(url) = &listener.public_url
        && !matches!(url.get_ref().scheme(), "http" | "https")
    {
        checker.error_at(
            Some(url.span()),
            format!(
                "listener.public_url: {} must be an http or https URL",
                url.get_ref()
            ),
        );
    }
}

fn check_upstream(checker: &mut Checker<'_>) {
    let upstream = &checker.config.upstream;
    let endpoint = &upstream.endpoint;
    let allow_plain = checker.config.dangerous.plain_http_upstream;
    match endpoint.get_ref().scheme() {
        "https" => {}
        "http" if allow_plain => {}
        "http" => checker.error_at(
            Some(endpoint.span()),
            format!(
                "upstream.endpoint: {} is plain http; use https, or set \
                 dangerous.plain_http_upstream = true for a local emulator",
                endpoint.get_ref()
            ),
        ),
        other => checker.error_at(
            Some(endpoint.span()),
            format!("upstream.endpoint: the scheme {other:?} is not supported; use https"),
        ),
    }
    if let Some(ca_file) = &upstream.ca_file {
        checker.require_file("upstream.ca_file", ca_file);
    }
    credential::check(checker);
}

fn check_rest(checker: &mut Checker<'_>) {
    if checker.config.issuers.is_empty() {
        checker.error_at(
            None,
            "no [[issuers]] configured; add at least one OIDC issuer whose tokens are accepted"
                .to_owned(),
        );
    }
    let allow_plain_http = checker.config.dangerous.plain_http_issuers;
    let issuer_errors: Vec<String> = checker
        .config
        .issuers
        .iter()
        .enumerate()
        .filter_map(|(index, issuer)| {
            let error = issuer.validate(allow_plain_http).err()?;
            Some(format!("issuers[{index}] ({}): {error}", issuer.issuer))
        })
        .collect();
    for message in issuer_errors {
        checker.error_at(None, message);
    }
    let max_header_bytes = checker.config.limits.max_header_bytes;
    if max_header_bytes < MIN_HEADER_BYTES {
        checker.error_at(
            None,
            format!(
                "limits.max_header_bytes: {max_header_bytes} is below {MIN_HEADER_BYTES}; \
                 requests carry a bearer token of up to 16 KiB and the SDK's own headers, so \
                 use at least {MIN_HEADER_BYTES} (the default is 65536)"
            ),
        );
    }
    let policy_file = checker.config.policy.file.clone();
    checker.require_file("policy.file", &policy_file);

    let audit_file = &checker.config.audit.file;
    if audit_file.trim().is_empty() {
        checker.error_at(
            None,
            "audit.file: the path is empty; set it to `-` for standard output or to a file path"
                .to_owned(),
        );
    } else if audit_file != "-" && checker.options.require_files {
        let resolved = checker.config.resolve(Path::new(audit_file));
        let directory = resolved.parent().map(Path::to_path_buf).unwrap_or_default();
        if !directory.as_os_str().is_empty() && !directory.is_dir() {
            checker.error_at(
                None,
                format!("audit.file: directory {} not found", directory.display()),
            );
        }
    }
}

fn check_observability(checker: &mut Checker<'_>) {
    for message in super::observability::problems(checker.config) {
        checker.error_at(None, message);
    }
    if let Some(key_file) = &checker.config.audit.user_agent_hmac_key_file {
        checker.require_file("audit.user_agent_hmac_key_file", key_file);
    }
    check_telemetry_tls(checker);
}

/// Reports every empty `[telemetry]` TLS path, else the first problem with the TLS files,
/// at the line of the file's key when it is about one file.
fn check_telemetry_tls(checker: &mut Checker<'_>) {
    let Some(telemetry) = &checker.config.telemetry else {
        return;
    };
    if report_empty_tls_paths(checker, telemetry) {
        return;
    }
    let read_files = checker.options.require_files;
    let Err(problem) =
        crate::telemetry::check_tls_config(telemetry, &checker.config.base_dir, read_files)
    else {
        return;
    };
    let path = match problem.key {
        Some("telemetry.ca_file") => telemetry.ca_file.as_ref(),
        Some("telemetry.client_certificate_file") => telemetry.client_certificate_file.as_ref(),
        Some("telemetry.client_key_file") => telemetry.client_key_file.as_ref(),
        _ => None,
    };
    checker.error_at(path.map(Spanned::span), problem.message);
}

/// Reports each `[telemetry]` TLS file key whose path is empty or blank, and returns
/// whether it found one.
fn report_empty_tls_paths(checker: &mut Checker<'_>, telemetry: &TelemetryConfig) -> bool {
    let files = [
        ("telemetry.ca_file", &telemetry.ca_file),
        (
            "telemetry.client_certificate_file",
            &telemetry.client_certificate_file,
        ),
        ("telemetry.client_key_file", &telemetry.client_key_file),
    ];
    let mut found_empty = false;
    for (key, path) in files {
        let Some(path) = path else {
            continue;
        };
        found_empty |= checker.reject_empty_path(key, path);
    }
    found_empty
}
