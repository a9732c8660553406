//! Credential metrics, registered on the registry the admin listener serves.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Result labels. Each is initialised so dashboards see zeroes before the first event.
const RESULTS: [&str; 2] = ["success", "failure"];

/// Token refreshes, token expiry, rejections by the account and key reloads.
#[derive(Clone, Debug)]
pub(crate) struct CredentialMetrics {
    refreshes: IntCounterVec,
    token_expiry: IntGauge,
    rejections: IntCounter,
    key_reloads: IntCounterVec,
}

impl CredentialMetrics {
    pub(crate) fn register(registry: &Registry) -> prometheus::Result<CredentialMetrics> {
        let refreshes = IntCounterVec::new(
            Opts::new(
                "cosmoguard_credential_refreshes_total",
                "Attempts to obtain an Entra ID token for the account, by result.",
            ),
            &["result"],
        )?;
        let token_expiry = IntGauge::new(
            "cosmoguard_credential_token_expiry_timestamp_seconds",
            "Unix time at which the current Entra ID token for the account expires; 0 before the first.",
        )?;
        let rejections = IntCounter::new(
            "cosmoguard_upstream_token_rejections_total",
            "Responses in which the account rejected the proxy's credential (401, or 403 with substatus 5300).",
        )?;
        let key_reloads = IntCounterVec::new(
            Opts::new(
                "cosmoguard_credential_key_reloads_total",
                "Account key files re-read after a change, by result; a failure keeps the previous key.",
            ),
            &["result"],
        )?;
        for result in RESULTS {
            refreshes.with_label_values(&[result]);
            key_reloads.with_label_values(&[result]);
        }
        registry.register(Box::new(refreshes.clone()))?;
        registry.register(Box::new(token_expiry.clone()))?;
        registry.register(Box::new(rejections.clone()))?;
        registry.register(Box::new(key_reloads.clone()))?;
        Ok(CredentialMetrics {
            refreshes,
            token_expiry,
            rejections,
            key_reloads,
        })
    }

    pub(crate) fn refreshed(&self, success: bool, expires_unix: Option<i64>) {
        self.refreshes
            .with_label_values(&[result_label(success)])
            .inc();
        if let Some(expires_unix) = expires_unix {
            self.token_expiry.set(expires_unix);
        }
    }

    pub(crate) fn rejected(&self) {
        self.rejections.inc();
    }

    pub(crate) fn key_reloaded(&self, success: bool) {
        self.key_reloads
            .with_label_values(&[result_label(success)])
            .inc();
    }

    #[cfg(test)]
    pub(crate) fn refresh_count(&self, success: bool) -> u64 {
        self.refreshes
            .with_label_values(&[result_label(success)])
            .get()
    }
}

fn result_label(success: bool) -> &'static str {
    if success { "success" } else { "failure" }
}
