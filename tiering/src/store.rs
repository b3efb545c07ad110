//! What can go wrong at a store boundary, in terms a caller can act on, plus the
//! transport settings both store clients share.

use std::sync::Arc;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, RetryOptions};

/// A store operation's failure, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The item or blob does not exist.
    #[error("not found")]
    NotFound,
    /// A create found something already there (blob `If-None-Match: *`).
    #[error("already exists")]
    AlreadyExists,
    /// A conditional write or delete found a different version (`If-Match`).
    #[error("precondition failed: the item changed")]
    PreconditionFailed,
    /// The store asked us to slow down and the client's own retries ran out.
    #[error("throttled; retry after {retry_after:?}")]
    Throttled { retry_after: Duration },
    /// The store could not be asked: connection refused or reset, timeout, 5xx,
    /// or not authorised (401/403).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request as invalid (HTTP 400): for instance a query the
    /// container's indexing policy cannot serve. Carries the store's own message.
    #[error("the store refused the request: {0}")]
    Refused(String),
    /// Stored data failed its integrity check.
    #[error(transparent)]
    Corrupt(#[from] crate::codec::CodecError),
    /// Anything else (a malformed answer, an unexpected status): not worth retrying.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Maps an HTTP status from a store to what it means for us.
    pub fn from_status(status: u16, retry_after: Option<Duration>, detail: impl Into<String>) -> Self {
        match status {
            400 => Self::Refused(detail.into()),
            404 => Self::NotFound,
            409 => Self::AlreadyExists,
            412 => Self::PreconditionFailed,
            429 => Self::Throttled { retry_after: retry_after.unwrap_or(Duration::from_secs(1)) },
            // Not authorised (an expired SAS, a role not yet propagated, a firewall):
            // the store could not be asked, which callers treat like an outage.
            401 | 403 => {
                let detail = detail.into();
                if network_refusal(&detail) {
                    Self::Unavailable(format!(
                        "refused by the account's network rules (public network access off, or an IP firewall that \
                         does not admit this app): integrate the apps with a virtual network that reaches the \
                         account (template parameter appSubnetId; docs/operations.md, \"Network-restricted \
                         accounts\"), HTTP {status}: {detail}"
                    ))
                } else {
                    Self::Unavailable(format!("not authorised, HTTP {status}: {detail}"))
                }
            }
            408 | 500.. => Self::Unavailable(format!("HTTP {status}: {}", detail.into())),
            _ => Self::Other(format!("HTTP {status}: {}", detail.into())),
        }
    }

    /// True when the store itself could not be reached or answered with a server error.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<azure_core::Error> for StoreError {
    fn from(e: azure_core::Error) -> Self {
        match e.kind() {
            // A missing container is a broken store, not a missing record: never a 404.
            ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "ContainerNotFound" => {
                Self::Unavailable(format!("the archive container does not exist: {e}"))
            }
            ErrorKind::HttpResponse { status, error_code, .. } => {
                let code = error_code.as_deref().unwrap_or_default();
                Self::from_status(u16::from(*status), None, format!("{code} {e}").trim_start().to_owned())
            }
            // No token (identity endpoint down or slow) means the store could not be asked.
            ErrorKind::Connection | ErrorKind::Io | ErrorKind::Credential => Self::Unavailable(e.to_string()),
            _ => Self::Other(e.to_string()),
        }
    }
}

/// True when a 403's text says the account's network rules refused the caller:
/// Cosmos DB answers "Request originated from IP ... through public internet.
/// This is blocked by your Cosmos DB account firewall settings" (Learn,
/// "Troubleshoot forbidden exceptions"; no sub-status marks it), Blob Storage
/// `AuthorizationFailure` ("This request is not authorized to perform this
/// operation"; a missing role is `AuthorizationPermissionMismatch` instead).
pub fn network_refusal(detail: &str) -> bool {
    ["through public internet", "firewall", "AuthorizationFailure", "public network access"]
        .iter()
        .any(|sign| detail.contains(sign))
}

/// How hard a store client tries before it reports a failure.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// Retries after the first attempt, for connection errors, 408, 429 and 5xx.
    pub retries: u32,
    /// Limit on one attempt, up to the response headers.
    pub per_try_timeout: Duration,
    /// Limit on all attempts together.
    pub total: Duration,
}

impl Transport {
    /// The nightly archiver can afford patience.
    pub const BATCH: Self =
        Self { retries: 5, per_try_timeout: Duration::from_secs(30), total: Duration::from_secs(120) };
    /// A reader request must answer (or give 503) well within the HTTP limit.
    pub const INTERACTIVE: Self =
        Self { retries: 2, per_try_timeout: Duration::from_secs(5), total: Duration::from_secs(12) };

    pub fn retry_options(&self) -> RetryOptions {
        RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
            max_retries: self.retries,
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_delay: azure_core::time::Duration::seconds(5),
            max_total_elapsed: azure_core::time::Duration::seconds(self.total.as_secs() as i64),
        })
    }

    pub fn per_try_policy(&self) -> Arc<dyn Policy> {
        Arc::new(PerTryTimeout(self.per_try_timeout))
    }
}

/// azure_core has no per-attempt timeout; a hung connection would otherwise wait
/// for reqwest's 60 s read timeout. Runs inside the retry loop, so a timed-out
/// attempt is retried like any I/O error.
#[derive(Debug)]
struct PerTryTimeout(Duration);

#[async_trait::async_trait]
impl Policy for PerTryTimeout {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        match tokio::time::timeout(self.0, next[0].send(ctx, request, &next[1..])).await {
            Ok(result) => result,
            Err(_) => Err(azure_core::Error::with_message(ErrorKind::Io, format!("no response within {:?}", self.0))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_actionable_errors() {
        assert!(matches!(StoreError::from_status(404, None, ""), StoreError::NotFound));
        assert!(matches!(StoreError::from_status(409, None, ""), StoreError::AlreadyExists));
        assert!(matches!(StoreError::from_status(412, None, ""), StoreError::PreconditionFailed));
        assert!(matches!(
            StoreError::from_status(429, Some(Duration::from_millis(30)), ""),
            StoreError::Throttled { retry_after } if retry_after == Duration::from_millis(30)
        ));
        for outage in [401, 403, 408, 500, 502, 503, 504] {
            assert!(StoreError::from_status(outage, None, "").is_outage(), "{outage}");
        }
        assert!(matches!(StoreError::from_status(418, None, "odd"), StoreError::Other(m) if m.contains("odd")));
        assert!(matches!(StoreError::from_status(400, None, "no index"), StoreError::Refused(m) if m == "no index"));
        let firewall = "Request originated from IP 203.0.113.7 through public internet. This is blocked by your Cosmos \
                        DB account firewall settings.";
        for (status, text) in [(403, firewall), (403, "AuthorizationFailure: This request is not authorized")] {
            let e = StoreError::from_status(status, None, text).to_string();
            assert!(e.contains("network rules") && e.contains("appSubnetId"), "{e}");
        }
        let role = StoreError::from_status(403, None, "AuthorizationPermissionMismatch").to_string();
        assert!(role.contains("not authorised") && !role.contains("network rules"), "{role}");
    }
}
