//! The policy in force, and its reloads.
//!
//! The file is polled for changes and reloaded on SIGHUP. Polling, rather than inotify,
//! also catches the symlink swap by which Kubernetes updates a mounted ConfigMap. A new
//! version that fails to parse or check is rejected with an error log and a metric, and
//! the old one keeps serving. Each request reads the policy once, so a request in flight
//! finishes under the version it started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use cosmoguard_policy::Policy;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use sha2::{Digest, Sha256};

/// How often the policy file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The loaded policy, shared with every request.
#[derive(Debug)]
pub struct PolicyStore {
    current: Arc<ArcSwap<Policy>>,
    path: PathBuf,
    loaded_digest: Mutex<[u8; 32]>,
    reloads: IntCounterVec,
    rules: IntGauge,
    loaded_at: IntGauge,
}

impl PolicyStore {
    /// Loads the policy file; an invalid policy is an error with every problem listed.
    pub fn open(path: &Path, registry: &Registry) -> anyhow::Result<PolicyStore> {
        let text = read(path)?;
        let policy = parse(path, &text)?;

        let reloads = IntCounterVec::new(
            Opts::new(
                "cosmoguard_policy_reloads_total",
                "Policy reloads, by result: loaded, or rejected because the new version is invalid.",
            ),
            &["result"],
        )?;
        let rules = IntGauge::new("cosmoguard_policy_rules", "Rules in the policy in force.")?;
        let loaded_at = IntGauge::new(
            "cosmoguard_policy_loaded_timestamp_seconds",
            "When the policy in force was loaded, in Unix seconds.",
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(rules.clone()))?;
        registry.register(Box::new(loaded_at.clone()))?;

        let store = PolicyStore {
            current: Arc::new(ArcSwap::from_pointee(policy)),
            path: path.to_path_buf(),
            loaded_digest: Mutex::new(digest(&text)),
            reloads,
            rules,
            loaded_at,
        };
        store.record_loaded();
        Ok(store)
    }

    /// Returns the policy in force, for the request pipeline.
    pub fn current(&self) -> Arc<ArcSwap<Policy>> {
        Arc::clone(&self.current)
    }

    /// Reloads the file if its content changed since the last load. Returns whether a
    /// new policy is now in force.
    pub fn reload_if_changed(&self, trigger: &'static str) -> bool {
        let text = match read(&self.path) {
            Ok(text) => text,
            Err(error) => {
                self.reloads.with_label_values(&["rejected"]).inc();
                tracing::error!(policy.file = %self.path.display(), trigger, error = %format!("{error:#}"), "Kept the previous policy: the file cannot be read");
                return false;
            }
        };
        let new_digest = digest(&text);
        if self.digest_matches(&new_digest) {
            return false;
        }
        match parse(&self.path, &text) {
            Ok(policy) => {
                let rules = policy.rule_count();
                self.current.store(Arc::new(policy));
                self.set_digest(new_digest);
                self.reloads.with_label_values(&["loaded"]).inc();
                self.record_loaded();
                tracing::info!(policy.file = %self.path.display(), trigger, policy.rules = rules, "Reloaded the policy");
                true
            }
            Err(error) => {
                // Remember the rejected version, so it is reported once, not every poll.
                self.set_digest(new_digest);
                self.reloads.with_label_values(&["rejected"]).inc();
                tracing::error!(policy.file = %self.path.display(), trigger, error = %format!("{error:#}"), "Kept the previous policy: the new one is invalid");
                false
            }
        }
    }

    /// Polls the file until the task is dropped.
    pub async fn watch(self: Arc<Self>) {
        let store = self;
        crate::file_watch::poll_blocking(POLL_INTERVAL, "policy", move || {
            store.reload_if_changed("file change")
        })
        .await;
    }

    fn digest_matches(&self, candidate: &[u8; 32]) -> bool {
        self.loaded_digest
            .lock()
            .map(|digest| *digest == *candidate)
            .unwrap_or(false)
    }

    fn set_digest(&self, new_digest: [u8; 32]) {
        if let Ok(mut digest) = self.loaded_digest.lock() {
            *digest = new_digest;
        }
    }

    fn record_loaded(&self) {
        let policy = self.current.load();
        self.rules
            .set(i64::try_from(policy.rule_count()).unwrap_or(i64::MAX));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        self.loaded_at.set(i64::try_from(now).unwrap_or(i64::MAX));
        for warning in policy.warnings() {
            tracing::warn!(%warning, "Policy warning");
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))
}

/// Parses policy text, listing every error with its line.
pub fn parse(path: &Path, text: &str) -> anyhow::Result<Policy> {
    Policy::parse(text, &path.display().to_string()).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid policy:\n{}", lines.join("\n"))
    })
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use cosmoguard_policy::{
        Context, Operation, OperationKind, Principal, Request, RequestProperties, ResourceType,
    };

    use super::*;

    const ALLOW_READS: &str = r#"
version = 1
[[rules]]
id = "reads"
actions = ["items/read"]
scopes = ["/"]
principal = { subject = "app" }
"#;

    fn read_item_allowed(store: &PolicyStore) -> bool {
        let principal = Principal {
            subject: "app".to_owned(),
            ..Principal::default()
        };
        let request = Request {
            operation: Operation::new(OperationKind::Read, ResourceType::Document),
            resource_link: "dbs/d/colls/c/docs/i".to_owned(),
            database: Some("d".to_owned()),
            container: Some("c".to_owned()),
            resource_id: Some("i".to_owned()),
            partition_key: None,
            batch: Vec::new(),
            properties: RequestProperties::default(),
        };
        let context = Context {
            source_address: None,
            unix_time: 0,
        };
        store
            .current()
            .load()
            .decide(&principal, &request, &context)
            .is_allowed()
    }

    #[test]
    fn reload_swaps_valid_policy_and_keeps_old_on_error() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("policy.toml");
        std::fs::write(&path, ALLOW_READS).unwrap();
        let registry = Registry::new();
        let store = PolicyStore::open(&path, &registry).unwrap();
        assert!(read_item_allowed(&store));
        assert!(
            !store.reload_if_changed("test"),
            "an unchanged file is not reloaded"
        );

        std::fs::write(
            &path,
            "version = 1\n[[rules]]\nid = \"broken\"\nscopes = 7\n",
        )
        .unwrap();
        assert!(!store.reload_if_changed("test"));
        assert!(read_item_allowed(&store), "the old policy keeps serving");
        assert_eq!(store.reloads.with_label_values(&["rejected"]).get(), 1);

        std::fs::write(&path, ALLOW_READS.replace("items/read", "items/create")).unwrap();
        assert!(store.reload_if_changed("test"));
        assert!(!read_item_allowed(&store), "the new policy is in force");
        assert_eq!(store.reloads.with_label_values(&["loaded"]).get(), 1);
    }

    #[test]
    fn open_rejects_invalid_policy_with_line() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("policy.toml");
        std::fs::write(&path, "version = 1\n[[rules]]\nid = \"x\"\nactions = [\"items/teleport\"]\nscopes = [\"/\"]\n").unwrap();
        let error = PolicyStore::open(&path, &Registry::new()).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("policy.toml:4"), "{message}");
    }
}
