use std::path::Path;

use super::*;

/// Writes the files a valid configuration names into a fresh directory.
fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    for file in [
        "proxy.pem",
        "proxy-key.pem",
        "ca.pem",
        "account.key",
        "policy.toml",
    ] {
        std::fs::write(directory.path().join(file), "x").unwrap();
    }
    // An account key is base64.
    std::fs::write(directory.path().join("account.key"), "a2V5\n").unwrap();
    let config_path = directory.path().join("cosmoguard.toml");
    (directory, config_path)
}

const VALID: &str = r#"
[listener]
address = "127.0.0.2:8443"
[listener.tls]
certificate = "proxy.pem"
private_key = "proxy-key.pem"

[upstream]
endpoint = "https://127.0.0.1:8081"
ca_file = "ca.pem"
connect_timeout = "2s"
[upstream.credential]
kind = "key"
key_file = "account.key"

[[issuers]]
issuer = "https://127.0.0.1:8080"
audiences = ["api://cosmoguard"]

[policy]
file = "policy.toml"
"#;

#[test]
fn parses_valid_config_with_defaults() {
    let (_directory, path) = fixture();
    let config = Config::parse(VALID, &path).unwrap();
    assert_eq!(config.listener.address.to_string(), "127.0.0.2:8443");
    assert_eq!(config.upstream.connect_timeout, Duration::from_secs(2));
    assert_eq!(config.upstream.response_timeout, Duration::from_secs(65));
    assert_eq!(config.admin.address.to_string(), "127.0.0.1:9464");
    assert_eq!(config.audit.file, "-");
    assert_eq!(config.public_url().as_str(), "https://127.0.0.2:8443/");
    assert_eq!(
        config.policy_path(),
        path.parent().unwrap().join("policy.toml")
    );
}

#[test]
fn reports_syntax_error_with_line() {
    let text = VALID.replace("connect_timeout = \"2s\"", "connect_timeout = \"soon\"");
    let (_directory, path) = fixture();
    let errors = Config::parse(&text, &path).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].line, 11, "{errors}");
}

#[test]
fn type_error_names_key_line_and_file() {
    let text = VALID.replace("connect_timeout = \"2s\"", "connect_timeout = 5");
    let (_directory, path) = fixture();
    let errors = Config::parse(&text, &path).unwrap_err();
    let report = errors.to_string();
    assert_eq!(errors.0.len(), 1, "{report}");
    let error = &errors.0[0];
    assert_eq!(error.file, path, "{report}");
    assert_eq!(error.line, 11, "{report}");
    assert!(
        error
            .message
            .starts_with("upstream.connect_timeout: invalid type: integer `5`"),
        "{report}"
    );
    assert!(
        report.starts_with(&format!("{}:11:", path.display())),
        "{report}"
    );
}

#[test]
fn missing_field_names_its_table() {
    let text = VALID.replace("endpoint = \"https://127.0.0.1:8081\"\n", "");
    let (_directory, path) = fixture();
    let errors = Config::parse(&text, &path).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(
        errors.0[0].message, "upstream: missing field `endpoint`",
        "{errors}"
    );
}

#[test]
fn syntax_error_has_no_key_prefix() {
    let text = VALID.replace("file = \"policy.toml\"", "file = \"policy.toml");
    let (_directory, path) = fixture();
    let errors = Config::parse(&text, &path).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].line, 21, "{errors}");
    assert!(
        errors.0[0].message.starts_with("invalid basic string"),
        "{errors}"
    );
}

#[test]
fn rejects_unknown_fields() {
    let text = VALID.replace("[policy]", "[policy]\nfiel = \"x\"");
    let (_directory, path) = fixture();
    let errors = Config::parse(&text, &path).unwrap_err();
    assert!(errors.to_string().contains("fiel"), "{errors}");
}

#[test]
fn reports_every_semantic_error_at_once() {
    let text = VALID
        .replace("\"proxy.pem\"", "\"missing.pem\"")
        .replace("https://127.0.0.1:8081", "http://127.0.0.1:8081")
        .replace("key_file = \"account.key\"", "")
        .replace("file = \"policy.toml\"", "file = \"nope.toml\"");
    let (_directory, path) = fixture();
    let errors = Config::parse(&text, &path).unwrap_err();
    let report = errors.to_string();
    assert_eq!(errors.0.len(), 4, "{report}");
    assert!(report.contains("listener.tls.certificate"), "{report}");
    assert!(report.contains("plain http"), "{report}");
    assert!(report.contains("key_file or key_env"), "{report}");
    assert!(report.contains("policy.file"), "{report}");
    let certificate_error = &errors.0[0];
    assert_eq!(certificate_error.line, 5, "{report}");
}

