//! Startup and shutdown of `cosmoguard serve`: loads everything the configuration names,
//! binds the listeners, and stops cleanly on SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cosmoguard_policy::Policy;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::audit::{AuditSink, AuditTarget};
use crate::config::Config;
use crate::identity::{Authenticator, AuthenticatorOptions};
use crate::metrics::{self, RequestMetrics};
use crate::pipeline::{Limits, Proxy};
use crate::policy_store::PolicyStore;
use crate::server::{self, admin::AdminState};
use crate::telemetry::{SubjectStamp, TelemetryHandle};
use crate::upstream::CredentialReadiness;
use crate::upstream::{Credential, CredentialOptions, Upstream};

/// Time open connections get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// How long startup waits for the issuers' keys before serving anyway. Until keys
/// arrive, `/readyz` fails and token checks return 503.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Runs the proxy until a shutdown signal.
pub async fn serve(config_path: &Path) -> anyhow::Result<()> {
    let mut config = Config::load(config_path).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    warn_dangerous(&config);

    let registry = Registry::new();
    metrics::register_build_info(&registry)?;
    metrics::register_process_metrics(&registry)?;
    let policy_store = Arc::new(PolicyStore::open(&config.policy_path(), &registry)?);
    let upstream = build_upstream(&config, config_path, &registry)?;
    let credential_readiness = upstream.credential_readiness();
    let options = AuthenticatorOptions {
        allow_plain_http: config.dangerous.plain_http_issuers,
        ..AuthenticatorOptions::default()
    };
    let authenticator =
        Authenticator::start(std::mem::take(&mut config.issuers), options, &registry)
            .map_err(|error| anyhow::anyhow!("{}: [[issuers]]: {error}", config_path.display()))?;
    let audit = Arc::new(open_audit(&config, &registry)?);
    let metrics = RequestMetrics::register(&registry)?
        .with_charge_containers(&config.metrics.charge_containers);
    let telemetry = TelemetryHandle::start(
        config.telemetry.as_ref(),
        &config.base_dir,
        config.upstream.endpoint.get_ref(),
        &registry,
    )
    .await?;

    let tls = tls_acceptor(&config)?;
    let data_listener = bind(config.listener.address, "data").await?;
    let admin_listener = bind(config.admin.address, "admin").await?;

    let proxy = Arc::new(Proxy {
        authenticator: authenticator.clone(),
        policy: policy_store.current(),
        upstream,
        audit: Arc::clone(&audit),
        metrics,
        public_url: config.public_url(),
        limits: Limits {
            max_header_bytes: config.limits.max_header_bytes,
            max_account_response_bytes: config.limits.max_account_response_bytes,
        },
        rids: crate::rid::RidMap::default(),
        telemetry: telemetry.telemetry.clone(),
        subject_stamp: load_subject_stamp(&config)?,
    });

    let (stop_sender, stop_receiver) = watch::channel(false);
    tokio::spawn(watch_signals(stop_sender, Arc::clone(&policy_store)));
    let policy_watcher = tokio::spawn(Arc::clone(&policy_store).watch());
    let admin_state = AdminState {
        registry,
        authenticator: authenticator.clone(),
        credential: credential_readiness.clone(),
    };
    tokio::spawn(server::admin::serve_admin(
        admin_listener,
        admin_state,
        stopped(stop_receiver.clone()),
    ));

    // Serving starts at once: until the keys and the credential's first token arrive,
    // requests get a prompt 503 with Retry-After and /readyz fails, rather than hanging.
    tokio::spawn(warn_until_ready(
        authenticator.clone(),
        credential_readiness.clone(),
    ));
    tracing::info!(
        public_url = %proxy.public_url,
        upstream = %proxy.upstream.endpoint(),
        "Cosmoguard started"
    );
    let settings = server::DataSettings {
        workers: config.listener.worker_count(),
        max_header_bytes: config.limits.max_header_bytes,
        grace: SHUTDOWN_GRACE,
    };
    server::serve_data(data_listener, tls, &proxy, settings, stopped(stop_receiver))
        .await
        .context("cannot start the connection workers")?;

    policy_watcher.abort();
    drop(proxy);
    match Arc::try_unwrap(audit) {
        Ok(mut audit) => audit.close(),
        Err(_) => tracing::warn!("Audit log still in use at shutdown; queued records may be lost"),
    }
    telemetry.shutdown().await;
    tracing::info!("Cosmoguard stopped");
    Ok(())
}