#[test]
fn plain_listener_needs_explicit_switch() {
    let without_tls = VALID.replace(
        "[listener.tls]\ncertificate = \"proxy.pem\"\nprivate_key = \"proxy-key.pem\"\n",
        "",
    );
    let (_directory, path) = fixture();
    let errors = Config::parse(&without_tls, &path).unwrap_err();
    assert!(
        errors.to_string().contains("plain_http_listener"),
        "{errors}"
    );

    let allowed = format!("{without_tls}\n[dangerous]\nplain_http_listener = true\n");
    let config = Config::parse(&allowed, &path).unwrap();
    assert_eq!(config.public_url().as_str(), "http://127.0.0.2:8443/");
}

#[test]
fn line_column_counts_from_one() {
    assert_eq!(validate::line_column("ab\ncd", 0), (1, 1));
    assert_eq!(validate::line_column("ab\ncd", 4), (2, 2));
    assert_eq!(validate::line_column("ab", 99), (1, 3));
}

#[test]
fn missing_file_is_reported() {
    let errors = Config::load(Path::new("/nonexistent/cosmoguard.toml")).unwrap_err();
    assert!(errors.to_string().contains("cannot read"), "{errors}");
}

#[test]
fn rejects_worker_count_out_of_range() {
    let text = VALID.replace("[listener.tls]", "workers = 0\n[listener.tls]");
    let (_directory, path) = fixture();
    let errors = Config::parse(&text, &path).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].line, 4, "{errors}");
    assert!(
        errors.0[0].message.contains("listener.workers: 0"),
        "{errors}"
    );
}

#[test]
fn invalid_workers_show_accepted_range() {
    let (_directory, path) = fixture();
    for (value, expected) in [
        ("-1", "listener.workers: -1 is out of range"),
        ("0", "listener.workers: 0 is out of range"),
        ("1025", "listener.workers: 1025 is out of range"),
        ("\"two\"", "listener.workers: \"two\" is not an integer"),
        ("2.5", "listener.workers: 2.5 is not an integer"),
    ] {
        let text = VALID.replace(
            "[listener.tls]",
            &format!("workers = {value}\n[listener.tls]"),
        );
        let errors = Config::parse(&text, &path).unwrap_err();
        let report = errors.to_string();
        assert_eq!(errors.0.len(), 1, "workers = {value}: {report}");
        assert_eq!(errors.0[0].line, 4, "workers = {value}: {report}");
        assert!(report.contains(expected), "workers = {value}: {report}");
        assert!(
            report.contains("use an integer from 1 to 1024"),
            "workers = {value}: {report}"
        );
    }
}

#[test]
fn worker_count_defaults_to_available_cpus() {
    let (_directory, path) = fixture();
    let config = Config::parse(VALID, &path).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(config.listener.worker_count(), cpus);

    let text = VALID.replace("[listener.tls]", "workers = 3\n[listener.tls]");
    let config = Config::parse(&text, &path).unwrap();
    assert_eq!(config.listener.worker_count(), 3);
}

#[test]
fn rejects_key_file_that_is_not_base64() {
    let (directory, path) = fixture();
    std::fs::write(directory.path().join("account.key"), "not a key").unwrap();
    let errors = Config::parse(VALID, &path).unwrap_err();
    let report = errors.to_string();
    assert_eq!(errors.0.len(), 1, "{report}");
    assert!(report.contains("upstream.credential.key_file"), "{report}");
    assert!(report.contains("not valid base64"), "{report}");
}

#[test]
fn rejects_admin_on_listener_port() {
    let (_directory, path) = fixture();
    for admin in ["127.0.0.2:8443", "0.0.0.0:8443"] {
        let text = format!("{VALID}\n[admin]\naddress = \"{admin}\"\n");
        let errors = Config::parse(&text, &path).unwrap_err();
        assert!(errors.to_string().contains("admin.address"), "{errors}");
    }
    let text = format!("{VALID}\n[admin]\naddress = \"127.0.0.2:9464\"\n");
    assert!(Config::parse(&text, &path).is_ok());
}

#[test]
fn rejects_header_limit_below_token_size() {
    let (_directory, path) = fixture();
    let text = format!("{VALID}\n[limits]\nmax_header_bytes = 10\n");
    let errors = Config::parse(&text, &path).unwrap_err();
    assert!(
        errors.to_string().contains("limits.max_header_bytes: 10"),
        "{errors}"
    );
}

#[test]
fn invalid_socket_address_shows_the_expected_form() {
    let (_directory, path) = fixture();
    let text = VALID.replace("127.0.0.2:8443", "127.0.0.2:99999");
    let errors = Config::parse(&text, &path).unwrap_err();
    let report = errors.to_string();
    assert!(
        report.contains("listener.address: \"127.0.0.2:99999\" is not a socket address"),
        "{report}"
    );
    assert!(report.contains("such as 127.0.0.1:8443"), "{report}");
    assert_eq!(errors.0[0].line, 3, "{report}");
}

#[test]
fn rejects_telemetry_ca_file_without_certificate() {
    let text = format!(
        "{VALID}\n[telemetry]\nendpoint = \"https://collector.example:4317\"\nca_file = \"ca.pem\"\n"
    );
    let (directory, path) = fixture();
    let errors = Config::parse(&text, &path).unwrap_err();
    let report = errors.to_string();
    assert_eq!(errors.0.len(), 1, "{report}");
    let error = &errors.0[0];
    // The upstream's `ca_file` comes first, so the last one is the telemetry one.
    let lines: Vec<&str> = text.lines().collect();
    let telemetry_ca_line = lines
        .iter()
        .rposition(|line| line.starts_with("ca_file"))
        .unwrap()
        + 1;
    assert_eq!(error.line, telemetry_ca_line, "{report}");
    assert!(error.message.starts_with("telemetry.ca_file: "), "{report}");
    let ca_path = directory.path().join("ca.pem");
    assert!(
        error.message.contains(&format!(
            "{} contains no PEM certificate",
            ca_path.display()
        )),
        "{report}"
    );

    let unchecked = CheckOptions {
        require_files: false,
    };
    assert!(Config::parse_with(&text, &path, unchecked).is_ok());
}

/// Checks that `text` fails with exactly one error starting with `expected`, at `line` when
/// given, whether or not files are checked.
fn assert_single_error(text: &str, expected: &str, line: Option<usize>) {
    let (_directory, path) = fixture();
    for require_files in [true, false] {
        let options = CheckOptions { require_files };
        let errors = Config::parse_with(text, &path, options).unwrap_err();
        let report = errors.to_string();
        assert_eq!(errors.0.len(), 1, "{report}");
        assert!(errors.0[0].message.starts_with(expected), "{report}");
        if let Some(line) = line {
            assert_eq!(errors.0[0].line, line, "{report}");
        }
    }
}

#[test]
fn rejects_empty_file_paths() {
    for (key, line) in [
        ("listener.tls.certificate", "certificate = \"proxy.pem\""),
        ("upstream.ca_file", "ca_file = \"ca.pem\""),
        ("upstream.credential.key_file", "key_file = \"account.key\""),
        ("policy.file", "file = \"policy.toml\""),
    ] {
        let emptied = format!("{} = \"\"", line.split(' ').next().unwrap());
        let text = VALID.replace(line, &emptied);
        let line_number = text.lines().position(|text| text == emptied).unwrap() + 1;
        let expected = format!(
            "{key}: the path is empty; set it to the path of a file, or remove {key} if it is \
             optional"
        );
        assert_single_error(&text, &expected, Some(line_number));
    }
}

#[test]
fn rejects_empty_telemetry_tls_path() {
    for key in ["ca_file", "client_certificate_file", "client_key_file"] {
        let text = format!(
            "{VALID}\n[telemetry]\nendpoint = \"https://collector.example:4317\"\n{key} = \"\"\n"
        );
        let line = text.lines().count();
        let expected = format!("telemetry.{key}: the path is empty; set it to the path of a file");
        assert_single_error(&text, &expected, Some(line));
    }
}

#[test]
fn rejects_empty_audit_file_and_variable_names() {
    let cases = [
        (
            format!("{VALID}\n[audit]\nfile = \"\"\n"),
            "audit.file: the path is empty",
        ),
        (
            VALID.replace("key_file = \"account.key\"", "key_env = \"\""),
            "upstream.credential.key_env: the variable name is empty",
        ),
        (
            VALID.replace(
                "key_file = \"account.key\"",
                "key_file = \"account.key\"\nsecondary_key_env = \" \"",
            ),
            "upstream.credential.secondary_key_env: the variable name is empty",
        ),
    ];
    for (text, expected) in cases {
        assert_single_error(&text, expected, None);
    }
}