fn warn_dangerous(config: &Config) {
    let dangerous = &config.dangerous;
    if dangerous.plain_http_listener {
        tracing::warn!("dangerous.plain_http_listener is set: callers' tokens travel unencrypted");
    }
    if dangerous.plain_http_issuers {
        tracing::warn!(
            "dangerous.plain_http_issuers is set: token signing keys are fetched unencrypted"
        );
    }
    if dangerous.plain_http_upstream {
        tracing::warn!(
            "dangerous.plain_http_upstream is set: requests to the account are unencrypted"
        );
    }
}

/// Reads and checks the policy file; every error is reported with its line.
pub fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    crate::policy_store::parse(path, &text)
}

fn build_upstream(
    config: &Config,
    config_path: &Path,
    registry: &Registry,
) -> anyhow::Result<Upstream> {
    let credential = Credential::start(config, registry, CredentialOptions::default())
        .map_err(|error| anyhow::anyhow!("{}: {error}", config_path.display()))?;
    let ca_file = config
        .upstream
        .ca_file
        .as_ref()
        .map(|path| config.resolve(path.get_ref()));
    Upstream::new(
        &config.upstream,
        ca_file.as_deref(),
        credential,
        config.dangerous.plain_http_upstream,
    )
    .context("cannot set up the upstream client")
}

fn open_audit(config: &Config, registry: &Registry) -> anyhow::Result<AuditSink> {
    let file = match config.audit.file.as_str() {
        "-" => "-".to_owned(),
        file => config.resolve(Path::new(file)).display().to_string(),
    };
    let target = AuditTarget {
        file,
        max_file_bytes: config.audit.max_file_bytes,
        max_files: config.audit.max_files,
    };
    AuditSink::open(&target, registry)
        .with_context(|| format!("cannot open the audit log {}", target.file))
}

fn load_subject_stamp(config: &Config) -> anyhow::Result<Option<SubjectStamp>> {
    let Some(key_file) = &config.audit.user_agent_hmac_key_file else {
        return Ok(None);
    };
    let stamp =
        SubjectStamp::from_file(&config.resolve(key_file.get_ref())).map_err(anyhow::Error::msg)?;
    Ok(Some(stamp))
}

fn tls_acceptor(config: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let Some(tls) = &config.listener.tls else {
        return Ok(None);
    };
    let (server_config, certificate) = server::tls::server_config(
        &config.resolve(tls.certificate.get_ref()),
        &config.resolve(tls.private_key.get_ref()),
    )?;
    tokio::spawn(certificate.watch());
    Ok(Some(TlsAcceptor::from(server_config)))
}

async fn bind(address: std::net::SocketAddr, name: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot bind the {name} listener to {address}"))?;
    let local = listener.local_addr()?;
    tracing::info!(listener = name, address = %local, "Listening");
    Ok(listener)
}

/// Logs a warning when the issuers' keys or the upstream credential are not ready soon
/// after start.
async fn warn_until_ready(authenticator: Authenticator, credential: CredentialReadiness) {
    if !authenticator.wait_ready(READY_WAIT).await {
        tracing::warn!("Token signing keys are not loaded yet; requests get 503 until they are");
    }
    if !credential.wait_ready(READY_WAIT).await {
        tracing::warn!("The upstream credential has no token yet; requests get 503 until it has");
    }
}

/// Resolves when the stop flag turns true.
async fn stopped(mut receiver: watch::Receiver<bool>) {
    while !*receiver.borrow() {
        if receiver.changed().await.is_err() {
            return;
        }
    }
}

/// Stops on SIGTERM or Ctrl-C; reloads the policy on SIGHUP, keeping the old one if the
/// new one is invalid.
async fn watch_signals(stop: watch::Sender<bool>, policy: Arc<PolicyStore>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("Failed to install signal handlers; stop the proxy with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hangup.recv() => {
                let policy = Arc::clone(&policy);
                let _ = tokio::task::spawn_blocking(move || policy.reload_if_changed("SIGHUP")).await;
            }
        }
    }
    tracing::info!("Shutdown requested");
    let _ = stop.send(true);
}
